"""What `python -m harness_common compare posting_intersect` compares: CRoaring and numpy.

CRoaring through pyroaring: each list becomes a BitMap outside the timer
(array containers at these densities, bitmap containers for dense lists),
and the timed call is `BitMap.intersection` of all K, then its values into
the output. numpy: `intersect1d` folded over the lists (assume_unique).
"""
import time

import numpy as np

from . import run_experiment

UNIT = "intersect"
KERNEL_CLASS = "PostingIntersect"
RIVALS_NEED = "pyroaring"
ROOFLINE = "every input byte read once at this machine's measured read rate (ns per intersect)"


def combos(seed):
    return run_experiment.speed_combos(seed)


def rival_versions():
    import pyroaring
    return f"CRoaring (pyroaring {pyroaring.__version__}) and numpy {np.__version__} intersect1d"


def rivals(combo):
    """{name: prepare(call) -> timed callable -> outputs}."""
    from pyroaring import BitMap

    def roaring(call):
        maps = [BitMap(a) for a in call.args["lists"]]          # built outside the timer

        def run():
            got = BitMap.intersection(*maps) if len(maps) > 1 else maps[0]
            return _outputs(call, np.array(got.to_array(), np.uint32))
        return run

    def numpy(call):
        lists = call.args["lists"]

        def run():
            acc = lists[0]
            for other in lists[1:]:
                acc = np.intersect1d(acc, other, assume_unique=True)
            return _outputs(call, acc)
        return run

    return {"croaring": roaring, "numpy": numpy}


def _outputs(call, values):
    out = np.empty(call.outputs["out"][1], np.uint32)
    out[:len(values)] = values
    return {"out": out, "count": np.array(len(values))}


_READ_NS_PER_BYTE = {}


def _read_ns_per_byte(nbytes):
    """Warm read time per byte of an array of `nbytes` (a reduction over it, best of 30)."""
    key = max(4096, 1 << int(nbytes - 1).bit_length())
    if key not in _READ_NS_PER_BYTE:
        x = np.ones(key // 8, np.uint64)
        best = float("inf")
        for _ in range(30):
            t = time.perf_counter_ns()
            np.bitwise_or.reduce(x)
            best = min(best, time.perf_counter_ns() - t)
        _READ_NS_PER_BYTE[key] = best / key
    return _READ_NS_PER_BYTE[key]


def roofline_ns(combo, call, fma_per_ns):
    """Every input list read once, at the read rate measured for that many bytes. Galloping
    reads less than all of a long list, so skewed combos can pass this estimate."""
    nbytes = sum(a.nbytes for a in call.args["lists"])
    return nbytes * _read_ns_per_byte(nbytes)
