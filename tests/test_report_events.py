"""harness_common.report over ledger v2: a `---` line where the machine
changed and where the ledger was reanchored, the same events as labelled
dashed lines in the picture, figures read as numbers, and the immutable
files audited against the latest anchor rather than the first baseline."""

import pytest
from conftest import _git

from harness_common import ledger, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
AMD, INTEL = "AMD EPYC 7B13", "Intel Xeon Platinum 8481C"

# (status, geomean, ratio, cpu, commit, anchor, description)
TRIALS = [
    ("baseline", "1000.0", "", AMD, "c0ffee000001", "", "scalar port"),
    ("keep", "800.0", "0.8000", AMD, "c0ffee000002", "", "avx2 tables"),
    ("discard", "900.0", "1.1000", INTEL, "c0ffee000003", "", "unroll"),
    ("reanchor", "650.0", "", INTEL, "c0ffee000004", "timing.py rewritten: paired rounds", "re-measure best"),
    ("crash", "", "", "", "c0ffee000005", "", "out of bounds"),
    ("keep", "600.0", "0.5000", INTEL, "c0ffee000006", "", "gather 16 codes"),
    ("discard", "700.0", "1.2000", AMD, "c0ffee000007", "", "back on the first host"),
]


def _write(folder, trials=TRIALS):
    led = ledger.Ledger(folder, "pq_l2")
    with led.locked():
        for i, (status, geo, ratio, cpu, commit, anchor, desc) in enumerate(trials):
            sha = f"{i:064d}"
            if status == "reanchor":          # a reanchor re-measures the best kept kernel
                sha = led.best(led.rows())["kernel_sha256"]
            led.append({"timestamp": f"2025-01-01T00:0{i}:00", "commit": commit, "status": status,
                        "geomean_ns": geo, "ratio_vs_best": ratio, "isa": "avx2", "cpu": cpu,
                        "sandbox": "on", "anchor": anchor, "kernel_sha256": sha,
                        "description": desc})
    return led


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "pq_l2"
    _write(folder)
    return folder


def _rows(folder):
    return ledger.Ledger(folder, "pq_l2").rows()


# ------------------------------------------------------------ table

def test_events_name_machine_changes_and_reanchors(folder):
    assert report.events(_rows(folder)) == [
        (3, "machine", f"machine changed: {AMD} -> {INTEL}"),
        (4, "reanchor", "reanchored at c0ffee000004: timing.py rewritten: paired rounds"),
        (7, "machine", f"machine changed: {INTEL} -> {AMD}"),     # the cpu-less crash row is skipped
    ]


def test_table_prints_event_lines_before_their_rows(folder):
    lines = report.table(_rows(folder))
    at = {l.strip(): n for n, l in enumerate(lines)}
    change = at[f"--- machine changed: {AMD} -> {INTEL}"]
    assert "unroll" in lines[change + 1]
    reanchor = at["--- reanchored at c0ffee000004: timing.py rewritten: paired rounds"]
    assert "re-measure best" in lines[reanchor + 1] and "reanchor" in lines[reanchor + 1]
    assert "back on the first host" in lines[at[f"--- machine changed: {INTEL} -> {AMD}"] + 1]
    assert len([l for l in lines if l.strip()[:1].isdigit()]) == len(TRIALS)


def test_v1_rows_without_cpu_mark_no_machine_change():
    rows = [ledger.Row({**dict.fromkeys(ledger.COLUMNS, ""), "status": s, "cpu": c})
            for s, c in [("baseline", ""), ("discard", ""), ("discard", AMD), ("discard", AMD)]]
    assert report.events(rows) == []


def test_report_output_shows_both_kinds_of_line(folder):
    out = []
    assert report.report("pq_l2", folder, out=out.append) == 0
    text = "\n".join(out)
    assert f"--- machine changed: {AMD} -> {INTEL}" in text
    assert "--- reanchored at c0ffee000004: timing.py rewritten: paired rounds" in text
    assert "pq_l2: 7 trials, 3 kept" in text
    # 1000 -> 800 (kept 0.8) -> reanchor stays at 800 -> kept 0.5 -> 400
    assert "400.0 ns per query chained from the baseline's 1000.0 through the kept ratios: 2.50x" in text


# ------------------------------------------------------------ figures as numbers

