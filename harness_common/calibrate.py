"""How far this machine's verdicts can be trusted: the harness measures its own error rates.

    python -m harness_common calibrate pq_l2 --trials 20
    python -m harness_common calibrate campq_encode --trials 20 --load

In a scratch ledger (the real one is never touched) it records a baseline
with the target's current kernel, then runs N A/A trials (the same kernel as
candidate and best) and N trials against a best the harness itself makes
slower by a known amount (it scales the best's measured CPU time; no kernel
is edited), optionally with every CPU also loaded by busy processes. It
prints the false-keep rate, the false-tamper rate, per-combo guard rejections
of identical kernels, how often the known win was kept, the median interval
half-width and the seconds per trial, and says whether verdicts of that size
can be trusted here. Every trial is a real one: build, battery, timing, verdict.
"""
import contextlib
import importlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from argparse import Namespace
from pathlib import Path

import numpy as np

from . import config, isa, trial

ROOT = Path(__file__).resolve().parent.parent


def _one(target, module, results, description, best_scale):
    cfg = config.load(ROOT / "targets" / target / "target.toml")
    args = Namespace(description=description, seed=None, quick=False, results_dir=str(results),
                     timeout=cfg.budget.call_timeout_seconds, cpu_wait=3600.0, no_sandbox=False,
                     reanchor=None)
    t = trial.Trial(cfg, ROOT / "targets" / target, args, module.battery, module.speed_combos,
                    best_scale=best_scale)
    log = io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        code = t.run()
    return code, t, log.getvalue()


def _summary(kind, outcomes, out):
    statuses = [o["status"] for o in outcomes]
    kept = sum(s == "keep" for s in statuses)
    tamper = sum(s == "tamper" for s in statuses)
    errors = sum(s.startswith("exit ") for s in statuses)
    guard = sum(any("slower than best" in r for r in o["reasons"]) for o in outcomes)
    ratios = [o["ratio"] for o in outcomes if o["ratio"] is not None]
    halves = [(o["hi"] - o["lo"]) / 2 for o in outcomes if o["ratio"] is not None]
    worst = max((abs(r - 1) for o in outcomes for r in o["combo_ratios"]), default=float("nan"))
    out(f"{kind}: kept {kept}/{len(outcomes)}; tamper {tamper}; other statuses "
        f"{sorted(set(statuses) - {'keep', 'discard', 'tamper'}) or 'none'}; per-combo guard "
        f"rejections {guard}/{len(outcomes)}")
    if ratios:
        out(f"{' ' * len(kind)}  ratio_vs_best {min(ratios):.4f} .. {max(ratios):.4f} (median "
            f"{np.median(ratios):.4f}); median interval half-width {100 * np.median(halves):.2f}%; "
            f"largest per-combo |ratio - 1| {100 * worst:.1f}%")
    return kept, tamper, guard, errors


def calibrate(target, trials=20, load=False, win=0.03, out=print):
    """Run the calibration and print its report; returns an exit code."""
    try:
        module = importlib.import_module(f"targets.{target}.run_experiment")
    except ModuleNotFoundError:
        out(f"error: no target {target!r} (targets/{target}/run_experiment.py)")
        return 1
    scratch = Path(tempfile.mkdtemp(prefix=f"calibrate-{target}-"))
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range((os.cpu_count() or 2) if load else 0)]
    where = f"{isa.cpu_model() or 'unknown CPU'}, isa {isa.resolve(None)}"
    out(f"calibrate {target}: {trials} A/A trials and {trials} trials against a best made "
        f"{100 * win:.1f}% slower by the harness, {'under competing load on every CPU' if load else 'no added load'} "
        f"({where}); scratch ledger {scratch}")
    try:
        code, t, log = _one(target, module, scratch, "calibrate: baseline", 1.0)
        if code == 130:
            out("interrupted")
            return 130
        if code != 0 or t.status != "baseline":
            out(f"the baseline trial did not record a baseline (exit {code}):\n{log[-2000:]}")
            return 1
        results = {"A/A": [], f"{100 * win:.0f}% win": []}
        seconds = []
        for i in range(trials):
            for kind, scale in (("A/A", 1.0), (f"{100 * win:.0f}% win", 1.0 + win)):
                code, t, log = _one(target, module, scratch, f"calibrate: {kind}", scale)
                if code == 130:         # the trial was interrupted: so is the calibration
                    out("interrupted")
                    return 130
                fig = t.figures
                results[kind].append({
                    "status": t.status if code in (0, 5) else f"exit {code}",
                    "reasons": t.reasons, "ratio": fig.ratio if fig else None,
                    "lo": fig.ci_low if fig else None, "hi": fig.ci_high if fig else None,
                    "combo_ratios": [r.ratio for r in fig.results if r.ratio is not None] if fig else []})
                seconds.append(t.total_seconds)
                out(f"  trial {i + 1:>2} {kind:<8} {t.status or f'exit {code}':<8} ratio "
                    f"{'n/a' if not fig or fig.ratio is None else f'{fig.ratio:.4f} [{fig.ci_low:.4f}, {fig.ci_high:.4f}]'}"
                    f"  {t.total_seconds:.0f} s")
                if code not in (0, 5):  # the trial itself failed: say why, it counts against trust
                    out("    " + "\n    ".join(log.strip().splitlines()[-6:]))
        out("---")
        aa_kept, aa_tamper, aa_guard, aa_errors = _summary("A/A", results["A/A"], out)
        kind = f"{100 * win:.0f}% win"
        win_kept, win_tamper, _, win_errors = _summary(kind, results[kind], out)
        out(f"seconds per trial: median {np.median(seconds):.1f}")
        rate = win_kept / trials
        # A trial that ended in an error was not judged: the machine did not show it can judge.
        ok = (aa_kept <= max(1, trials // 20) and aa_tamper == 0 and win_tamper == 0
              and aa_guard == 0 and aa_errors + win_errors == 0)
        if ok and rate >= 0.9:
            verdict = f"verdicts can be trusted here for wins of {100 * win:.0f}% and more"
        elif ok:
            verdict = (f"no false keeps or false tamper, but a real {100 * win:.0f}% win is kept only "
                       f"{100 * rate:.0f}% of the time: smaller wins need repeated trials here")
        else:
            verdict = "verdicts on this machine can NOT be trusted: see the counts above"
        out(f"verdict: {verdict}")
        return 0 if ok else 3
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        shutil.rmtree(scratch, ignore_errors=True)
