"""harness_common.checks: the tolerance is absolute at unit scale and relative
at large scale; close/topk/argmin pass correct outputs (ties included), fail
wrong ones, and their messages say where, what was expected, what came back."""
import numpy as np
import pytest

from harness_common import checks
from harness_common.checks import MAX_ABS_ERR

PAD = 0xFFFFFFFF


# ------------------------------------------------------------ tolerance

def test_tolerance_is_absolute_at_unit_scale():
    np.testing.assert_allclose(checks.tolerance(np.array([0.0, 0.5, -1.0])), MAX_ABS_ERR)


def test_tolerance_is_relative_at_large_scale():
    np.testing.assert_allclose(checks.tolerance(np.array([1e3, -5e6])), [1e3 * MAX_ABS_ERR, 5e6 * MAX_ABS_ERR])


# ------------------------------------------------------------ close

def test_close_passes_within_tolerance():
    ref = np.array([0.0, 1.0, 1e6])
    got = (ref + np.array([0.9e-4, -0.9e-4, 0.9e2])).astype(np.float32)
    assert checks.close("t", got, ref) == []


def test_close_fails_just_outside_relative_tolerance():
    ref = np.array([1e6])
    assert checks.close("t", ref + 150.0, ref)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_close_catches_non_finite(bad):
    got = np.array([1.0, bad, 2.0], dtype=np.float32)
    msgs = checks.close("dist", got, np.array([1.0, 1.0, 2.0]))
    assert len(msgs) == 1
    assert "at [1]" in msgs[0] and "not finite" in msgs[0]


def test_close_message_names_position_expected_got_tolerance():
    ref = np.zeros((2, 3))
    got = ref.copy()
    got[1, 2] = 0.5
    msgs = checks.close("combo q0 tables", got, ref)
    assert msgs == ["combo q0 tables at [1, 2]: expected 0, got 0.5, tolerance 0.0001"]


def test_close_wrong_shape():
    msgs = checks.close("out", np.zeros((2, 3)), np.zeros((3, 2)))
    assert len(msgs) == 1
    assert "(2, 3)" in msgs[0] and "(3, 2)" in msgs[0]


def test_close_caps_messages_and_counts_the_rest():
    msgs = checks.close("x", np.ones(10), np.zeros(10))
    assert len(msgs) == checks.MAX_MESSAGES + 1
    assert "10 of 10" in msgs[-1]


# ------------------------------------------------------------ topk

@pytest.fixture
def ref_all():
    # Distinct distances except a tie between ids 3 and 7 at rank 2/3.
    rng = np.random.default_rng(11)
    d = rng.permutation(np.arange(50, dtype=np.float64) + 10.0)
    d[3], d[7] = 1.5, 1.5
    d[12], d[20], d[30] = 0.5, 1.0, 2.0
    return d


def _correct(ref_all, k):
    ids = np.argsort(ref_all, kind="stable")[:k].astype(np.uint32)
    return ids, ref_all[ids].astype(np.float32)


def _topk(ref_all, ids, dists, k=10, n=None):
    n = len(ref_all) if n is None else n
    return checks.topk("q0", ids, dists, n, k, lambda i: ref_all[np.asarray(i)], ref_all)


def test_topk_passes_correct_list(ref_all):
    ids, dists = _correct(ref_all, 10)
    assert _topk(ref_all, ids, dists) == []


def test_topk_accepts_tie_permutation(ref_all):
    ids, dists = _correct(ref_all, 10)
    assert set(ids[2:4]) == {3, 7}
    ids[2], ids[3] = ids[3], ids[2]
    assert _topk(ref_all, ids, dists) == []


def test_topk_accepts_either_tied_id_at_the_boundary():
    ref = np.array([0.0, 1.0, 2.0, 2.0, 5.0])
    for last in (2, 3):
        ids = np.array([0, 1, last], dtype=np.uint32)
        assert checks.topk("q", ids, ref[ids].astype(np.float32), 5, 3, lambda i: ref[i], ref) == []


def test_topk_fails_duplicate_ids(ref_all):
    ids, dists = _correct(ref_all, 10)
    ids[5] = ids[4]
    dists[5] = dists[4]
    msgs = _topk(ref_all, ids, dists)
    assert msgs and f"id {ids[4]} returned more than once" in msgs[0]


def test_topk_fails_out_of_range_id(ref_all):
    ids, dists = _correct(ref_all, 10)
    ids[9] = 50
    msgs = _topk(ref_all, ids, dists)
    assert msgs == ["q0 position 9: id 50 out of range [0, 50)"]


def test_topk_fails_non_ascending(ref_all):
    ids, dists = _correct(ref_all, 10)
    ids[[0, 1]] = ids[[1, 0]]
    dists[[0, 1]] = dists[[1, 0]]
    msgs = _topk(ref_all, ids, dists)
    assert msgs and "position 1" in msgs[0] and "not ascending" in msgs[0]


