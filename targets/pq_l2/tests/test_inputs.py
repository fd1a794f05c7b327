"""pq_l2's input generators are deterministic and shaped as intended.

* determinism: the same (seed, purpose) gives byte-identical arrays; a
  different seed or purpose gives different ones;
* structure: sparse ~10% and mostly_zero ~1% nonzero, large_dynamic_range
  rows at scales 1e-3, 1 and 1e3, ties with duplicate codes and centroids;
* relabel keeps every ADC distance, encode picks nearest centroids.
"""
import numpy as np
import pytest

from targets.pq_l2 import inputs as pq
from targets.pq_l2 import reference as pq_ref

SEED = 7


def same_bytes(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def nonzero_fraction(x):
    return np.count_nonzero(x) / x.size


def row_scales(x):
    """log10 of each row's RMS, rounded: the row's scale class."""
    rms = np.sqrt((x.astype(np.float64) ** 2).mean(axis=1))
    return np.log10(rms)


# ------------------------------------------------------------ pq_l2: determinism

def _pq_draw(seed, dist, purpose="battery"):
    """Everything a pq case draws, in the order run_experiment draws it."""
    ds = pq.Dataset(seed, 128, dist)
    rng = pq.rng_for(seed, purpose, "case")
    cb = pq.codebook(ds, rng, 16, 256)
    codes = pq.codes(ds, rng, cb, 300)
    queries = pq.queries(ds, rng, 4)
    sample = ds.sample(pq.rng_for(seed, purpose, "sample"), 50)
    return dict(codebook=cb, codes=codes, queries=queries, sample=sample)


@pytest.mark.parametrize("dist", pq.DISTRIBUTIONS)
def test_pq_same_seed_and_purpose_give_identical_bytes(dist):
    a, b = _pq_draw(SEED, dist), _pq_draw(SEED, dist)
    for name in a:
        assert same_bytes(a[name], b[name]), f"{dist} {name} differs between two draws"


@pytest.mark.parametrize("dist", pq.DISTRIBUTIONS)
def test_pq_different_seed_or_purpose_give_different_arrays(dist):
    base = _pq_draw(SEED, dist)
    for other in (_pq_draw(SEED + 1, dist), _pq_draw(SEED, dist, purpose="pool")):
        for name in ("codebook", "queries", "sample"):
            assert not np.array_equal(base[name], other[name]), f"{dist} {name} repeated"
        assert not np.array_equal(base["codes"], other["codes"]), f"{dist} codes repeated"


def test_pq_rng_streams_are_independent_per_purpose():
    draw = lambda *p: pq.rng_for(*p).standard_normal(8)
    assert np.array_equal(draw(SEED, "battery", "x"), draw(SEED, "battery", "x"))
    assert not np.array_equal(draw(SEED, "battery", "x"), draw(SEED, "battery", "y"))
    assert not np.array_equal(draw(SEED, "battery", "x"), draw(SEED + 1, "battery", "x"))
    assert not np.array_equal(draw(SEED, "battery"), draw(SEED, "battery", "x"))


def test_pq_unknown_distribution_is_refused():
    with pytest.raises(ValueError, match="unknown distribution"):
        pq.Dataset(SEED, 128, "cauchy")


# ------------------------------------------------------------ pq_l2: structure

def _pq_sample(dist, n=2000, dim=128):
    return pq.Dataset(SEED, dim, dist).sample(pq.rng_for(SEED, "structure", dist), n)


def test_pq_sample_dtype_and_shape():
    x = _pq_sample("gaussian", n=33, dim=96)
    assert x.dtype == np.float32 and x.shape == (33, 96) and x.flags.c_contiguous


@pytest.mark.parametrize("dist,fraction", [("sparse", 0.10), ("mostly_zero", 0.01)])
def test_pq_sparse_distributions_nonzero_fraction(dist, fraction):
    got = nonzero_fraction(_pq_sample(dist))        # 256k values: sd of the fraction ~6e-4
    assert abs(got - fraction) < 0.2 * fraction, f"{dist}: {got:.4f} nonzero"


def test_pq_large_dynamic_range_spans_three_scales():
    scales = row_scales(_pq_sample("large_dynamic_range"))
    classes = np.rint(scales / 3.0) * 3.0
    assert set(classes.tolist()) == {-3.0, 0.0, 3.0}
    assert np.abs(scales - classes).max() < 0.6      # each row sits at one scale
    counts = np.bincount(((classes + 3) // 3).astype(int))
    assert counts.min() > 0.25 * len(scales)         # roughly a third each


def test_pq_large_dynamic_range_queries_avoid_the_tiny_scale():
    # At scale 1e-3 every distance is under the absolute tolerance floor, so a
    # query there could not tell a right top-k from a wrong one.
    ds = pq.Dataset(SEED, 64, "large_dynamic_range")
    q = pq.queries(ds, pq.rng_for(SEED, "q"), 200)
    assert set(np.rint(row_scales(q) / 3.0).tolist()) == {0.0, 1.0}


def test_pq_ties_duplicate_vectors_centroids_and_codes():
    ds = pq.Dataset(SEED, 128, "ties")
    rng = pq.rng_for(SEED, "ties")
    assert len(np.unique(ds.sample(rng, 2000), axis=0)) <= 400        # few prototypes
    cb = pq.codebook(ds, rng, 16, 256)
    assert np.array_equal(cb[:, 128:], cb[:, :128])                  # every centroid has a twin
    codes = pq.codes(ds, rng, cb, 1500)
    assert len(np.unique(codes, axis=0)) < len(codes) // 2           # rows repeat


def test_pq_codebook_shape_and_centroids_are_data_points():
    ds = pq.Dataset(SEED, 96, "gaussian")
    cb = pq.codebook(ds, pq.rng_for(SEED, "cb"), 16, 256)
    assert cb.dtype == np.float32 and cb.shape == (16, 256, 6)
    again = ds.sample(pq.rng_for(SEED, "cb"), 256)       # the same draws, unreshaped
    assert np.array_equal(cb.transpose(1, 0, 2).reshape(256, 96), again)


def test_pq_encode_gives_nearest_centroids():
    ds = pq.Dataset(SEED, 128, "gaussian")
    rng = pq.rng_for(SEED, "encode")
    cb = pq.codebook(ds, rng, 16, 256)
    x = ds.sample(rng, 400)
    codes = pq.encode(x, cb)
    assert codes.dtype == np.uint8 and codes.shape == (400, 16)
    d = pq_ref.distance_tables(cb, x)                                # float64 [n, M, K]
    chosen = np.take_along_axis(d, codes.astype(np.int64)[..., None], axis=2)[..., 0]
    best = d.min(axis=2)
    # float32 expansion in the generator: equal to the float64 argmin up to rounding
    assert np.all(chosen - best <= 1e-5 * np.maximum(1.0, best))
    assert (codes == d.argmin(axis=2)).mean() > 0.99


@pytest.mark.parametrize("dist", ["gaussian", "ties", "large_dynamic_range"])
def test_pq_relabel_keeps_every_adc_distance(dist):
    ds = pq.Dataset(SEED, 128, dist)
    rng = pq.rng_for(SEED, "relabel-test", dist)
    cb = pq.codebook(ds, rng, 16, 256)
    code_sets = [pq.codes(ds, rng, cb, 500), pq.codes(ds, rng, cb, 300)]
    q = pq.queries(ds, rng, 3)
    new_cb, new_sets = pq.relabel(cb, code_sets, pq.rng_for(SEED, "relabel", dist))
    assert new_cb.dtype == np.float32 and new_cb.shape == cb.shape
    assert not np.array_equal(new_cb, cb)                        # new bytes ...
    for old, new in zip(code_sets, new_sets):
        assert new.dtype == np.uint8 and new.shape == old.shape and not np.array_equal(new, old)
        _, d_old = pq_ref.search(cb, q, old, 50)
        _, d_new = pq_ref.search(new_cb, q, new, 50)
        assert np.array_equal(d_old, d_new)                      # ... same search answer
        t_old, t_new = pq_ref.distance_tables(cb, q), pq_ref.distance_tables(new_cb, q)
        for i in range(len(q)):                                  # every distance, not just top-k
            assert np.array_equal(np.sort(pq_ref.adc_distances(t_old[i], old)),
                                  np.sort(pq_ref.adc_distances(t_new[i], new)))
