/* campq_encode kernel (agent-editable): nearest centroid per subspace.
 *
 * Encoding a row is argmin_k |c_k|^2 - 2 x.c_k per subspace. The constructor
 * lays each subspace's centroids out in blocks of KB: block b holds, column
 * by column, the KB centroids' values ([subspace][block][column][KB]), and
 * precomputes |c|^2 (+inf for the padding up to a multiple of KB, so it
 * never wins). The inner loop runs across a block's centroids: independent
 * sums the compiler keeps in registers without reassociating anything.
 * Entry points take the ISA level the harness allows; faster paths go in
 * HARNESS_TARGET_* functions.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "harness_isa.h"

#define KB 32   /* centroids per block */
#define RB 16   /* rows per block: a codebook block is read once per 16 rows */

/* Four-float vectors in GCC's portable vector extension (SSE2 on any x86-64). */
typedef float v4f __attribute__((vector_size(16), aligned(4)));

static int padded(int k) { return (k + KB - 1) / KB * KB; }

/* packed: padded(K) * dim floats; norms: num_subspaces * padded(K) floats */
void campq_prepare(const float *codebook, int dim, int num_subspaces, int num_centroids,
                   float *packed, float *norms)
{
    int kp = padded(num_centroids);
    for (int s = 0; s < num_subspaces; s++) {
        int lo = s * dim / num_subspaces, hi = (s + 1) * dim / num_subspaces, w = hi - lo;
        float *base = packed + (long)lo * kp;
        for (int k = 0; k < kp; k++) {
            float t = 0.0f;
            for (int j = lo; j < hi; j++) {
                float c = k < num_centroids ? codebook[(long)k * dim + j] : 0.0f;
                base[((long)(k / KB) * w + (j - lo)) * KB + k % KB] = c;
                t += c * c;
            }
            norms[(long)s * kp + k] = k < num_centroids ? t : INFINITY;
        }
    }
}

/* acc[0..KB) = x[lo..hi) . block's centroids, from a contiguous [w][KB] block */
static void dot_block(const float *x, const float *block, int w, float *acc)
{
    v4f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    for (int j = 0; j < w; j++) {
        const v4f *c = (const v4f *)(block + (long)j * KB);
        v4f xj = {x[j], x[j], x[j], x[j]};
        a0 += xj * c[0]; a1 += xj * c[1]; a2 += xj * c[2]; a3 += xj * c[3];
        a4 += xj * c[4]; a5 += xj * c[5]; a6 += xj * c[6]; a7 += xj * c[7];
    }
    v4f *out = (v4f *)acc;
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
    out[4] = a4; out[5] = a5; out[6] = a6; out[7] = a7;
}

static void encode_portable(const float *packed, const float *norms, int dim, int num_subspaces,
                            int num_centroids, const float *rows, int n, uint8_t *out)
{
    int kp = padded(num_centroids);
    float dist[RB][256 + KB];           /* stays in L1 with the current rows */
    for (int i0 = 0; i0 < n; i0 += RB) {
        int rn = n - i0 < RB ? n - i0 : RB;
        for (int s = 0; s < num_subspaces; s++) {
            int lo = s * dim / num_subspaces, hi = (s + 1) * dim / num_subspaces, w = hi - lo;
            const float *nrm = norms + (long)s * kp;
            for (int k0 = 0; k0 < kp; k0 += KB) {
                const float *block = packed + (long)lo * kp + (long)k0 * w;
                for (int r = 0; r < rn; r++)
                    dot_block(rows + (long)(i0 + r) * dim + lo, block, w, dist[r] + k0);
            }
            for (int r = 0; r < rn; r++) {
                int best_k = 0;
                float best = nrm[0] - 2.0f * dist[r][0];
                for (int k = 1; k < kp; k++) {
                    float d = nrm[k] - 2.0f * dist[r][k];
                    if (d < best) {             /* strict: the lowest index wins ties */
                        best = d;
                        best_k = k;
                    }
                }
                out[(long)(i0 + r) * num_subspaces + s] = (uint8_t)best_k;
            }
        }
    }
}

/* ------------------------------------------------------------ AVX2 */

/* Distances (|c|^2 - 2 x.c) of rows r and r+1 to one block of KB centroids:
 * the block's four vectors per column are loaded once for both rows, and the
 * eight sums stay in registers for the whole column range. */
