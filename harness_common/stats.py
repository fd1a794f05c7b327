"""Statistics of paired A/B timings: medians, per-round ratios, bootstrap intervals.

A round times the candidate (A) and the best (B) on the same two inputs in
ABBA order; its ratio is sum(A)/sum(B), so drift within a round cancels.
A combo's ratio is the median over rounds; the trial's is the geometric mean
over combos, with a 95% interval from a bootstrap that resamples rounds
within every combo at once.
"""
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 2000


def geomean(values):
    values = np.asarray(values, dtype=np.float64)
    return float(np.exp(np.mean(np.log(values))))


def round_ratios(a_ns, b_ns):
    """Per-round ratios from (rounds, calls) arrays of candidate and best times."""
    a = np.asarray(a_ns, dtype=np.float64).reshape(len(a_ns), -1).sum(axis=1)
    b = np.asarray(b_ns, dtype=np.float64).reshape(len(b_ns), -1).sum(axis=1)
    if np.any(b <= 0) or np.any(a <= 0):
        raise ValueError("timings must be positive")
    return a / b


def _boot_medians(ratios, rng, samples):
    r = np.asarray(ratios, dtype=np.float64)
    idx = rng.integers(0, len(r), size=(samples, len(r)))
    return np.median(r[idx], axis=1)


def median_ci(ratios, rng=None, samples=BOOTSTRAP_SAMPLES):
    """Median of per-round ratios and its 95% bootstrap percentile interval."""
    rng = rng or np.random.default_rng(0)
    boots = _boot_medians(ratios, rng, samples)
    return float(np.median(ratios)), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def geomean_ci(ratio_sets, rng=None, samples=BOOTSTRAP_SAMPLES):
    """Geomean over combos of median ratios, with a joint bootstrap 95% interval."""
    rng = rng or np.random.default_rng(0)
    point = geomean([np.median(r) for r in ratio_sets])
    logs = np.zeros(samples)
    for r in ratio_sets:
        logs += np.log(_boot_medians(r, rng, samples))
    boots = np.exp(logs / len(ratio_sets))
    return point, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


@dataclass(frozen=True)
class ComboResult:
    """One combo's timings, per unit of work (a query or a row)."""
    name: str
    ns_per_unit: float              # candidate median
    best_ns_per_unit: float | None  # best kept kernel's median, same run
    ratio: float | None             # median of per-round candidate/best ratios
    ci_low: float | None
    ci_high: float | None
    rounds: int
    spread: float                   # (p90 - p10) / median of candidate calls
    scalar_ns_per_unit: float | None = None

    def as_dict(self):
        return dict(self.__dict__)


def summarize_combo(name, a_ns, b_ns, units, rng, scalar_ns=None):
    """ComboResult from (rounds, calls) candidate and best times (b_ns None: no best)."""
    a = np.asarray(a_ns, dtype=np.float64)
    per_call = a.ravel() / units
    med = float(np.median(per_call))
    spread = float((np.quantile(per_call, 0.9) - np.quantile(per_call, 0.1)) / med)
    scalar = None if scalar_ns is None else float(np.median(scalar_ns))
    if b_ns is None:
        return ComboResult(name, med, None, None, None, None, len(a), spread, scalar)
    ratios = round_ratios(a, b_ns)
    ratio, lo, hi = median_ci(ratios, rng)
    best = float(np.median(np.asarray(b_ns, dtype=np.float64).ravel() / units))
    return ComboResult(name, med, best, ratio, lo, hi, len(a), spread, scalar)
