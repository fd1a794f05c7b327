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
               uint32_t *out_ids, float *out_dists, float *tables, int isa);
"""
ffi, lib = load_kernel_lib(__file__, CDEF)

ISA_LEVELS = {"scalar": 0, "avx2": 1, "avx512": 2, "amx": 3}


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
        tables = np.empty((nq, self.m, self.k), np.float32)
        lib.pq_search(self._cb, self.dim, self.m, self.k, q, nq, c, n, k, ids, dists,
                      pointer(ffi, tables, "float32", tables.shape, "tables"), self.isa)
