"""This CPU's peak fp32 multiply-add rate at an ISA level, for roofline estimates."""
import time
from pathlib import Path

from . import cbuild

_CDEF = "long peak_fma_lanes(long iters, int isa, double *sink);"
_LEVEL = {"scalar": 0, "avx2": 1, "avx512": 2, "amx": 2}


def fma_lanes_per_ns(level, repeats=5):
    """Best-of-`repeats` fp32 multiply-adds per nanosecond on one core at `level`."""
    ffi, lib = cbuild.load_kernel_lib(Path(__file__).with_name("peaks.py"), _CDEF)
    sink = ffi.new("double *")
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter_ns()
        lanes = lib.peak_fma_lanes(2_000_000, _LEVEL[level], sink)
        best = max(best, lanes / (time.perf_counter_ns() - t))
    return best