def test_table_formats_figures_as_numbers():
    row = {**dict.fromkeys(ledger.COLUMNS, ""), "status": "keep", "geomean_ns": "512476.30000001",
           "ratio_vs_best": "0.42", "ratio_ci_low": "0.4199999", "ratio_ci_high": "n/a"}
    line = report.table([ledger.Row(row)])[-1]
    assert "512476.3" in line and "0.4200" in line and "[0.4200, n/a]" in line


@pytest.mark.parametrize("text, want", [("1.5", 1.5), (" 2 ", 2.0), ("", None), ("-", None),
                                        ("nan", None), ("inf", None), (None, None), (3, 3.0)])
def test_ledger_reads_finite_figures(text, want):
    assert ledger.number(text) == want


def test_chained_skips_figures_that_cannot_sit_on_a_log_axis():
    rows = [{"status": "baseline", "geomean_ns": "1000", "ratio_vs_best": ""},
            {"status": "discard", "geomean_ns": "x", "ratio_vs_best": "nan"},
            {"status": "discard", "geomean_ns": "0", "ratio_vs_best": "0"},
            {"status": "discard", "geomean_ns": "5", "ratio_vs_best": "-1"},
            {"status": "reanchor", "geomean_ns": "700", "ratio_vs_best": ""},
            {"status": "keep", "geomean_ns": "300", "ratio_vs_best": "0.5"}]
    assert [(i, v) for i, v, _ in report.chained(rows)] == [(1, 1000.0), (5, 1000.0), (6, 500.0)]


# ------------------------------------------------------------ picture

def test_picture_draws_labelled_dashed_lines_at_events(folder):
    matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is the optional plot extra")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = _rows(folder)
    fig, ax = plt.subplots()
    try:
        report._draw_events(ax, rows, report.chained(rows))
        dashed = [l for l in ax.lines if l.get_linestyle() == "--"]
        assert sorted(l.get_xdata()[0] for l in dashed) == [3, 4, 7]
        labels = [t.get_text() for t in ax.texts]
        assert labels == [f"on {INTEL}", "reanchor: timing.py rewritten: paired rounds",
                          f"on {AMD}"]
        legend = {l.get_label() for l in dashed}
        assert {"machine changed", "reanchored"} <= legend
    finally:
        plt.close(fig)


def test_progress_png_is_written_with_events(folder):
    pytest.importorskip("matplotlib", reason="matplotlib is the optional plot extra")
    out = []
    assert report.report("pq_l2", folder, out=out.append) == 0
    assert (folder / "progress.png").read_bytes()[:8] == PNG_SIGNATURE
    assert f"  picture: {folder / 'progress.png'}" in out


# ------------------------------------------------------------ audit against the anchor

@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git checkout with two commits that differ in a harness file; report.ROOT points at it."""
    root = tmp_path / "repo"
    (root / "harness_common").mkdir(parents=True)
    (root / "targets" / "pq_l2").mkdir(parents=True)
    (root / "harness_common" / "timing.py").write_text("ROUNDS = 5\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "one")
    first = _git(root, "rev-parse", "HEAD")
    (root / "harness_common" / "timing.py").write_text("ROUNDS = 7\n")
    _git(root, "commit", "-q", "-am", "two")
    monkeypatch.setattr(report, "ROOT", root)
    return first[:12], _git(root, "rev-parse", "HEAD")[:12]


def _anchor_rows(*anchors):
    rows = []
    for status, commit in anchors:
        values = dict.fromkeys(ledger.COLUMNS, "")
        values.update(status=status, commit=commit, anchor="harness" if status == "reanchor" else "")
        rows.append(ledger.Row(values))
    return rows


def test_audit_against_a_stale_baseline_names_the_change(repo):
    first, _ = repo
    text = report.audit(_anchor_rows(("baseline", first)), "pq_l2")
    assert f"CHANGED since the baseline commit {first}: harness_common/timing.py" in text


def test_audit_uses_the_latest_reanchor(repo):
    first, second = repo
    rows = _anchor_rows(("baseline", first), ("keep", first), ("reanchor", second + "+dirty"))
    assert report.audit(rows, "pq_l2") == f"immutable files: unchanged since the reanchor commit {second}"


def test_audit_names_an_anchor_that_is_not_a_commit(repo):
    text = report.audit(_anchor_rows(("baseline", "--all")), "pq_l2")
    assert text.startswith("immutable files: cannot verify") and "not a commit hash" in text
