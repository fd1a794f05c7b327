"""harness_common.verdict: the keep rule on synthetic figures, and the per-combo
guard's error rates on simulated noisy timings like a 2-CPU VM's."""
import numpy as np
from harness_common import stats, verdict
from harness_common.config import Budget

BUDGET = Budget(trial_seconds=120, timing_seconds=32, quick_timing_seconds=2, min_rounds=8,
                max_rounds=40, quick_rounds=3, call_timeout_seconds=60, constructor_seconds=10,
                memory_guard_mb=1024, worker_memory_mb=8192, max_combo_ratio=1.05)


def _combo(name, ratio, lo, hi):
    return stats.ComboResult(name, 100.0 * ratio, 100.0, ratio, lo, hi, rounds=32, cv=0.1,
                             block_ratios=[[ratio]])


def _figures(results, ratio=0.97, lo=0.96, hi=0.98):
    return verdict.Figures(results, 100.0, ratio, lo, hi, None, 0.0, {})


def _decide(results):
    return verdict.decide(_figures(results), BUDGET, peak_mb=10, elapsed_s=60, quick=False)


def test_a_combo_measurably_slower_than_the_limit_is_rejected():
    status, reasons = _decide([_combo("a", 0.95, 0.94, 0.96), _combo("b", 1.08, 1.06, 1.10)])
    assert status == "discard"
    assert any("combo b is slower than best" in r and "[1.0600, 1.1000]" in r for r in reasons)


def test_a_combo_past_the_limit_only_by_noise_is_not_rejected():
    # median 1.07 but the interval holds 1: the machine could not tell this combo apart
    status, reasons = _decide([_combo("a", 0.95, 0.94, 0.96), _combo("b", 1.07, 0.96, 1.18)])
    assert status == "keep", reasons


def test_a_combo_measurably_slower_but_within_the_limit_is_not_rejected():
    status, reasons = _decide([_combo("a", 0.95, 0.94, 0.96), _combo("b", 1.03, 1.01, 1.05)])
    assert status == "keep", reasons


def _simulated_trial(rng, combos, slow, noise=0.12, blocks=8, rounds=4):
    """ComboResults of one trial: per-round log-normal noise like this kind of machine's
    (about 12% per round), combo `i` slowed by slow.get(i, 1.0)."""
    results = []
    for c in range(combos):
        a = [100.0 * slow.get(c, 1.0) * np.exp(rng.normal(0, noise, size=(rounds, 2))) for _ in range(blocks)]
        b = [100.0 * np.exp(rng.normal(0, noise, size=(rounds, 2))) for _ in range(blocks)]
        results.append(stats.summarize_combo(f"c{c}", a, b, 1, rng))
    return results


def test_the_guard_rarely_fires_on_identical_kernels_and_catches_a_big_slowdown():
    rng = np.random.default_rng(2)
    trials = 20
    aa = [_simulated_trial(rng, 18, {}) for _ in range(trials)]
    # The old guard (median alone) fires on noise; the guard with evidence almost never does.
    assert sum(any(r.ratio > 1.05 for r in t) for t in aa) >= 4
    assert sum(bool(verdict.slower_combos(t, 1.05)) for t in aa) <= 2
    slow = [_simulated_trial(rng, 18, {3: 1.25}) for _ in range(trials)]
    caught = sum(any(r.name == "c3" for r in verdict.slower_combos(t, 1.05)) for t in slow)
    assert caught >= 18


def test_the_noise_warning_reads_the_ratios_so_work_that_varies_by_call_cancels():
    rng = np.random.default_rng(5)
    # Calls whose work varies 30% from sample to sample, timed alike for both kernels,
    # with 2% of machine noise on top: the samples vary, the ratios barely do.
    work = [100.0 * np.exp(rng.normal(0, 0.3, size=(4, 2))) for _ in range(8)]
    a = [w * np.exp(rng.normal(0, 0.02, size=w.shape)) for w in work]
    b = [w * np.exp(rng.normal(0, 0.02, size=w.shape)) for w in work]
    steady = stats.summarize_combo("varied_work", a, b, 1, rng)
    assert steady.cv > 0.2 and verdict.spread(steady) < 0.05
    # Machine noise of 25% per sample shows in the ratios.
    a = [w * np.exp(rng.normal(0, 0.25, size=w.shape)) for w in work]
    noisy = stats.summarize_combo("noisy", a, b, 1, rng)
    assert verdict.spread(noisy) >= 0.10
    fig = _figures([steady, noisy])
    assert fig.noisy == ["noisy"]
    # Without a best kernel there are no ratios: the candidate's own cv is all there is.
    alone = stats.summarize_combo("alone", a, None, 1, rng)
    assert verdict.spread(alone) == alone.cv
