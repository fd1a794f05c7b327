"""Statistics of paired A/B timings: medians, per-round ratios, bootstrap intervals.

A round times the candidate (A) and the best (B) on the same two samples in
ABBA order; its ratio is sum(A)/sum(B), so drift within a round cancels.
Rounds come in blocks, one per fresh pair of worker processes. A combo's
ratio is the median over all rounds; its 95% interval comes from a two-level
bootstrap that resamples blocks, then rounds within each block, widened where
needed to a Student t interval over the blocks' own estimates, so the
interval includes the process-to-process variation a single pair of
processes would hide (a bootstrap over four blocks alone covers it too
rarely). The trial's ratio is the geometric mean over combos, with a joint
bootstrap that resamples the same blocks for every combo.
"""
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 2000


def geomean(values):
    values = np.asarray(values, dtype=np.float64)
    return float(np.exp(np.mean(np.log(values))))


def round_ratios(a_ns, b_ns):
    """Per-round ratios from (rounds, samples) arrays of candidate and best times."""
    a = np.asarray(a_ns, dtype=np.float64).reshape(len(a_ns), -1).sum(axis=1)
    b = np.asarray(b_ns, dtype=np.float64).reshape(len(b_ns), -1).sum(axis=1)
    if np.any(b <= 0) or np.any(a <= 0):
        raise ValueError("timings must be positive")
    return a / b


def _boot_medians(blocks, block_idx, rng):
    """Median of each bootstrap resample: blocks chosen by `block_idx` (samples, B),
    rounds resampled within each chosen block (blocks cut to the shortest)."""
    n = min(len(b) for b in blocks)
    r = np.stack([np.asarray(b, dtype=np.float64)[:n] for b in blocks])
    s, nb = block_idx.shape
    chosen = r[block_idx]                                   # (samples, B, rounds)
    within = rng.integers(0, n, size=(s, nb, n))
    return np.median(np.take_along_axis(chosen, within, axis=2).reshape(s, nb * n), axis=1)


# Two-sided 97.5% quantiles of Student's t for 1..9 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262)


def _widen(point, lo, hi, block_logs):
    """The bootstrap interval, widened where needed to a t interval over the blocks'
    own estimates: with a handful of blocks a bootstrap that resamples them covers
    an offset between processes too rarely; t with B - 1 degrees of freedom does not."""
    b = np.asarray(block_logs, dtype=np.float64)
    if len(b) < 2:
        return point, lo, hi
    half = _T975[min(len(b), len(_T975) + 1) - 2] * float(np.std(b, ddof=1)) / np.sqrt(len(b))
    return point, min(lo, point * np.exp(-half)), max(hi, point * np.exp(half))


def median_ci(blocks, rng=None, samples=BOOTSTRAP_SAMPLES):
    """Median of all per-round ratios and its 95% interval: a two-level bootstrap
    (blocks, then rounds), widened to a t interval over the block medians.

    `blocks` is a list of per-round ratio arrays, one per worker pair."""
    rng = rng or np.random.default_rng(0)
    idx = rng.integers(0, len(blocks), size=(samples, len(blocks)))
    boots = _boot_medians(blocks, idx, rng)
    point = float(np.median(np.concatenate([np.asarray(b, float) for b in blocks])))
    return _widen(point, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)),
                  [np.log(np.median(b)) for b in blocks])


def geomean_ci(ratio_sets, rng=None, samples=BOOTSTRAP_SAMPLES):
    """Geomean over combos of median ratios, with a joint bootstrap 95% interval.

    `ratio_sets`: per combo, a list of per-block ratio arrays (the same blocks)."""
    rng = rng or np.random.default_rng(0)
    point = geomean([np.median(np.concatenate([np.asarray(b, float) for b in r]))
                     for r in ratio_sets])
    nb = min(len(r) for r in ratio_sets)
    idx = rng.integers(0, nb, size=(samples, nb))
    logs = np.zeros(samples)
    for r in ratio_sets:
        logs += np.log(_boot_medians(r[:idx.shape[1]], idx, rng))
    boots = np.exp(logs / len(ratio_sets))
    per_block = np.mean([[np.log(np.median(b)) for b in r[:idx.shape[1]]] for r in ratio_sets], axis=0)
    return _widen(point, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)), per_block)


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
    cv: float                       # stdev / mean of the candidate's samples (pyperf's measure)
    scalar_ns_per_unit: float | None = None
    block_ratios: list | None = None  # per worker pair, the per-round ratios
    ctor_ns: int = 0                  # the candidate's slowest constructor (CPU time)


def summarize_combo(name, a_blocks, b_blocks, units, rng, scalar_ns=None, ctor_ns=0):
    """ComboResult from per-block (rounds, samples) candidate and best CPU times
    (b_blocks None: no best kernel yet)."""
    a = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in a_blocks]) / units
    med = float(np.median(a))
    cv = float(np.std(a) / np.mean(a))
    rounds = sum(len(x) for x in a_blocks)
    scalar = None if scalar_ns is None else float(np.median(scalar_ns))
    if b_blocks is None:
        return ComboResult(name, med, None, None, None, None, rounds, cv, scalar, None, ctor_ns)
    ratios = [round_ratios(x, y) for x, y in zip(a_blocks, b_blocks)]
    ratio, lo, hi = median_ci(ratios, rng)
    b = np.concatenate([np.asarray(y, dtype=np.float64).ravel() for y in b_blocks]) / units
    return ComboResult(name, med, float(np.median(b)), ratio, lo, hi, rounds, cv, scalar, ratios,
                       ctor_ns)
