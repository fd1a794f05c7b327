"""posting_intersect kernel (agent-editable): the Python face of kernels.c.

The API is fixed by program.md; everything behind it may change. Imports
are limited to numpy, the standard math helpers and harness_common.cbuild.
"""
import numpy as np

from harness_common.cbuild import load_kernel_lib, pointer

CDEF = """
long pi_intersect(const uint32_t *const *lists, const long *lens, int k, uint32_t *out, int isa);
"""
ffi, lib = load_kernel_lib(__file__, CDEF)

ISA_LEVELS = {"scalar": 0, "avx2": 1, "avx512": 2, "amx": 3}


class PostingIntersect:
    def __init__(self, isa):
        if isa not in ISA_LEVELS:
            raise ValueError(f"isa={isa!r} is not one of {sorted(ISA_LEVELS)}")
        self.isa = ISA_LEVELS[isa]

    def intersect(self, lists, out):
        """Write the sorted intersection of `lists` into `out`; return how many values it holds."""
        k = len(lists)
        if len(out) < min((len(a) for a in lists), default=0):
            raise ValueError(f"out holds {len(out)} values; the shortest list has more")
        ptrs = ffi.new("uint32_t *[]", max(k, 1))
        lens = np.array([len(a) for a in lists] or [0], np.int64)
        for i, a in enumerate(lists):
            ptrs[i] = pointer(ffi, a, "uint32", (None,), f"lists[{i}]")
        o = pointer(ffi, out, "uint32", (None,), "out")
        return int(lib.pi_intersect(ptrs, ffi.cast("long *", ffi.from_buffer(lens)), k, o, self.isa))
