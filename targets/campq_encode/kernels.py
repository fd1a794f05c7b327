"""campq_encode kernel (agent-editable): the Python face of kernels.c.

The API is fixed by program.md; everything behind it may change. Imports
are limited to numpy, the standard math helpers and harness_common.cbuild.
"""
import numpy as np

from harness_common.cbuild import load_kernel_lib, pointer

CDEF = """
void campq_prepare(const float *codebook, int dim, int num_subspaces, int num_centroids,
                   float *packed, float *norms);
void campq_encode(const float *packed, const float *norms, int dim, int num_subspaces,
                  int num_centroids, const float *rows, int n, uint8_t *out, int isa,
                  const float *codebook, int wq, const int8_t *qpack, const float *scale,
                  const int32_t *t64, const float *bx, const float *bq);
void campq_prepare_i8(const float *codebook, int dim, int num_subspaces, int num_centroids,
                      int wq, int qmax, int group, int8_t *qpack, float *scale, int32_t *t64,
                      float *bx, float *bq);
"""
ffi, lib = load_kernel_lib(__file__, CDEF)

ISA_LEVELS = {"scalar": 0, "avx2": 1, "avx512": 2, "amx": 3}


def aligned(shape, dtype, align=64):
    """An empty array whose data starts on a cache line. numpy's own buffers start
    wherever malloc puts them (16-byte steps), so a tile or zmm load of the packing
    would split lines in some processes and not in others: a speed that depends on
    the process, not on the kernel."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = -int(ffi.cast("uintptr_t", ffi.from_buffer(raw))) % align
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class CamPqEncoder:
    def __init__(self, dim, num_subspaces, codebook, isa):
        if not 0 < num_subspaces <= dim:
            raise ValueError(f"num_subspaces={num_subspaces} must be in 1..dim ({dim})")
        if isa not in ISA_LEVELS:
            raise ValueError(f"isa={isa!r} is not one of {sorted(ISA_LEVELS)}")
        codebook = np.ascontiguousarray(codebook, dtype=np.float32)
        self.k = len(codebook)
        if not 0 < self.k <= 256:
            raise ValueError(f"codebook has {self.k} centroids; codes are uint8, so 1..256")
        self.dim, self.s, self.isa = dim, num_subspaces, ISA_LEVELS[isa]
        cb = pointer(ffi, codebook, "float32", (self.k, dim), "codebook")
        kp = (self.k + 31) // 32 * 32          # kernels.c pads K to its block size
        self.packed = aligned((kp, dim), np.float32)
        self.norms = aligned((num_subspaces, kp), np.float32)
        self._packed = pointer(ffi, self.packed, "float32", self.packed.shape, "packed")
        self._norms = pointer(ffi, self.norms, "float32", self.norms.shape, "norms")
        lib.campq_prepare(cb, dim, num_subspaces, self.k, self._packed, self._norms)
        # The int8 first pass: packed centroids, their scales and offset sums, the
        # factors of their error bounds, and the float32 codebook itself for the
        # exact re-check (see kernels.c).
        self.codebook = aligned(codebook.shape, np.float32)
        self.codebook[...] = codebook
        # columns per subspace in the packing: whole quads, and for AMX whole 16-quad
        # tile spans (zeros past the slice add nothing)
        span = 64 if self.isa == ISA_LEVELS["amx"] else 4
        self.wq = ((dim + num_subspaces - 1) // num_subspaces + span - 1) // span * span
        # AVX2: centroids in [-63, 63], 8 per packed group; VNNI and AMX: [-127, 127], 16
        # per group, padded to a multiple of 64 (see kernels.c)
        qmax, group = (127, 16) if self.isa >= ISA_LEVELS["avx512"] else (63, 8)
        self.qpack = aligned(num_subspaces * ((self.k + 63) // 64 * 64) * self.wq, np.int8)
        self.scale = aligned((num_subspaces, kp), np.float32)
        self.t64 = aligned((num_subspaces, kp), np.int32)
        self.bx = aligned((num_subspaces, kp), np.float32)
        self.bq = aligned((num_subspaces, kp), np.float32)
        self._i8 = (pointer(ffi, self.codebook, "float32", (self.k, dim), "codebook"), self.wq,
                    ffi.cast("int8_t *", ffi.from_buffer(self.qpack)),
                    pointer(ffi, self.scale, "float32", self.scale.shape, "scale"),
                    pointer(ffi, self.t64, "int32", self.t64.shape, "t64"),
                    pointer(ffi, self.bx, "float32", self.bx.shape, "bx"),
                    pointer(ffi, self.bq, "float32", self.bq.shape, "bq"))
        lib.campq_prepare_i8(self._i8[0], dim, num_subspaces, self.k, self.wq, qmax, group,
                             *self._i8[2:])

    def encode(self, rows, out):
        n = len(rows)
        x = pointer(ffi, rows, "float32", (None, self.dim), "rows")
        o = pointer(ffi, out, "uint8", (n, self.s), "out")
        lib.campq_encode(self._packed, self._norms, self.dim, self.s, self.k, x, n, o, self.isa,
                         *self._i8)
