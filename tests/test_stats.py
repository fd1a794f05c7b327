"""harness_common.stats on synthetic timings: the A/B verdict's statistics are
tight enough to see a 10% win, noise alone does not fake one, and the
two-level bootstrap (blocks of fresh worker pairs, then rounds) keeps the
process-to-process variation a single pair of processes would hide."""
import numpy as np
import pytest

from harness_common import stats

BLOCKS = 4          # a few worker pairs: the intervals must hold with as few as four


def _rounds(rng, rounds, calls, scale=1.0, noise=0.02, base=1000.0):
    """(rounds, calls) timings with multiplicative noise around base*scale."""
    return base * scale * np.exp(rng.normal(0.0, noise, size=(rounds, calls)))


def _ratio_sets(rng, combos, rounds, scale=1.0, noise=0.02, blocks=BLOCKS):
    """Per combo, per block, the round ratios of A = scale*B, each combo at its own speed."""
    sets = []
    for c in range(combos):
        base = 100.0 * (c + 1)
        sets.append([stats.round_ratios(_rounds(rng, rounds, 2, scale, noise, base),
                                        _rounds(rng, rounds, 2, 1.0, noise, base))
                     for _ in range(blocks)])
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
    blocks = [np.array([0.9, 1.0, 1.1, 1.2]), np.array([0.95, 1.05, 1.0, 1.0]),
              np.array([1.0, 0.98, 1.02, 1.0]), np.array([0.97, 1.03, 1.0, 1.01])]
    point, lo, hi = stats.median_ci(blocks, np.random.default_rng(1))
    assert point == pytest.approx(1.0)
    assert lo <= point <= hi
    assert lo >= 0.9 and hi <= 1.2


def test_median_ci_point_pools_every_round_of_every_block():
    blocks = [np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 2.0, 2.0, 2.0])]
    point, _, _ = stats.median_ci(blocks, np.random.default_rng(0))
    assert point == 2.0       # median of 3 ones and 5 twos


def test_median_ci_of_constant_ratios_is_degenerate():
    blocks = [np.full(10, 0.8) for _ in range(BLOCKS)]
    assert stats.median_ci(blocks, np.random.default_rng(0)) == (0.8, 0.8, 0.8)


def test_median_ci_is_deterministic_without_rng():
    gen = np.random.default_rng(3)
    blocks = [gen.normal(1.0, 0.05, 25) for _ in range(BLOCKS)]
    assert stats.median_ci(blocks) == stats.median_ci(blocks)


def test_median_ci_cuts_blocks_to_the_shortest_for_the_bootstrap():
    blocks = [np.full(10, 1.0), np.full(3, 1.0)]
    assert stats.median_ci(blocks, np.random.default_rng(0)) == (1.0, 1.0, 1.0)


# ------------------------------------------------------------ between-block variation

def _offset_blocks(rng, offsets, rounds=30, noise=0.005):
    """A/A round ratios whose blocks each sit at their own offset: fresh worker
    processes differ (layout, placement) by more than rounds within one pair do."""
    return [(1.0 + off) * np.exp(rng.normal(0.0, noise, rounds)) for off in offsets]


OFFSETS = (-0.015, -0.015, +0.015, -0.015)     # an unlucky draw of +-1.5% per process pair


def test_between_block_variation_widens_the_median_interval():
    blocks = _offset_blocks(np.random.default_rng(11), OFFSETS)
    point, lo, hi = stats.median_ci(blocks, np.random.default_rng(0))
    assert point < 0.99                          # most pairs happened to favour A
    assert lo < 1.0 < hi, "two-level: the A/A interval must contain 1"
    # The same rounds, pooled as if they came from one pair of processes: a
    # single-level bootstrap over rounds (one block) is falsely sure of a win.
    p1, lo1, hi1 = stats.median_ci([np.concatenate(blocks)], np.random.default_rng(0))
    assert p1 == point
    assert hi1 < 1.0, "single-level: the interval ignores the process-to-process spread"
    assert (hi - lo) > 5 * (hi1 - lo1)


def test_between_block_variation_widens_the_geomean_interval():
    # The offset belongs to the process pair, so every combo of a block shares it.
    rng = np.random.default_rng(12)
    sets = [_offset_blocks(rng, OFFSETS) for _ in range(9)]
    point, lo, hi = stats.geomean_ci(sets, np.random.default_rng(0))
    assert point < 0.99
    assert lo < 1.0 < hi
    p1, lo1, hi1 = stats.geomean_ci([[np.concatenate(s)] for s in sets], np.random.default_rng(0))
    assert p1 == pytest.approx(point)
    assert hi1 < 1.0


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


