# ============================================================================
# IMMUTABLE: the Python face of baseline.c, the scalar yardstick.
# ============================================================================
"""PostingIntersect over baseline.c: the API of program.md, computed by plain scalar C."""
import numpy as np

from harness_common.cbuild import load_kernel_lib, pointer

CDEF = """
long intersect(const uint32_t *const *lists, const long *lens, int k, uint32_t *out);
"""
ffi, lib = load_kernel_lib(__file__, CDEF, vectorize=False)


class PostingIntersect:
    def __init__(self, isa):
        pass

    def intersect(self, lists, out):
        k = len(lists)
        ptrs = ffi.new("uint32_t *[]", max(k, 1))
        lens = np.array([len(a) for a in lists] or [0], np.int64)
        for i, a in enumerate(lists):
            ptrs[i] = pointer(ffi, a, "uint32", (None,), f"lists[{i}]")
        o = pointer(ffi, out, "uint32", (None,), "out")
        return int(lib.intersect(ptrs, ffi.cast("long *", ffi.from_buffer(lens)), k, o))
