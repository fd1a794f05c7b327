# ============================================================================
# IMMUTABLE: the oracle of posting_intersect. The harness checks this file
# against the ledger's baseline commit; an edit stops the trial (exit 5).
# ============================================================================
"""The oracle: the sorted intersection of K sorted, duplicate-free uint32 lists, by numpy sets."""
import numpy as np


def intersect(lists):
    """uint32 [count]: the values present in every list, ascending.

    K = 0 gives no values (there is no list to draw them from); K = 1 gives the list."""
    if len(lists) == 0:
        return np.zeros(0, np.uint32)
    acc = np.asarray(lists[0], np.uint32)
    for other in lists[1:]:
        acc = np.intersect1d(acc, np.asarray(other, np.uint32))
    return np.array(acc, np.uint32)


def capacity(lists):
    """The size of the output buffer a call gets: the shortest list's length (0 when K = 0)."""
    return min((len(a) for a in lists), default=0)
