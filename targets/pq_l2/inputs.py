# ============================================================================
# IMMUTABLE: input generators for pq_l2. The harness checks this file against
# the ledger's baseline commit; an edit stops the trial (exit 5).
# ============================================================================
"""Deterministic input generators for pq_l2.

Every array comes from a numpy Generator seeded by a SeedSequence built from
(seed, purpose, ...), so the same seed always gives the same bytes and
different purposes never share a stream.

A distribution is a `Dataset`: fixed parameters (cluster centres, scales)
from the seed, and `sample(rng, n)` to draw vectors. The codebook is drawn
from the dataset (centroids are data points, like a k-means++ start), codes
encode fresh dataset vectors with that codebook (nearest centroid per
sub-vector), and queries are further fresh dataset vectors.
"""
import zlib

import numpy as np

DISTRIBUTIONS = ("gaussian", "uniform", "clustered", "sparse",
                 "large_dynamic_range", "mostly_zero", "ties")


def _word(x):
    return zlib.crc32(x.encode()) if isinstance(x, str) else int(x)


def rng_for(seed, *purpose):
    """A Generator for (seed, purpose...): independent streams per purpose."""
    return np.random.default_rng(np.random.SeedSequence([_word(seed), *map(_word, purpose)]))


class Dataset:
    """One distribution of dim-dimensional float32 vectors."""

    def __init__(self, seed, dim, dist):
        if dist not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {dist!r}; one of {DISTRIBUTIONS}")
        self.dim, self.dist = dim, dist
        rng = rng_for(seed, "dataset", dist, dim)
        self.centres = rng.standard_normal((64, dim)).astype(np.float32) * 2.0
        # ties: a few hundred distinct vectors, so codes repeat 3-4 times each
        # and a query's top-k still spans several distance levels
        self.prototypes = rng.standard_normal((400, dim)).astype(np.float32)
        # large_dynamic_range: clusters at scales 1e-3, 1 and 1e3, 20 of each
        self.scales = np.repeat([1e-3, 1.0, 1e3], 20)

    def sample(self, rng, n):
        d, dim = self.dist, self.dim
        if d == "gaussian":
            x = rng.standard_normal((n, dim))
        elif d == "uniform":
            x = rng.uniform(-1.0, 1.0, (n, dim))
        elif d == "clustered":
            x = self.centres[rng.integers(0, len(self.centres), n)] + \
                0.25 * rng.standard_normal((n, dim))
        elif d == "sparse":
            x = rng.standard_normal((n, dim)) * (rng.random((n, dim)) < 0.1)
        elif d == "large_dynamic_range":
            c = rng.integers(0, len(self.scales), n)
            x = (self.centres[c % len(self.centres)] + 0.2 * rng.standard_normal((n, dim))) \
                * self.scales[c][:, None]
        elif d == "mostly_zero":
            x = rng.standard_normal((n, dim)) * (rng.random((n, dim)) < 0.01)
        else:  # ties: few distinct vectors, so codes and distances repeat exactly
            x = self.prototypes[rng.integers(0, len(self.prototypes), n)]
        return np.ascontiguousarray(x, dtype=np.float32)


def codebook(dataset, rng, num_sub_vectors, num_centroids):
    """float32 [M, K, dim/M]: centroids drawn from the data; `ties` adds exact duplicates."""
    dim = dataset.dim
    dsub = dim // num_sub_vectors
    pts = dataset.sample(rng, num_centroids)
    cb = pts.reshape(num_centroids, num_sub_vectors, dsub).transpose(1, 0, 2).copy()
    if dataset.dist == "ties":
        half = num_centroids // 2
        cb[:, half:2 * half] = cb[:, :half]          # every centroid has a twin
    return np.ascontiguousarray(cb, dtype=np.float32)


def encode(vectors, cb):
    """uint8 [n, M]: nearest centroid per sub-vector (float32; data generation only)."""
    n = len(vectors)
    m_count, _, dsub = cb.shape
    xs = vectors.reshape(n, m_count, dsub)
    norms = (cb.astype(np.float32) ** 2).sum(-1)
    codes = np.empty((n, m_count), np.uint8)
    for m in range(m_count):
        d = xs[:, m] @ cb[m].T
        d *= -2.0
        d += norms[m]
        codes[:, m] = d.argmin(axis=1)
    return codes


def codes(dataset, rng, cb, n):
    """Codes of n fresh dataset vectors; `ties` also repeats whole rows."""
    out = encode(dataset.sample(rng, n), cb)
    if dataset.dist == "ties" and n >= 2:
        half = n // 2
        out[half:2 * half] = out[rng.permutation(half)]
    return out


def queries(dataset, rng, nq):
    """float32 [nq, dim] fresh query vectors, drawn like the data. Two
    distributions need care so that a query's top-k is never flat within the
    checker's tolerance (or a scan of half the codes would pass): `ties`
    queries sit near, not on, a prototype; `large_dynamic_range` queries come
    from the scale-1 and scale-1e3 clusters, whose neighbours differ by far
    more than the tolerance (at scale 1e-3 every distance is inside it)."""
    if dataset.dist == "ties":
        q = dataset.sample(rng, nq) + 0.3 * rng.standard_normal((nq, dataset.dim))
        return np.ascontiguousarray(q, dtype=np.float32)
    if dataset.dist == "large_dynamic_range":
        c = rng.integers(20, len(dataset.scales), nq)
        q = (dataset.centres[c % len(dataset.centres)] + 0.2 * rng.standard_normal((nq, dataset.dim))) \
            * dataset.scales[c][:, None]
        return np.ascontiguousarray(q, dtype=np.float32)
    return dataset.sample(rng, nq)


def relabel(cb, codes_list, rng):
    """The same search under fresh names: permute centroid labels per sub-vector
    (codebook and codes together) and the order of code rows. Distances are
    unchanged; the bytes a kernel sees are new."""
    m_count, k, _ = cb.shape
    perms = np.stack([rng.permutation(k) for _ in range(m_count)])      # old -> new label
    new_cb = np.empty_like(cb)
    for m in range(m_count):
        new_cb[m, perms[m]] = cb[m]
    out = []
    for c in codes_list:
        mapped = perms[np.arange(m_count)[None, :], c.astype(np.int64)].astype(np.uint8)
        out.append(np.ascontiguousarray(mapped[rng.permutation(len(c))]))
    return new_cb, out
