"""The morning review: the ledger as a table and a progress picture.

    python -m harness_common report              # every target under results/
    python -m harness_common report pq_l2        # one target
    python -m harness_common report pq_l2 --results-dir /tmp/scratch

The picture (results/<target>/progress.png): trials on x, geomean ns per
unit on a log y axis, kept trials highlighted, the running best as a step
line, each kept step labelled with its description. The y values are
chained through each trial's in-run ratio (see `chained`), because absolute
timings drift with the machine between trials. Where the machine changed
(the row's `cpu`) or the ledger was reanchored, the table prints a `---`
line and the picture a dashed vertical line.
"""
from pathlib import Path

from . import config, immutable, integrity, ledger
from .result import fmt

ROOT = Path(__file__).resolve().parent.parent


def _pos(row, column):
    """A figure that can sit on the log axis (finite and > 0), or None."""
    value = ledger.number(row[column])
    return value if value is not None and value > 0 else None


def _cell(row, column):
    """A figure column as the trial printed it; text that is not a number as written."""
    value = ledger.number(row[column])
    return (row[column] or "-") if value is None else fmt(value, ledger.FIGURES[column])


def _unit(name):
    """The target's metric unit from its target.toml ('unit' if unknown)."""
    try:
        return config.load(ROOT / "targets" / name / "target.toml").unit
    except config.ConfigError:
        return "unit"


def audit(rows, name):
    """Whether the immutable files still equal the ledger's anchor commit.

    A trial checks this before it runs; the report checks it again for the
    reviewer, straight from git, so a harness edited to skip its own check
    still shows up here (and in `git diff <anchor> -- harness_common`). The
    anchor is the last baseline or reanchor row (ledger.Ledger.anchor)."""
    anchor = ledger.Ledger.anchor(rows)
    if anchor is None:
        return "immutable files: no baseline row yet"
    commit, kind = anchor["commit"].split("+")[0], anchor["status"]
    try:
        changed = immutable.changed_immutable(ROOT, ROOT / "targets" / name, commit)
    except integrity.IntegrityError as exc:
        return f"immutable files: cannot verify ({exc})"
    if changed:
        more = f" (+{len(changed) - 8} more)" if len(changed) > 8 else ""
        return (f"immutable files: CHANGED since the {kind} commit {commit}: "
                f"{', '.join(changed[:8])}{more}; trials after the change do not count")
    return f"immutable files: unchanged since the {kind} commit {commit}"


def events(rows):
    """[(trial number, kind, text)] where the machine changed or the ledger was reanchored.

    A machine change is a row whose cpu differs from the last row that
    recorded one; rows without a cpu (v1 rows) neither start nor end one."""
    out, cpu = [], ""
    for i, r in enumerate(rows, 1):
        now = r.get("cpu", "")
        if now and cpu and now != cpu:
            out.append((i, "machine", f"machine changed: {cpu} -> {now}"))
        cpu = now or cpu
        if r["status"] == "reanchor":
            reason = r.get("anchor", "") or "no reason recorded"
            out.append((i, "reanchor", f"reanchored at {r['commit']}: {reason}"))
    return out


def table(rows):
    """The trial table as text lines, with a `---` line before each event (see `events`)."""
    w = max([7] + [len(r["isa"]) for r in rows])      # "amx (emulated)" rows widen it
    head = f"{'#':>3}  {'status':<10} {'geomean_ns':>12} {'ratio':>7} {'ci95':>17}  {'isa':<{w}} description"
    lines = [head, "-" * len(head)]
    marks = {}
    for i, _, text in events(rows):
        marks.setdefault(i, []).append(text)
    for i, r in enumerate(rows, 1):
        lines += [f"--- {text}" for text in marks.get(i, [])]
        ci = f"[{_cell(r, 'ratio_ci_low')}, {_cell(r, 'ratio_ci_high')}]" if r["ratio_ci_low"] else ""
        mark = "*" if r["status"] in ledger.KEPT else " "
        lines.append(f"{i:>3}{mark} {r['status']:<10} {_cell(r, 'geomean_ns'):>12} "
                     f"{_cell(r, 'ratio_vs_best'):>7} {ci:>17}  {r['isa']:<{w}} {r['description']}")
    return lines


def chained(rows):
    """[(trial number, ns per unit, row)] on one drift-free scale.

    Absolute timings drift with the machine between trials, so a kept trial
    can measure slower than the one it beat. Every verdict is an in-run
    ratio against the best kernel of the moment, so the picture uses them:
    the baseline sits at its own geomean; every later timed trial at the
    running best times its ratio; a kept trial moves the running best there.
    A reanchor re-measures the best kernel itself, so it sits at the running
    best and moves nothing (its absolute time is the new harness's scale).
    """
    out, best = [], None
    for i, r in enumerate(rows, 1):
        geomean, ratio = _pos(r, "geomean_ns"), _pos(r, "ratio_vs_best")
        if r["status"] == "baseline" and geomean:
            best = geomean
            out.append((i, best, r))
        elif r["status"] == "reanchor" and (best or geomean):
            best = best or geomean
            out.append((i, best, r))
        elif best is not None and ratio:
            value = best * ratio
            out.append((i, value, r))
            if r["status"] == "keep":
                best = value
    return out


