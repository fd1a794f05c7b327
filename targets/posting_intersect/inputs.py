# ============================================================================
# IMMUTABLE: input generators for posting_intersect. The harness checks this
# file against the ledger's baseline commit; an edit stops the trial (exit 5).
# ============================================================================
"""Deterministic posting lists: every list is a fixed function of (seed, purpose).

A list is sorted, duplicate-free uint32. An instance is K lists drawn from one
distribution, with a common core planted in every list (real posting lists of
the terms of one query are correlated), in random order (the shortest list may
be anywhere).
"""
import zlib

import numpy as np

MAX = (1 << 32) - 1

# name: (universe, values per list, planted common fraction)
DISTRIBUTIONS = {
    "balanced": (1_000_000, 10_000, 0.05),    # about 1% of a 1M universe each
    "dense": (10_000, 5_000, 0.0),            # about 50% of a 10k universe
    "sparse": (1_000_000, 10, 0.3),           # 10 values in 1M
}
SKEWED = (500_000, 25_000, 50, 0.5)           # universe, long lists, the short list, its planted half


def _word(x):
    return zlib.crc32(x.encode()) if isinstance(x, str) else int(x)


def rng_for(seed, *purpose):
    """A Generator for (seed, purpose...): independent streams per purpose."""
    return np.random.default_rng(np.random.SeedSequence([_word(seed), *map(_word, purpose)]))


def sorted_set(values):
    """Sorted, duplicate-free uint32 from any integer values."""
    return np.unique(np.asarray(values, np.int64)).astype(np.uint32)


def _random_list(rng, universe, n):
    """About n distinct values, uniform in [0, universe)."""
    return np.flatnonzero(rng.random(universe) < n / universe)


def _clustered_list(rng, universe):
    """Runs of consecutive values (mean length 16) separated by gaps (mean 1600): about 1%."""
    starts = np.cumsum(rng.geometric(1 / 1616, size=universe // 1616 + 8))
    lengths = rng.geometric(1 / 16, size=len(starts))
    values = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)])
    return values[values < universe]


def instance(rng, dist, k):
    """K lists of distribution `dist` (list of uint32 arrays), in random order."""
    if dist == "skewed":
        universe, n_long, n_short, planted = SKEWED
        longs = [_random_list(rng, universe, n_long) for _ in range(k - 1)]
        short = rng.choice(universe, n_short, replace=False)
        common = short[:int(n_short * planted)]
        lists = [sorted_set(short)] + [sorted_set(np.concatenate([a, common])) for a in longs]
    elif dist == "clustered":
        universe = 1_000_000
        common = np.concatenate([np.arange(v, v + 16) for v in rng.choice(universe - 16, 4)])
        lists = [sorted_set(np.concatenate([_clustered_list(rng, universe), common]))
                 for _ in range(k)]
    elif dist in DISTRIBUTIONS:
        universe, n, planted = DISTRIBUTIONS[dist]
        common = rng.choice(universe, int(n * planted), replace=False)
        lists = [sorted_set(np.concatenate([_random_list(rng, universe, n), common]))
                 for _ in range(k)]
    else:
        raise ValueError(f"unknown distribution {dist!r}")
    return [lists[i] for i in rng.permutation(k)]


def fresh(rng, lists, keep):
    """A new instance from a cached one: each value kept with chance `keep`, every list
    shifted by one random offset (values stay below 2^32), the lists reordered. The
    result depends on every value of every list, so no cached answer replays it."""
    top = max((int(a[-1]) for a in lists if len(a)), default=0)
    offset = np.uint32(rng.integers(0, MAX - top + 1))
    out = [a[rng.random(len(a)) < keep] + offset for a in lists]
    return [out[i] for i in rng.permutation(len(out))]