def test_geomean_ci_sees_a_ten_percent_speedup_in_a_quick_single_block():
    sets = _ratio_sets(np.random.default_rng(8), combos=9, rounds=30, scale=0.9, blocks=1)
    point, lo, hi = stats.geomean_ci(sets, np.random.default_rng(0))
    assert hi < 1.0
    assert point == pytest.approx(0.9, abs=0.01)


def test_geomean_ci_point_is_geomean_of_combo_medians():
    sets = [[np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])],
            [np.array([4.0, 4.0, 4.0]), np.array([4.0, 4.0, 4.0])]]
    point, _, _ = stats.geomean_ci(sets, np.random.default_rng(0))
    assert point == pytest.approx(np.sqrt(2.0 * 4.0))


def test_geomean_ci_aa_false_positive_rate_at_most_one_in_twenty():
    # The keep rule is "upper CI end < 1.0"; under A/A that must be rare.
    rng = np.random.default_rng(2024)
    reps, wins = 120, 0
    for _ in range(reps):
        sets = _ratio_sets(rng, combos=9, rounds=30)
        _, _, hi = stats.geomean_ci(sets, rng, samples=1000)
        wins += hi < 1.0
    assert wins / reps <= 0.05


# ------------------------------------------------------------ summarize_combo

def test_summarize_combo_fields():
    rng = np.random.default_rng(5)
    a = [_rounds(rng, 12, 4, scale=0.5) for _ in range(3)]
    b = [_rounds(rng, 12, 4) for _ in range(3)]
    res = stats.summarize_combo("clustered/128", a, b, units=10, rng=np.random.default_rng(0),
                                scalar_ns=[500.0, 700.0, 600.0])
    assert res.name == "clustered/128"
    assert res.rounds == 36
    per_call = np.concatenate([x.ravel() for x in a]) / 10
    assert res.ns_per_unit == pytest.approx(np.median(per_call))
    assert res.best_ns_per_unit == pytest.approx(np.median(np.concatenate(b)) / 10)
    ratios = [stats.round_ratios(x, y) for x, y in zip(a, b)]
    assert len(res.block_ratios) == 3
    for got, want in zip(res.block_ratios, ratios):
        np.testing.assert_allclose(got, want)
    assert res.ratio == pytest.approx(np.median(np.concatenate(ratios)))
    assert res.ratio == pytest.approx(0.5, abs=0.02)
    assert res.ci_low <= res.ratio <= res.ci_high
    assert res.scalar_ns_per_unit == pytest.approx(600.0)
    assert res.cv == pytest.approx(np.std(per_call) / np.mean(per_call))
    assert res.cv == pytest.approx(0.02, rel=0.2)          # the noise put in


def test_summarize_combo_accepts_nested_lists_as_timing_passes_them():
    a = [[[10.0, 10.0], [12.0, 8.0]], [[9.0, 11.0]]]
    b = [[[20.0, 20.0], [20.0, 20.0]], [[10.0, 10.0]]]
    res = stats.summarize_combo("x", a, b, units=2, rng=np.random.default_rng(0))
    assert res.rounds == 3
    np.testing.assert_allclose(res.block_ratios[0], [0.5, 0.5])
    np.testing.assert_allclose(res.block_ratios[1], [1.0])
    assert res.ratio == pytest.approx(0.5)


def test_summarize_combo_without_best_has_no_ratio():
    gen = np.random.default_rng(6)
    a = [_rounds(gen, 5, 2), _rounds(gen, 5, 2)]
    res = stats.summarize_combo("x", a, None, units=2, rng=np.random.default_rng(0))
    assert res.best_ns_per_unit is None and res.ratio is None
    assert res.ci_low is None and res.ci_high is None
    assert res.scalar_ns_per_unit is None and res.block_ratios is None
    assert res.rounds == 10
    assert res.ns_per_unit == pytest.approx(np.median(np.concatenate(a)) / 2)


def test_a_shared_offset_between_four_blocks_is_covered():
    """Per-process offsets of about 1% shared by every combo: with four blocks the
    bootstrap alone declares a win far more often than 1 in 40; the t widening over
    the blocks' own estimates keeps false wins rare."""
    rng = np.random.default_rng(5)
    wins = 0
    for _ in range(200):
        offsets = rng.normal(0, 0.01, BLOCKS)
        combos = [[1.0 + off + rng.normal(0, 0.01, 8) for off in offsets] for _ in range(9)]
        _, lo, hi = stats.geomean_ci(combos, rng, samples=400)
        wins += hi < 1.0
    assert wins <= 200 * 0.04, wins
