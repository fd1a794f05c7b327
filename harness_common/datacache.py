"""A disk cache for expensive, seeded input data (encoded pools, trained codebooks).

Keyed by everything that determines the data; stored as .npz written to a
temporary file and renamed, so a crash never leaves half a file behind.
"""
import hashlib
import os
import tempfile

import numpy as np

from . import cbuild


def cached(key, make):
    """make() -> {name: array}, computed once per key and then read from disk."""
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
    folder = cbuild.cache_dir() / "data"
    path = folder / f"{digest}.npz"
    if path.exists():
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):
            pass                        # unreadable: rebuild it below
    arrays = make()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return arrays