def picture(rows, unit, path, title):
    """Write the progress picture; returns None or why it could not be drawn."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[plot]'); table only"
    pts = chained(rows)
    if not pts:
        return "no baseline trial yet; nothing to draw"
    fig, ax = plt.subplots(figsize=(11, 5.5))
    others = [(i, g) for i, g, r in pts if r["status"] not in ledger.ANCHORS + ledger.KEPT]
    kept = [(i, g, r) for i, g, r in pts if r["status"] in ledger.KEPT]
    if others:
        ax.scatter(*zip(*others), s=18, color="#bbbbbb", label="not kept", zorder=2)
    _draw_events(ax, rows, pts)
    if kept:
        xs, ys = [i for i, _, _ in kept], [g for _, g, _ in kept]
        ax.scatter(xs, ys, s=46, color="#d62728", label="kept", zorder=3)
        ax.step(xs + [len(rows)], ys + [ys[-1]], where="post", color="#d62728", lw=1.3,
                label="running best")
    for i, g, r in kept:
        ax.annotate((r["description"] or r["status"])[:40], (i, g), textcoords="offset points",
                    xytext=(4, 6), fontsize=7, rotation=18)
    ax.set_yscale("log")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"geomean ns per {unit} (log), chained\nthrough each trial's in-run ratio")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="lower left", fontsize=8)   # progress runs high-left to low-right
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


_EVENT_STYLE = {"machine": ("#1f77b4", "machine changed"), "reanchor": ("#9467bd", "reanchored")}


def _label(kind, row, width=48):
    """The short text along an event's line: the new machine, or the reanchor's reason."""
    text = f"on {row.get('cpu', '')}" if kind == "machine" else \
        f"reanchor: {row.get('anchor', '') or row['commit']}"
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def _draw_events(ax, rows, pts):
    """A dashed vertical line at each event's trial, labelled along it from the top."""
    labelled = set()
    for i, kind, _ in events(rows):
        color, legend = _EVENT_STYLE[kind]
        ax.axvline(i, color=color, ls="--", lw=1, zorder=1,
                   label=None if kind in labelled else legend)
        labelled.add(kind)
        # x in data, y in axes fraction: the label stays at the top whatever the log scale.
        ax.text(i, 0.98, _label(kind, rows[i - 1]), transform=ax.get_xaxis_transform(),
                rotation=90, va="top", ha="right", fontsize=7, color=color)
    anchors = [(i, g) for i, g, r in pts if r["status"] == "reanchor"]
    if anchors:
        ax.scatter(*zip(*anchors), s=40, marker="D", color=_EVENT_STYLE["reanchor"][0], zorder=3)


def report(target=None, results_dir=None, out=print):
    """Print the table for one target (or all under results/) and write each
    progress picture. `results_dir` is a target's ledger folder, as in
    run_experiment --results-dir. Returns an exit code."""
    if results_dir and not target:
        out("--results-dir needs a target name (it is that target's ledger folder)")
        return 1
    if target:
        folders = {target: Path(results_dir) if results_dir else ROOT / "results" / target}
    else:
        base = ROOT / "results"
        folders = {p.name: p for p in sorted(base.glob("*")) if (p / "results.tsv").exists()}
    if not folders:
        out("no ledgers under results/; run a trial first (python -m targets.pq_l2.run_experiment)")
        return 1
    for name, folder in folders.items():
        led = ledger.Ledger(folder, name)
        if not led.path.exists():
            out(f"{name}: no ledger at {led.path}; run a trial first")
            return 1
        try:
            rows = led.rows()
        except ledger.LedgerError as exc:
            out(f"{name}: {exc}")
            return 5
        unit = _unit(name)
        kept = [r for r in rows if r["status"] in ledger.KEPT]
        out(f"{name}: {len(rows)} trials, {len(kept)} kept (* = kept)")
        for line in table(rows):
            out("  " + line)
        kept_pts = [(g, r) for _, g, r in chained(rows) if r["status"] in ledger.KEPT]
        if kept_pts:
            first, last = kept_pts[0][0], kept_pts[-1][0]
            out(f"  best: {fmt(last, 'ns')} ns per {unit} chained from the baseline's "
                f"{fmt(first, 'ns')} through the kept ratios: {first / last:.2f}x faster")
        out("  " + audit(rows, name))
        png = folder / "progress.png"
        why = picture(rows, unit, png, f"{name}: {len(rows)} trials, {len(kept)} kept")
        out(f"  picture: {why}" if why else f"  picture: {png}")
    return 0
