"""pq_l2 kernel (agent-editable): the Python face of kernels.c.

The API is fixed by program.md; everything behind it may change. Imports
are limited to numpy, the standard math helpers and harness_common.cbuild.
"""
import numpy as np

from harness_common.cbuild import load_kernel_lib, pointer

CDEF = """
void pq_distance_tables(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
                        const float *queries, int nq, float *out, int isa);
void pq_search(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
               const float *queries, int nq, const uint8_t *codes, int n, int k,
               uint32_t *out_ids, float *out_dists, float *tables, const float *cbt,
               float *batch, int isa);
void pq_transpose_codebook(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
                           float *cbt);
"""
ffi, lib = load_kernel_lib(__file__, CDEF)

ISA_LEVELS = {"scalar": 0, "avx2": 1, "avx512": 2, "amx": 3}


def aligned_zeros(n, dtype, align=64):
    """A zeroed 1-D array whose data starts on a cache line. numpy's own buffers
    start wherever malloc puts them (16-byte steps), so vector loads of the
    centroid-major codebook and of a query's table would split lines in some
    processes and not in others."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + align, np.uint8)
    start = -int(ffi.cast("uintptr_t", ffi.from_buffer(raw))) % align
    return raw[start:start + n * dtype.itemsize].view(dtype)


class PqKernel:
    def __init__(self, dim, num_sub_vectors, num_centroids, codebook, isa):
        if num_sub_vectors <= 0 or dim % num_sub_vectors:
            raise ValueError(f"num_sub_vectors={num_sub_vectors} must divide dim={dim}")
        if not 0 < num_centroids <= 256:
            raise ValueError(f"num_centroids={num_centroids} must be in 1..256 (codes are uint8)")
        if isa not in ISA_LEVELS:
            raise ValueError(f"isa={isa!r} is not one of {sorted(ISA_LEVELS)}")
        self.dim, self.m, self.k = dim, num_sub_vectors, num_centroids
        self.isa = ISA_LEVELS[isa]
        self.codebook = np.array(codebook, dtype=np.float32, order="C", copy=True)
        self._cb = pointer(ffi, self.codebook, "float32",
                           (num_sub_vectors, num_centroids, dim // num_sub_vectors), "codebook")
        # Untimed preprocessing: the codebook with centroids innermost, so a
        # query's table needs no horizontal sums.
        self._kcp = (num_centroids + 31) // 32 * 32
        self._cbt = aligned_zeros(dim * self._kcp, np.float32)
        lib.pq_transpose_codebook(self._cb, dim, num_sub_vectors, num_centroids,
                                  pointer(ffi, self._cbt, "float32", self._cbt.shape, "cbt"))
        # One query's table and bound table, reused by every call: at M = 96
        # they pass malloc's mmap threshold, and a fresh mapping per call
        # would pay its page faults every time.
        self._scratch = aligned_zeros(2 * num_sub_vectors * self._kcp + num_sub_vectors, np.float32)
        # A batch's 32-lane tables and partial sums (about 3 MB at M = 96).
        self._batch = np.zeros(num_sub_vectors * num_centroids * 32 + 32 * dim + 32 * 1024 + 16,
                               np.float32) if self.isa else np.zeros(16, np.float32)
        # Pointers to buffers that live as long as the kernel, made once: a
        # single-query call is short enough that per-call checks show.
        self._p_cbt = pointer(ffi, self._cbt, "float32", self._cbt.shape, "cbt")
        self._p_scratch = pointer(ffi, self._scratch, "float32", self._scratch.shape, "scratch")
        self._p_batch = pointer(ffi, self._batch, "float32", self._batch.shape, "batch")

    def distance_tables(self, queries, out):
        nq = len(queries)
        q = pointer(ffi, queries, "float32", (None, self.dim), "queries")
        o = pointer(ffi, out, "float32", (nq, self.m, self.k), "out")
        lib.pq_distance_tables(self._cb, self.dim, self.m, self.k, q, nq, o, self.isa)

    def search(self, queries, codes, k, out_ids, out_dists):
        nq, n = len(queries), len(codes)
        q = pointer(ffi, queries, "float32", (None, self.dim), "queries")
        c = pointer(ffi, codes, "uint8", (None, self.m), "codes")
        ids = pointer(ffi, out_ids, "uint32", (nq, k), "out_ids")
        dists = pointer(ffi, out_dists, "float32", (nq, k), "out_dists")
        if self.isa:
            tables = self._p_scratch
        else:
            # Named, so it lives through the call: a pointer does not keep its array alive.
            scratch = np.empty(nq * self.m * self.k, np.float32)
            tables = pointer(ffi, scratch, "float32", scratch.shape, "tables")
        lib.pq_search(self._cb, self.dim, self.m, self.k, q, nq, c, n, k, ids, dists, tables,
                      self._p_cbt, self._p_batch, self.isa)
