"""campq_encode's input generators are deterministic and shaped as intended.

* a RowStream row is the same bytes whichever read produced it; sparse,
  mostly_zero and large_dynamic_range rows are shaped as named;
* uneven subspaces cover every column once, k-means improves on its start,
  rows_at_centroids and duplicate_centroids make exact zeros and exact
  duplicates, the trained codebook is cached on disk, and the battery's
  measured rows never overlap the calibration rows the codebook was trained on.
"""
import time

import numpy as np
import pytest

from harness_common import cbuild, config
from targets.campq_encode import inputs as cq
from targets.campq_encode import reference as cq_ref
from targets.campq_encode import run_experiment as cq_rx

SEED = 7


def same_bytes(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def nonzero_fraction(x):
    return np.count_nonzero(x) / x.size


def row_scales(x):
    """log10 of each row's RMS, rounded: the row's scale class."""
    rms = np.sqrt((x.astype(np.float64) ** 2).mean(axis=1))
    return np.log10(rms)


# ------------------------------------------------------------ campq: RowStream

def test_campq_rowstream_same_rows_for_same_seed():
    a = cq.RowStream(SEED, "gaussian", 1024).rows(1000, 300)
    b = cq.RowStream(SEED, "gaussian", 1024).rows(1000, 300)
    assert same_bytes(a, b)
    assert a.dtype == np.float32 and a.shape == (300, 1024) and a.flags.c_contiguous


def test_campq_rowstream_differs_by_seed_dist_dim_and_index():
    base = cq.RowStream(SEED, "gaussian", 256).rows(0, 64)
    assert not np.array_equal(base, cq.RowStream(SEED + 1, "gaussian", 256).rows(0, 64))
    assert not np.array_equal(base, cq.RowStream(SEED, "uniform", 256).rows(0, 64))
    assert not np.array_equal(base[:, :255], cq.RowStream(SEED, "gaussian", 255).rows(0, 64))
    assert not np.array_equal(base, cq.RowStream(SEED, "gaussian", 256).rows(cq.BLOCK, 64))
    assert len(np.unique(base, axis=0)) == len(base)


@pytest.mark.parametrize("start,count", [(200, 1), (255, 2), (256, 256), (300, 400), (899, 1),
                                         (511, 257)])
def test_campq_row_is_the_same_bytes_whichever_read_produced_it(start, count):
    stream = cq.RowStream(SEED, "heavy_tailed", 96)
    long = stream.rows(200, 700)                       # rows 200..899, blocks 0..3
    assert same_bytes(stream.rows(start, count), long[start - 200:start - 200 + count])


def test_campq_far_rows_are_cheap_and_stable():
    """Measured rows live past index 2^20; reading there must not generate the rows before."""
    stream = cq.RowStream(SEED, "sparse", 64)
    far = cq_rx.CB["measurement_start"] + cq.BLOCK * 123456
    assert same_bytes(stream.rows(far + 10, 5), stream.rows(far, 20)[10:15])


def _cq_rows(dist, n=1024, dim=512):
    return cq.RowStream(SEED, dist, dim).rows(0, n)


@pytest.mark.parametrize("dist,fraction", [("sparse", 0.10), ("mostly_zero", 0.01)])
def test_campq_sparse_distributions_nonzero_fraction(dist, fraction):
    got = nonzero_fraction(_cq_rows(dist))
    assert abs(got - fraction) < 0.2 * fraction, f"{dist}: {got:.4f} nonzero"


def test_campq_large_dynamic_range_spans_three_scales():
    scales = row_scales(_cq_rows("large_dynamic_range"))
    classes = np.rint(scales / 3.0) * 3.0
    assert set(classes.tolist()) == {-3.0, 0.0, 3.0}
    assert np.abs(scales - classes).max() < 0.3


def test_campq_unknown_distribution_is_refused():
    with pytest.raises(ValueError, match="unknown distribution"):
        cq.RowStream(SEED, "cauchy", 64)


# ------------------------------------------------------------ campq: subspaces, k-means, edge rows

@pytest.mark.parametrize("dim", [1024, 3072, 4096, 1026, 999])
def test_campq_subspaces_cover_every_column_once(dim):
    bounds = cq.subspaces(dim, 6)
    assert len(bounds) == 6 and bounds[0][0] == 0 and bounds[-1][1] == dim
    assert all(hi == lo2 for (_, hi), (lo2, _) in zip(bounds, bounds[1:]))     # contiguous
    covered = np.zeros(dim, int)
    for lo, hi in bounds:
        covered[lo:hi] += 1
    assert np.all(covered == 1)
    assert bounds == cq_ref._bounds(dim, 6)                   # the oracle splits the same way


def test_campq_subspaces_1024_are_uneven():
    widths = [hi - lo for lo, hi in cq.subspaces(1024, 6)]
    assert sorted(set(widths)) == [170, 171] and sum(widths) == 1024


def _sse(x, centres):
    d = ((x[:, None, :].astype(np.float64) - centres[None].astype(np.float64)) ** 2).sum(-1)
    return d.min(axis=1).sum()


def test_campq_kmeans_distinct_centroids_and_lower_error_than_start():
    x = cq.RowStream(SEED, "gaussian", 24).rows(0, 2000)
    start = cq.kmeans(x, 32, 0, cq.rng_for(SEED, "km"))      # 0 iterations: the initial rows
    done = cq.kmeans(x, 32, 8, cq.rng_for(SEED, "km"))
    assert done.dtype == np.float32 and done.shape == (32, 24)
    assert len(np.unique(done, axis=0)) == 32
    pair = ((done[:, None] - done[None]) ** 2).sum(-1) + np.eye(32) * 1e9
    assert pair.min() > 0
    assert _sse(x, done) < 0.95 * _sse(x, start)
    assert same_bytes(done, cq.kmeans(x, 32, 8, cq.rng_for(SEED, "km")))     # seeded


def test_campq_kmeans_refills_empty_clusters():
    """Many duplicate points: empty clusters take far points, so every centroid stays in use."""
    base = cq.RowStream(SEED, "gaussian", 8).rows(0, 40)
    x = np.repeat(base, 25, axis=0)
    centres = cq.kmeans(x, 40, 5, cq.rng_for(SEED, "km-empty"))
    assert np.all(np.isfinite(centres))
    assert len(np.unique(centres, axis=0)) > 30


@pytest.fixture(scope="module")
def trained_codebook():
    return cq_rx.codebook("gaussian", 1024)


def test_campq_rows_at_centroids_are_exactly_some_centroid(trained_codebook):
    cb = trained_codebook
    rows = cq.rows_at_centroids(cb, 6, cq.rng_for(SEED, "at"), 40)
    ref = cq_ref.distances(cb, rows, 6)
    for s, (lo, hi) in enumerate(cq.subspaces(1024, 6)):
        exact = ((rows[:, None, lo:hi].astype(np.float64) - cb[None, :, lo:hi]) ** 2).sum(-1)
        assert np.all(exact.min(axis=1) == 0.0)                 # the slice IS a centroid's
        # The oracle computes |x|^2 + |c|^2 - 2 x.c in float64: zero up to its documented
        # 1e-12 relative rounding (not always bit-exact 0).
        scale = (rows[:, lo:hi].astype(np.float64) ** 2).sum(1)
        assert np.all(ref[:, s].min(axis=1) <= 1e-12 * (2 * scale + 1e-30))


def test_campq_duplicate_centroids_are_exact_copies(trained_codebook):
    cb = trained_codebook
    dup = cq.duplicate_centroids(cb, cq.rng_for(SEED, "dup"))
    assert dup.dtype == np.float32 and dup.shape == cb.shape
    assert len(np.unique(cb, axis=0)) == len(cb)                # trained centroids are distinct
    changed = np.flatnonzero((dup != cb).any(axis=1))
    assert 0 < len(changed) <= len(cb) // 4
    for i in changed:                                             # each an exact copy of an original
        assert (cb == dup[i]).all(axis=1).any()
    assert len(np.unique(dup, axis=0)) < len(cb)
    assert not np.shares_memory(dup, cb)


def test_campq_near_tie_rows_sit_between_two_centroids(trained_codebook):
    cb = trained_codebook
    rows = cq.near_tie_rows(cb, 6, cq.rng_for(SEED, "tie"), 20)
    d = np.sort(cq_ref.distances(cb, rows, 6), axis=2)
    gap = (d[..., 1] - d[..., 0]) / np.maximum(d[..., 0], 1e-30)
    assert np.median(gap) < 1e-3                                  # runner-up within a hair


# ------------------------------------------------------------ campq: codebook cache, disjoint rows

def test_campq_codebook_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(cbuild, "_CACHE_DIR", tmp_path)          # a cold cache of our own
    t0 = time.perf_counter()
    first = cq_rx.codebook("gaussian", 999)
    t1 = time.perf_counter()
    second = cq_rx.codebook("gaussian", 999)
    t2 = time.perf_counter()
    assert same_bytes(first, second)
    assert first.shape == (cq_rx.CB["num_centroids"], 999)
    files = list((cbuild.cache_dir() / "data").glob("*.npz"))
    assert len(files) == 1 and files[0].parent == tmp_path / "data"
    # training (k-means on 4096 rows) vs reading one .npz: a generous factor
    assert (t2 - t1) * 5 < (t1 - t0), f"train {t1 - t0:.3f}s, cached {t2 - t1:.3f}s"


@pytest.fixture(scope="module")
def campq_battery_reads():
    """(dist, dim, start, count) of every RowStream read while building the battery."""
    cq_rx.battery(SEED)                      # warm the codebook cache: no training reads below
    reads = []
    original = cq.RowStream.rows

    def recording(self, start, count):
        reads.append((self.dist, self.dim, start, count))
        return original(self, start, count)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cq.RowStream, "rows", recording)
        cases = cq_rx.battery(SEED)
    return cases, reads


