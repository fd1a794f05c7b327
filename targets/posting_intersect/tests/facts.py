"""What the generic suites in tests/ need to know about posting_intersect.

Expressions are Python source evaluated inside a wrapper of the kernel's
methods: call predicates see the timed method's parameters by name, shape
predicates see `init`, the constructor's keyword arguments (none here).
"""
import numpy as np

TIMED = "intersect"                                # the method the speed combos time
SIGNATURE = "lists, out"
INPUT = "(lists or [out])[0]"                      # an input a cheat can scribble on (K = 0 has none)
OUTPUTS = "out"                                    # the timed method's outputs (the count is its return value)
# Timed calls are shifted by a random offset: their values start far above the battery's.
SPEED_CALL = ("len(lists) in (2, 3, 5) and min(map(len, lists)) > 0 and 1_000_000 < int(lists[0][0]) "
              "and int(lists[0][-1]) < 4_290_000_000")
SPEED_SHAPE = "True"                               # every call has the same shape of arguments
BIGGEST_COMBO = "len(lists) == 5 and min(map(len, lists)) > 4000 and 1_000_000 < int(lists[0][0])"
WRONG = "out[:1] ^= 1"                             # right values made wrong


class _Honest:
    """The API in numpy, right by construction."""

    def __init__(self, isa="scalar"):
        pass

    def intersect(self, lists, out):
        acc = lists[0] if lists else np.zeros(0, np.uint32)
        for other in lists[1:]:
            acc = np.intersect1d(acc, other, assume_unique=True)
        out[:len(acc)] = acc
        return len(acc)


def honest(**init):
    """An honest kernel, in-process: the generic tolerance suite's yardstick."""
    return _Honest(**init)
