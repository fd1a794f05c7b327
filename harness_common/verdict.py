"""The keep rule: from a trial's measurements to baseline, keep or discard.

Pure functions of the figures, so the rule can be read, and tested on
synthetic numbers, apart from the machinery that measured them.
"""
from dataclasses import dataclass

import numpy as np

from . import stats


@dataclass(frozen=True)
class Figures:
    """The headline figures of a trial's timing."""
    results: list                 # stats.ComboResult per combo
    geomean_ns: float
    ratio: float | None           # geomean over combos of median per-round ratios
    ci_low: float | None
    ci_high: float | None
    speedup_vs_scalar: float | None
    ctor_ms: float                # the slowest candidate constructor (CPU time)
    mode_geomeans: dict           # mode -> geomean ns per unit over its combos ({} with one mode)

    @property
    def worst(self):
        return max(self.results, key=lambda r: r.ns_per_unit)

    @property
    def fastest(self):
        return min(self.results, key=lambda r: r.ns_per_unit)

    @property
    def noisy(self):
        """Combos whose timings vary by 10% or more (pyperf's warning: standard deviation
        >= 10% of the mean); see `spread`."""
        return [r.name for r in self.results if spread(r) >= 0.10]


def spread(r):
    """How much a combo's timings vary, as a fraction. With a best kernel in the run, the
    standard deviation of the log per-round ratios: both kernels time the same calls, so
    work that differs from call to call (posting lists of different lengths) cancels and
    what remains is the machine's noise. Without one, the candidate's own cv."""
    if r.block_ratios:
        x = np.concatenate([np.asarray(b, dtype=np.float64).ravel() for b in r.block_ratios])
        if len(x) > 1:
            return float(np.std(np.log(x)))
    return r.cv


def figures(res, rng, modes=None):
    """Figures from stats.ComboResult's (ratios need a best kernel in the run);
    `modes` labels each combo's mode for the per-mode geomeans."""
    modes = modes or [""] * len(res)
    by_mode = {}
    for mode, r in zip(modes, res):
        if mode:
            by_mode.setdefault(mode, []).append(r.ns_per_unit)
    ratio = lo = hi = None
    if all(r.block_ratios is not None for r in res):
        ratio, lo, hi = stats.geomean_ci([r.block_ratios for r in res], rng)
    scalar = [r.scalar_ns_per_unit / r.ns_per_unit for r in res if r.scalar_ns_per_unit]
    return Figures(res, stats.geomean([r.ns_per_unit for r in res]), ratio, lo, hi,
                   stats.geomean(scalar) if scalar else None,
                   max(r.ctor_ns for r in res) / 1e6,
                   {m: stats.geomean(v) for m, v in by_mode.items()})


def slower_combos(results, max_ratio):
    """Combos the candidate made slower than best: the median ratio above `max_ratio`
    and the combo's own interval above 1.

    The guard asks for evidence, like the keep rule: on a noisy machine one
    combo's median of a few dozen rounds strays past 1.05 for identical kernels
    (calibrate counted 6 A/A trials in 20 on a 2-CPU VM), and a guard that fires
    on noise throws away real wins as often. A real slowdown past the limit is
    still caught wherever the machine can measure that combo to within it."""
    return [r for r in results if r.ratio > max_ratio and r.ci_low > 1.0]


def decide(fig, budget, peak_mb, elapsed_s, quick):
    """(status, reasons): baseline on an empty ledger, keep iff every rule holds, else discard."""
    reasons = []
    if fig.ratio is not None:
        if not fig.ci_high < 1.0:
            reasons.append(f"not faster: ratio_ci95 upper end {fig.ci_high:.4f} is not below 1")
        slow = slower_combos(fig.results, budget.max_combo_ratio)
        if slow:
            r = slow[0]
            reasons.append(f"combo {r.name} is slower than best: ratio {r.ratio:.4f} > "
                           f"{budget.max_combo_ratio} and its interval [{r.ci_low:.4f}, "
                           f"{r.ci_high:.4f}] is above 1")
    if peak_mb > budget.memory_guard_mb:
        reasons.append(f"peak RSS {peak_mb:.0f} MB over the guard of {budget.memory_guard_mb:.0f} MB")
    if fig.ctor_ms > 1000 * budget.constructor_seconds:
        reasons.append(f"constructor took {fig.ctor_ms:.0f} ms, over {budget.constructor_seconds} s")
    if elapsed_s > budget.trial_seconds:
        reasons.append(f"trial took {elapsed_s:.0f} s (without input preparation), over the "
                       f"{budget.trial_seconds:.0f} s budget")
    if quick:
        reasons.append("--quick runs are never kept")
    if reasons:
        return "discard", reasons
    return ("baseline" if fig.ratio is None else "keep"), reasons