def test_campq_battery_rows_are_read_from_the_measurement_range(campq_battery_reads):
    cases, reads = campq_battery_reads
    cal_lo = cq_rx.CB["calibration_start"]
    cal_hi = cal_lo + cq_rx.CB["calibration_rows"]
    b = cq_rx.BATTERY
    from_stream = (len(b["dims"]) * len(b["distributions"]) + len(b["held_out_dims"])
                   + sum(e.get("rows", "stream") == "stream" for e in b["edge_cases"]))
    assert len(reads) == from_stream                   # one read per stream case, nothing else
    for dist, dim, start, count in reads:
        assert start + count <= cal_lo or start >= cal_hi, (dist, dim, start, count)
        assert start >= cq_rx.CB["measurement_start"]


def test_campq_measured_rows_never_overlap_calibration(monkeypatch):
    starts = []
    original = cq.RowStream.rows
    monkeypatch.setattr(cq.RowStream, "rows",
                        lambda self, start, count: starts.append(start) or original(self, start, count))
    for i in range(200):
        cq_rx._measured_rows("gaussian", 16, 48, cq.rng_for(SEED, "measured", i))
    cal_hi = cq_rx.CB["calibration_start"] + cq_rx.CB["calibration_rows"]
    assert len(starts) == 200 and min(starts) >= max(cal_hi, cq_rx.CB["measurement_start"])


def test_campq_battery_rows_differ_from_every_calibration_row(campq_battery_reads):
    cases, _ = campq_battery_reads
    case = next(c for c in cases if c.name == "gaussian/1024")
    calibration = cq.RowStream(cq_rx.CB["stream_seed"], "gaussian", 1024).rows(
        cq_rx.CB["calibration_start"], cq_rx.CB["calibration_rows"])
    seen = {row.tobytes() for row in calibration}
    assert not any(row.tobytes() in seen for row in case.calls[0].args["rows"])


def test_campq_overlapping_configuration_is_refused():
    bad = dict(cq_rx.CB, measurement_start=cq_rx.CB["calibration_rows"] - 1)
    with pytest.raises(config.ConfigError, match="measurement_start"):
        cq_rx.check_disjoint(bad)
    cq_rx.check_disjoint(cq_rx.CB)                                # the shipped one is fine
