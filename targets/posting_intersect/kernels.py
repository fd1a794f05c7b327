"""posting_intersect kernel (agent-editable): the Python face of kernels.c.

The API is fixed by program.md; everything behind it may change. Imports
are limited to numpy, the standard math helpers and harness_common.cbuild.

Per-call overhead matters here (a skewed intersection is a few microseconds
of C): the pointer and length arrays are allocated once per instance (grown
when K exceeds them), each list costs one ffi.from_buffer (which also
refuses non-contiguous arrays) and one dtype identity test.
"""
import numpy as np

from harness_common.cbuild import load_kernel_lib

CDEF = """
long pi_intersect(const uint32_t *const *lists, const long *lens, int k, uint32_t *out, int isa);
"""
ffi, lib = load_kernel_lib(__file__, CDEF)

ISA_LEVELS = {"scalar": 0, "avx2": 1, "avx512": 2, "amx": 3}
_U32 = np.dtype(np.uint32)


class PostingIntersect:
    def __init__(self, isa):
        if isa not in ISA_LEVELS:
            raise ValueError(f"isa={isa!r} is not one of {sorted(ISA_LEVELS)}")
        self.isa = ISA_LEVELS[isa]
        self._kcap = 0
        self._grow(16)

    def _grow(self, k):
        self._kcap = max(k, 2 * self._kcap)
        self._ptrs = ffi.new("uint32_t *[]", self._kcap)
        self._lens = ffi.new("long[]", self._kcap)

    def intersect(self, lists, out):
        """Write the sorted intersection of `lists` into `out`; return how many values it holds."""
        k = len(lists)
        if k > self._kcap:
            self._grow(k)
        ptrs, lens, fb = self._ptrs, self._lens, ffi.from_buffer
        cap = -1
        i = 0
        for a in lists:
            if a.dtype is not _U32 and a.dtype != _U32:
                raise TypeError(f"lists[{i}] must have dtype uint32, got {a.dtype}")
            ptrs[i] = fb("uint32_t[]", a)        # ValueError if not C-contiguous
            n = len(a)
            lens[i] = n
            if n < cap or cap < 0:
                cap = n
            i += 1
        if out.dtype is not _U32 and out.dtype != _U32:
            raise TypeError(f"out must have dtype uint32, got {out.dtype}")
        if len(out) < cap:
            raise ValueError(f"out holds {len(out)} values; the shortest list has more")
        return lib.pi_intersect(ptrs, lens, k, fb("uint32_t[]", out, require_writable=True), self.isa)