def test_topk_fails_wrong_distance_for_an_id(ref_all):
    ids, dists = _correct(ref_all, 10)
    dists[9] += 0.01
    msgs = _topk(ref_all, ids, dists)
    assert len(msgs) == 1
    assert "position 9" in msgs[0] and f"id {ids[9]}" in msgs[0] and "tolerance" in msgs[0]


def test_topk_fails_eleventh_best_instead_of_tenth(ref_all):
    order = np.argsort(ref_all, kind="stable")
    ids = np.concatenate([order[:9], order[10:11]]).astype(np.uint32)
    dists = ref_all[ids].astype(np.float32)
    msgs = _topk(ref_all, ids, dists)
    assert len(msgs) == 1
    assert "position 9" in msgs[0]
    assert f"id {order[9]}" in msgs[0] and f"id {order[10]}" in msgs[0]


def test_topk_without_ref_all_only_checks_own_distances(ref_all):
    order = np.argsort(ref_all, kind="stable")
    ids = order[1:11].astype(np.uint32)   # a wrong set, but self-consistent
    msgs = checks.topk("q", ids, ref_all[ids].astype(np.float32), 50, 10, lambda i: ref_all[i])
    assert msgs == []


def _small():
    ref = np.array([3.0, 1.0, 2.0])
    ids = np.array([1, 2, 0, PAD, PAD], dtype=np.uint32)
    dists = np.array([1.0, 2.0, 3.0, np.inf, np.inf], dtype=np.float32)
    return ref, ids, dists


def test_topk_n_below_k_passes_with_padding():
    ref, ids, dists = _small()
    assert checks.topk("q", ids, dists, 3, 5, lambda i: ref[i], ref) == []


@pytest.mark.parametrize("pos, pad_id, pad_dist", [(3, 0, np.inf), (4, PAD, 0.0), (3, PAD, np.nan),
                                                    (4, PAD, -np.inf)])
def test_topk_n_below_k_rejects_bad_padding(pos, pad_id, pad_dist):
    ref, ids, dists = _small()
    ids[pos], dists[pos] = pad_id, pad_dist
    msgs = checks.topk("q", ids, dists, 3, 5, lambda i: ref[i], ref)
    assert len(msgs) == 1
    assert f"position {pos}" in msgs[0] and str(PAD) in msgs[0]


def test_topk_rejects_non_finite_distance(ref_all):
    ids, dists = _correct(ref_all, 10)
    dists[-1] = np.nan
    msgs = _topk(ref_all, ids, dists)
    assert msgs and "position 9" in msgs[0]


# ------------------------------------------------------------ argmin

def _dists(seed=0, n=4, s=3, k=8):
    return np.random.default_rng(seed).uniform(1.0, 10.0, size=(n, s, k))


def test_argmin_passes_exact_codes():
    d = _dists()
    assert checks.argmin("enc", d.argmin(axis=2).astype(np.uint8), d) == []


def test_argmin_passes_near_tie_within_tolerance():
    d = _dists()
    codes = d.argmin(axis=2).astype(np.uint8)
    best = d[1, 2].min()
    other = (int(codes[1, 2]) + 1) % d.shape[2]
    d[1, 2, other] = best + 0.5 * MAX_ABS_ERR * best
    codes[1, 2] = other
    assert checks.argmin("enc", codes, d) == []


def test_argmin_fails_clearly_wrong_code_and_names_the_row():
    d = _dists()
    codes = d.argmin(axis=2).astype(np.uint8)
    right = int(codes[2, 1])
    codes[2, 1] = int(np.argmax(d[2, 1]))
    msgs = checks.argmin("enc", codes, d)
    assert len(msgs) == 1
    assert msgs[0].startswith("enc row 2 subspace 1: ")
    assert f"expected centroid {right}" in msgs[0] and f"got {codes[2, 1]}" in msgs[0]
    assert "tolerance" in msgs[0]


def test_argmin_names_the_sampled_row_via_rows():
    d = _dists()
    codes = d.argmin(axis=2).astype(np.uint8)
    codes[2, 1] = int(np.argmax(d[2, 1]))
    msgs = checks.argmin("enc", codes, d, rows=[100, 205, 317, 999])
    assert msgs[0].startswith("enc row 317 subspace 1: ")


def test_argmin_fails_out_of_range_code():
    d = _dists(k=8)
    codes = d.argmin(axis=2).astype(np.uint8)
    codes[3, 0] = 200
    msgs = checks.argmin("enc", codes, d, rows=[10, 11, 12, 13])
    assert msgs == ["enc row 13 subspace 0: code 200 out of range [0, 8)"]


def test_argmin_fails_wrong_shape():
    d = _dists()
    msgs = checks.argmin("enc", np.zeros((4, 2), np.uint8), d)
    assert len(msgs) == 1 and "(4, 2)" in msgs[0] and "(4, 3)" in msgs[0]
