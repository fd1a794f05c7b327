# ============================================================================
# IMMUTABLE: the Python face of baseline.c, the scalar yardstick.
# ============================================================================
"""CamPqEncoder over baseline.c: the API of program.md, computed by plain scalar C."""
import numpy as np

from harness_common.cbuild import load_kernel_lib, pointer

CDEF = """
void campq_encode(const float *codebook, int dim, int num_subspaces, int num_centroids,
                  const float *rows, int n, uint8_t *out);
"""
ffi, lib = load_kernel_lib(__file__, CDEF, vectorize=False)


class CamPqEncoder:
    def __init__(self, dim, num_subspaces, codebook, isa):
        if not 0 < num_subspaces <= dim:
            raise ValueError(f"num_subspaces={num_subspaces} must be in 1..dim ({dim})")
        self.dim, self.s = dim, num_subspaces
        self.codebook = np.array(codebook, dtype=np.float32, order="C", copy=True)
        self.k = len(self.codebook)
        if not 0 < self.k <= 256:
            raise ValueError(f"codebook has {self.k} centroids; codes are uint8, so 1..256")
        self._cb = pointer(ffi, self.codebook, "float32", (self.k, dim), "codebook")

    def encode(self, rows, out):
        n = len(rows)
        x = pointer(ffi, rows, "float32", (None, self.dim), "rows")
        o = pointer(ffi, out, "uint8", (n, self.s), "out")
        lib.campq_encode(self._cb, self.dim, self.s, self.k, x, n, o)
