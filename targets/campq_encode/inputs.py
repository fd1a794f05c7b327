# ============================================================================
# IMMUTABLE: input generators for campq_encode. The harness checks this file
# against the ledger's baseline commit; an edit stops the trial (exit 5).
# ============================================================================
"""Deterministic weight-matrix rows and CAM-PQ codebooks for campq_encode.

Rows come from a `RowStream`: an endless, indexed sequence of rows for one
(seed, distribution, dim), generated in blocks of BLOCK rows, each block from
its own SeedSequence. Row i is always the same bytes, so "calibration rows
[0, 4096)" and "measured rows from 1,000,000 on" are disjoint by index, not
by luck: the codebook is never scored on the rows it was trained on.

The codebook is k-means (Lloyd) per subspace on calibration rows.
"""
import zlib

import numpy as np

DISTRIBUTIONS = ("gaussian", "heavy_tailed", "sparse", "uniform", "large_dynamic_range",
                 "mostly_zero")
BLOCK = 256
WEIGHT_SCALE = 0.02          # a typical initialisation scale of transformer weights


def _word(x):
    return zlib.crc32(x.encode()) if isinstance(x, str) else int(x)


def rng_for(seed, *purpose):
    """A Generator for (seed, purpose...): independent streams per purpose."""
    return np.random.default_rng(np.random.SeedSequence([_word(seed), *map(_word, purpose)]))


def subspaces(dim, num_subspaces):
    """Column ranges: subspace s is [s*dim//S, (s+1)*dim//S), uneven when S does not divide dim."""
    return [(s * dim // num_subspaces, (s + 1) * dim // num_subspaces) for s in range(num_subspaces)]


class RowStream:
    """Rows of one distribution: row i is a fixed function of (seed, dist, dim, i)."""

    def __init__(self, seed, dist, dim):
        if dist not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {dist!r}; one of {DISTRIBUTIONS}")
        self.seed, self.dist, self.dim = seed, dist, dim
        # Outlier columns, as in real LLM weights: a few columns with ~10x the scale.
        cols = rng_for(seed, "outliers", dist, dim)
        self.col_scale = np.ones(dim)
        self.col_scale[cols.choice(dim, max(1, dim // 100), replace=False)] = 10.0

    def block(self, b):
        rng = rng_for(self.seed, "rows", self.dist, self.dim, b)
        shape, d = (BLOCK, self.dim), self.dist
        if d == "gaussian":
            x = rng.standard_normal(shape) * WEIGHT_SCALE
        elif d == "heavy_tailed":
            x = rng.standard_t(3.0, shape) * WEIGHT_SCALE * self.col_scale
        elif d == "sparse":
            x = rng.standard_normal(shape) * WEIGHT_SCALE * (rng.random(shape) < 0.1)
        elif d == "uniform":
            x = rng.uniform(-2.5 * WEIGHT_SCALE, 2.5 * WEIGHT_SCALE, shape)
        elif d == "large_dynamic_range":
            scales = np.array([1e-3, 1.0, 1e3])[rng.integers(0, 3, BLOCK)]
            x = rng.standard_normal(shape) * scales[:, None]
        else:  # mostly_zero
            x = rng.standard_normal(shape) * WEIGHT_SCALE * (rng.random(shape) < 0.01)
        return x.astype(np.float32)

    def rows(self, start, count):
        """float32 [count, dim]: rows start .. start+count-1 of the stream."""
        first, last = start // BLOCK, (start + count - 1) // BLOCK
        x = np.concatenate([self.block(b) for b in range(first, last + 1)])
        off = start - first * BLOCK
        return np.ascontiguousarray(x[off:off + count])


def kmeans(x, k, iterations, rng):
    """Lloyd's k-means from k distinct random rows; an empty cluster takes the
    point farthest from its centroid. float32 [k, d]."""
    x = x.astype(np.float32)
    centres = x[rng.choice(len(x), k, replace=False)].copy()
    norms = (x.astype(np.float64) ** 2).sum(1)
    for _ in range(iterations):
        d = norms[:, None] - 2.0 * (x @ centres.T) + (centres.astype(np.float64) ** 2).sum(1)[None]
        assign = d.argmin(1)
        counts = np.bincount(assign, minlength=k)
        onehot = np.zeros((k, len(x)), np.float32)
        onehot[assign, np.arange(len(x))] = 1.0
        sums = (onehot @ x).astype(np.float64)            # per-cluster sums, through BLAS
        far = np.argsort(-d[np.arange(len(x)), assign])
        for j, c in enumerate(np.flatnonzero(counts == 0)):
            sums[c], counts[c] = x[far[j]], 1
        centres = (sums / counts[:, None]).astype(np.float32)
    return centres


def train_codebook(stream, start, count, num_subspaces, num_centroids, iterations, seed):
    """float32 [K, dim]: k-means per subspace on calibration rows [start, start+count)."""
    x = stream.rows(start, count)
    cb = np.empty((num_centroids, stream.dim), np.float32)
    for s, (lo, hi) in enumerate(subspaces(stream.dim, num_subspaces)):
        cb[:, lo:hi] = kmeans(x[:, lo:hi], num_centroids, iterations,
                              rng_for(seed, "kmeans", stream.dist, stream.dim, s))
    return cb


def duplicate_centroids(codebook, rng):
    """A copy where a quarter of the centroids repeat others exactly (exact ties)."""
    cb = codebook.copy()
    k = len(cb)
    dst = rng.choice(k, k // 4, replace=False)
    cb[dst] = cb[rng.integers(0, k, len(dst))]
    return cb


def rows_at_centroids(codebook, num_subspaces, rng, n):
    """Rows whose every subspace slice equals some centroid's (distance exactly 0)."""
    rows = np.empty((n, codebook.shape[1]), np.float32)
    for lo, hi in subspaces(codebook.shape[1], num_subspaces):
        rows[:, lo:hi] = codebook[rng.integers(0, len(codebook), n), lo:hi]
    return rows


def near_tie_rows(codebook, num_subspaces, rng, n, gap=0.0):
    """Rows in every subspace between a centroid a and its nearest other
    centroid b: on the bisector, moved toward a so that d_b - d_a = gap * d_a
    (gap 0: an exact tie up to rounding; a small gap: a tie that exact float32
    math resolves and a lossy distance does not)."""
    rows = np.empty((n, codebook.shape[1]), np.float32)
    for lo, hi in subspaces(codebook.shape[1], num_subspaces):
        c = codebook[:, lo:hi].astype(np.float64)
        sq = (c * c).sum(1)
        d = sq[:, None] + sq[None, :] - 2.0 * c @ c.T
        np.fill_diagonal(d, np.inf)
        d[d <= 0] = np.inf                       # skip exact duplicates
        a = rng.integers(0, len(c), n)
        b = d[a].argmin(1)
        mid, half = 0.5 * (c[a] + c[b]), 0.5 * (c[a] - c[b])
        # x = mid + lam * half gives d_a = (1-lam)^2 |half|^2, d_b = (1+lam)^2 |half|^2
        lam = gap / 4.0
        rows[:, lo:hi] = mid + lam * half
    return rows
