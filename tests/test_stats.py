"""harness_common.stats on synthetic timings: the A/B verdict's statistics are
tight enough to see a 10% win, and noise alone does not fake one."""
import numpy as np
import pytest

from harness_common import stats


def _rounds(rng, rounds, calls, scale=1.0, noise=0.02, base=1000.0):
    """(rounds, calls) timings with multiplicative noise around base*scale."""
    return base * scale * np.exp(rng.normal(0.0, noise, size=(rounds, calls)))


def _ratio_sets(rng, combos, rounds, scale=1.0, noise=0.02):
    """Per-combo round ratios of A = scale*B, each combo at its own speed."""
    sets = []
    for c in range(combos):
        base = 100.0 * (c + 1)
        a = _rounds(rng, rounds, 2, scale, noise, base)
        b = _rounds(rng, rounds, 2, 1.0, noise, base)
        sets.append(stats.round_ratios(a, b))
    return sets


# ------------------------------------------------------------ geomean / round_ratios

def test_geomean_of_known_values():
    assert stats.geomean([1.0, 4.0]) == pytest.approx(2.0)
    assert stats.geomean([2.0, 2.0, 2.0]) == pytest.approx(2.0)
    assert stats.geomean([0.5, 2.0]) == pytest.approx(1.0)


def test_round_ratios_sum_calls_within_a_round():
    a = [[1.0, 3.0], [2.0, 2.0]]
    b = [[2.0, 2.0], [1.0, 1.0]]
    np.testing.assert_allclose(stats.round_ratios(a, b), [1.0, 2.0])


def test_round_ratios_accepts_one_call_per_round():
    np.testing.assert_allclose(stats.round_ratios([2.0, 3.0], [1.0, 6.0]), [2.0, 0.5])


@pytest.mark.parametrize("a, b", [([[1.0, -1.0]], [[1.0, 1.0]]),
                                  ([[1.0, 1.0]], [[0.0, 0.0]])])
def test_round_ratios_rejects_non_positive_sums(a, b):
    with pytest.raises(ValueError, match="positive"):
        stats.round_ratios(a, b)


# ------------------------------------------------------------ median_ci

def test_median_ci_point_is_median_and_interval_brackets_it():
    ratios = np.array([0.9, 1.0, 1.1, 1.2, 0.95, 1.05, 1.0])
    point, lo, hi = stats.median_ci(ratios, np.random.default_rng(1))
    assert point == pytest.approx(1.0)
    assert lo <= point <= hi
    assert lo >= ratios.min() and hi <= ratios.max()


def test_median_ci_of_constant_ratios_is_degenerate():
    assert stats.median_ci(np.full(10, 0.8), np.random.default_rng(0)) == (0.8, 0.8, 0.8)


def test_median_ci_is_deterministic_without_rng():
    ratios = np.random.default_rng(3).normal(1.0, 0.05, 25)
    assert stats.median_ci(ratios) == stats.median_ci(ratios)


# ------------------------------------------------------------ geomean_ci

def test_geomean_ci_aa_contains_one_and_is_within_one_percent():
    sets = _ratio_sets(np.random.default_rng(42), combos=9, rounds=30)
    point, lo, hi = stats.geomean_ci(sets, np.random.default_rng(0))
    assert lo <= point <= hi
    assert lo < 1.0 < hi
    assert 1.0 - lo < 0.01 and hi - 1.0 < 0.01


def test_geomean_ci_sees_a_ten_percent_speedup():
    sets = _ratio_sets(np.random.default_rng(7), combos=9, rounds=30, scale=0.9)
    point, lo, hi = stats.geomean_ci(sets, np.random.default_rng(0))
    assert hi < 1.0
    assert point == pytest.approx(0.9, abs=0.01)


def test_geomean_ci_point_is_geomean_of_combo_medians():
    sets = [np.array([1.0, 2.0, 3.0]), np.array([4.0, 4.0, 4.0])]
    point, _, _ = stats.geomean_ci(sets, np.random.default_rng(0))
    assert point == pytest.approx(np.sqrt(2.0 * 4.0))


def test_geomean_ci_aa_false_positive_rate_at_most_one_in_twenty():
    # The keep rule is "upper CI end < 1.0"; under A/A that must be rare.
    rng = np.random.default_rng(2024)
    reps, wins = 200, 0
    for _ in range(reps):
        sets = _ratio_sets(rng, combos=9, rounds=30)
        _, _, hi = stats.geomean_ci(sets, rng, samples=1000)
        wins += hi < 1.0
    assert wins / reps <= 0.05


# ------------------------------------------------------------ summarize_combo

def test_summarize_combo_fields():
    rng = np.random.default_rng(5)
    a = _rounds(rng, 12, 4, scale=0.5)
    b = _rounds(rng, 12, 4)
    res = stats.summarize_combo("clustered/128", a, b, units=10, rng=np.random.default_rng(0),
                                scalar_ns=[500.0, 700.0, 600.0])
    assert res.name == "clustered/128"
    assert res.rounds == 12
    assert res.ns_per_unit == pytest.approx(np.median(a) / 10)
    assert res.best_ns_per_unit == pytest.approx(np.median(b) / 10)
    assert res.ratio == pytest.approx(np.median(stats.round_ratios(a, b)))
    assert res.ratio == pytest.approx(0.5, abs=0.02)
    assert res.ci_low <= res.ratio <= res.ci_high
    assert res.scalar_ns_per_unit == pytest.approx(600.0)
    per_call = a.ravel() / 10
    expect_spread = (np.quantile(per_call, 0.9) - np.quantile(per_call, 0.1)) / np.median(per_call)
    assert res.spread == pytest.approx(expect_spread)
    assert res.as_dict()["name"] == "clustered/128"
    assert set(res.as_dict()) >= {"ns_per_unit", "best_ns_per_unit", "ratio", "ci_low", "ci_high",
                                  "rounds", "spread", "scalar_ns_per_unit"}


def test_summarize_combo_without_best_has_no_ratio():
    a = _rounds(np.random.default_rng(6), 5, 2)
    res = stats.summarize_combo("x", a, None, units=2, rng=np.random.default_rng(0))
    assert res.best_ns_per_unit is None and res.ratio is None
    assert res.ci_low is None and res.ci_high is None
    assert res.scalar_ns_per_unit is None
    assert res.rounds == 5
    assert res.ns_per_unit == pytest.approx(np.median(a) / 2)