HARNESS_TARGET_AVX2 static void block2_avx2(const float *x0, const float *x1, const float *block,
                                            int w, const float *nrm, float *d0, float *d1)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (int j = 0; j < w; j++) {
        const float *c = block + (long)j * KB;
        __m256 c0 = _mm256_loadu_ps(c), c1 = _mm256_loadu_ps(c + 8);
        __m256 c2 = _mm256_loadu_ps(c + 16), c3 = _mm256_loadu_ps(c + 24);
        __m256 u = _mm256_broadcast_ss(x0 + j), v = _mm256_broadcast_ss(x1 + j);
        a0 = _mm256_fmadd_ps(u, c0, a0); a1 = _mm256_fmadd_ps(u, c1, a1);
        a2 = _mm256_fmadd_ps(u, c2, a2); a3 = _mm256_fmadd_ps(u, c3, a3);
        b0 = _mm256_fmadd_ps(v, c0, b0); b1 = _mm256_fmadd_ps(v, c1, b1);
        b2 = _mm256_fmadd_ps(v, c2, b2); b3 = _mm256_fmadd_ps(v, c3, b3);
    }
    __m256 m2 = _mm256_set1_ps(-2.0f);
    __m256 n0 = _mm256_loadu_ps(nrm), n1 = _mm256_loadu_ps(nrm + 8);
    __m256 n2 = _mm256_loadu_ps(nrm + 16), n3 = _mm256_loadu_ps(nrm + 24);
    _mm256_storeu_ps(d0, _mm256_fmadd_ps(m2, a0, n0));
    _mm256_storeu_ps(d0 + 8, _mm256_fmadd_ps(m2, a1, n1));
    _mm256_storeu_ps(d0 + 16, _mm256_fmadd_ps(m2, a2, n2));
    _mm256_storeu_ps(d0 + 24, _mm256_fmadd_ps(m2, a3, n3));
    _mm256_storeu_ps(d1, _mm256_fmadd_ps(m2, b0, n0));
    _mm256_storeu_ps(d1 + 8, _mm256_fmadd_ps(m2, b1, n1));
    _mm256_storeu_ps(d1 + 16, _mm256_fmadd_ps(m2, b2, n2));
    _mm256_storeu_ps(d1 + 24, _mm256_fmadd_ps(m2, b3, n3));
}

/* Index of the smallest of d[0..kp), the lowest index on an exact tie: eight
 * lanes keep their own best (strictly smaller wins, so earlier indices stay),
 * then the lanes are reduced the same way. */
HARNESS_TARGET_AVX2 static int argmin_avx2(const float *d, int kp)
{
    __m256 best = _mm256_loadu_ps(d);
    __m256i bi = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), idx = bi, step = _mm256_set1_epi32(8);
    for (int k = 8; k < kp; k += 8) {
        idx = _mm256_add_epi32(idx, step);
        __m256 v = _mm256_loadu_ps(d + k);
        __m256 lt = _mm256_cmp_ps(v, best, _CMP_LT_OQ);
        best = _mm256_blendv_ps(best, v, lt);
        bi = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bi), _mm256_castsi256_ps(idx), lt));
    }
    float bv[8];
    int ix[8];
    _mm256_storeu_ps(bv, best);
    _mm256_storeu_si256((__m256i *)ix, bi);
    int k = ix[0];
    float b = bv[0];
    for (int l = 1; l < 8; l++)
        if (bv[l] < b || (bv[l] == b && ix[l] < k)) {
            b = bv[l];
            k = ix[l];
        }
    return k;
}

HARNESS_TARGET_AVX2 static void encode_avx2(const float *packed, const float *norms, int dim,
                                            int num_subspaces, int num_centroids,
                                            const float *rows, int n, uint8_t *out)
{
    int kp = padded(num_centroids);
    float dist[RB][256 + KB];
    for (int i0 = 0; i0 < n; i0 += RB) {
        int rn = n - i0 < RB ? n - i0 : RB;
        for (int s = 0; s < num_subspaces; s++) {
            int lo = s * dim / num_subspaces, hi = (s + 1) * dim / num_subspaces, w = hi - lo;
            const float *nrm = norms + (long)s * kp;
            for (int k0 = 0; k0 < kp; k0 += KB) {
                const float *block = packed + (long)lo * kp + (long)k0 * w;
                int r = 0;
                for (; r + 2 <= rn; r += 2)
                    block2_avx2(rows + (long)(i0 + r) * dim + lo, rows + (long)(i0 + r + 1) * dim + lo,
                                block, w, nrm + k0, dist[r] + k0, dist[r + 1] + k0);
                if (r < rn)          /* an odd row out: pair it with itself */
                    block2_avx2(rows + (long)(i0 + r) * dim + lo, rows + (long)(i0 + r) * dim + lo,
                                block, w, nrm + k0, dist[r] + k0, dist[r] + k0);
            }
            for (int r = 0; r < rn; r++)
                out[(long)(i0 + r) * num_subspaces + s] = (uint8_t)argmin_avx2(dist[r], kp);
        }
    }
}

/* ------------------------------------------------------------ dispatch */

void campq_encode(const float *packed, const float *norms, int dim, int num_subspaces,
                  int num_centroids, const float *rows, int n, uint8_t *out, int isa)
{
    if (isa >= HARNESS_ISA_AVX2) {
        encode_avx2(packed, norms, dim, num_subspaces, num_centroids, rows, n, out);
        return;
    }
    encode_portable(packed, norms, dim, num_subspaces, num_centroids, rows, n, out);
}
