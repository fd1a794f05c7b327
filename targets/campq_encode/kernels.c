/* campq_encode kernel (agent-editable): nearest centroid per subspace.
 *
 * Encoding a row is argmin_k |c_k|^2 - 2 x.c_k per subspace. The constructor
 * lays each subspace's centroids out in blocks of KB: block b holds, column
 * by column, the KB centroids' values ([subspace][block][column][KB]), and
 * precomputes |c|^2 (+inf for the padding up to a multiple of KB, so it
 * never wins). The inner loop runs across a block's centroids: independent
 * sums the compiler keeps in registers without reassociating anything.
 * Entry points take the ISA level the harness allows; faster paths go in
 * HARNESS_TARGET_* functions inside #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_*
 * (see harness_isa.h).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "harness_isa.h"

#define KB 32   /* centroids per block */
#define RB 16   /* rows per block: a codebook block is read once per 16 rows */
#define SB 32   /* rows per block of the AVX-512 and AMX paths: two A tiles */

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

#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2

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

#endif /* HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2 */

/* ------------------------------------------------------------ AVX2 int8 + exact re-check
 *
 * A first pass over all centroids in 8-bit integers, then the exact fp32
 * distance for the few centroids the first pass cannot rule out.
 *
 * Centroid k of subspace s: c = b (qc + ec/b), qc in [-63, 63], b = max|c| / 63.
 * Row slice:                x = a (qx - 64) + ex, qx in [1, 127], a = max|x| / 63.
 * x.c = a b (S - 64 T) + xq.ec + ex.c, with S = sum qx qc (exact, int32),
 * T = sum qc, xq = a (qx - 64). By Cauchy-Schwarz the dropped terms are at
 * most |xq| |ec| + |ex| |c|, so with d'_k = |c|^2 - 2 a b (S - 64 T)
 * (the row's own |x|^2 is common to all k), |d_k - |x|^2 - d'_k| <= B_k =
 * 2 (|xq| |ec_k| + |ex| |c_k|) + a float32 margin (the per-centroid factors
 * of B_k are prepared with the packing, so the bound over all 256 centroids
 * is three FMAs each). Every k with
 * d'_k - B_k <= min_j (d'_j + B_j) may be the nearest; those are recomputed
 * exactly and the smallest wins (lowest index on a tie). The codes are the
 * exact float32 ones: only the work is approximate.
 */

#define G8 8                 /* centroids per packed group */

struct i8book {              /* everything prepared from the codebook (see campq_prepare_i8) */
    const int8_t *qpack;     /* [s][group][quad]: 8 (AVX2) or 16 (AVX-512, AMX) centroids x 4 columns */
    const float *scale;      /* [s][kp] b_k */
    const int32_t *t64;      /* [s][kp] the rows' offset (64, or 128) times the sum of qc */
    const float *cnorm2;     /* [s][kp] |c|^2 (+inf for padding) */
    const float *bx;         /* [s][kp] B_k per unit |ex|: 2 |c| */
    const float *bq;         /* [s][kp] B_k per unit |xq|: 2 |ec| + 2 eps |c| */
    const float *codebook;   /* [K][dim] the original centroids, for the re-check */
    int wq;                  /* columns per subspace in the packing, a multiple of 4 */
    int kpack;               /* centroids per subspace in the packing (padding included) */
};

static long qpack_base(int s, int kp, int wq) { return (long)s * kp * wq; }

#define BOUND_EPS 1e-5f       /* relative margin for the float32 arithmetic of the bound */

/* Centroids in [-qmax, qmax]: qmax 63 for the AVX2 path, whose vpmaddubsw adds two
 * products in 16 bits (rows in [1, 127]); 127 for vpdpbusd and tdpbusd, which add in 32
 * bits (rows in [1, 255]): twice the resolution on both sides, half the bound. `group`
 * centroids share a packed quad: 8 (a ymm) or 16 (a zmm, a full AMX B tile row; the
 * packing then pads to a multiple of 64 centroids, four C tiles a pass). */
static int kpack_for(int num_centroids, int group)
{
    return group == 16 ? (num_centroids + 63) / 64 * 64 : padded(num_centroids);
}

void campq_prepare_i8(const float *codebook, int dim, int num_subspaces, int num_centroids,
                      int wq, int qmax, int group, int8_t *qpack, float *scale, int32_t *t64,
                      float *bx, float *bq)
{
    int kp = padded(num_centroids), kpack = kpack_for(num_centroids, group);
    memset(qpack, 0, (size_t)num_subspaces * kpack * wq);
    for (int s = 0; s < num_subspaces; s++) {
        int lo = s * dim / num_subspaces, hi = (s + 1) * dim / num_subspaces;
        int8_t *base = qpack + qpack_base(s, kpack, wq);
        for (int k = 0; k < kp; k++) {
            long o = (long)s * kp + k;
            if (k >= num_centroids) {
                scale[o] = 0.0f; t64[o] = 0; bx[o] = 0.0f; bq[o] = 0.0f;
                continue;
            }
            const float *c = codebook + (long)k * dim;
            double mx = 0.0, cn = 0.0, en = 0.0;
            for (int j = lo; j < hi; j++) {
                mx = fabs(c[j]) > mx ? fabs(c[j]) : mx;
                cn += (double)c[j] * c[j];
            }
            double b = mx > 0.0 ? mx / qmax : 1.0;
            int32_t t = 0;
            for (int j = lo; j < hi; j++) {
                double q = nearbyint(c[j] / b);
                q = q > qmax ? qmax : (q < -qmax ? -qmax : q);
                int jj = j - lo, g = k / group, quad = jj / 4;
                base[((long)g * (wq / 4) + quad) * 4 * group + (k % group) * 4 + jj % 4] = (int8_t)q;
                t += (int32_t)q;
                double e = c[j] - b * q;
                en += e * e;
            }
            /* rounded up a little: the factors must not undercut the bound */
            scale[o] = (float)b; t64[o] = (qmax + 1) * t;
            bx[o] = (float)(2.0 * sqrt(cn) * (1.0 + 1e-6));
            bq[o] = (float)((2.0 * sqrt(en) + 2.0 * BOUND_EPS * sqrt(cn)) * (1.0 + 1e-6));
        }
    }
}

#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2

/* S[k] = sum_j qx[j] qc_k[j] for the 32 centroids of groups g0..g0+3:
 * vpmaddubsw (u8 x s8 -> i16 pairs, at most 2*127*63 = 16002, so two of them
 * add without saturating), vpmaddwd against ones (-> i32 per centroid), vpaddd. */
HARNESS_TARGET_AVX2 static void dots_i8(const uint8_t *qx, const int8_t *qpack, int g0,
                                        int quads, int32_t *S)
{
    __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[4];
    for (int g = 0; g < 4; g++)
        acc[g] = _mm256_setzero_si256();
    const int8_t *p = qpack + (long)g0 * quads * 32;
    int t = 0;
    for (; t + 2 <= quads; t += 2) {
        __m256i xa = _mm256_set1_epi32(*(const int32_t *)(qx + 4 * t));
        __m256i xb = _mm256_set1_epi32(*(const int32_t *)(qx + 4 * t + 4));
        for (int g = 0; g < 4; g++) {
            const int8_t *pg = p + ((long)g * quads + t) * 32;
            __m256i pa = _mm256_maddubs_epi16(xa, _mm256_loadu_si256((const __m256i *)pg));
            __m256i pb = _mm256_maddubs_epi16(xb, _mm256_loadu_si256((const __m256i *)(pg + 32)));
            acc[g] = _mm256_add_epi32(acc[g], _mm256_madd_epi16(_mm256_add_epi16(pa, pb), ones));
        }
    }
    if (t < quads) {
        __m256i xa = _mm256_set1_epi32(*(const int32_t *)(qx + 4 * t));
        for (int g = 0; g < 4; g++) {
            const int8_t *pg = p + ((long)g * quads + t) * 32;
            __m256i pa = _mm256_maddubs_epi16(xa, _mm256_loadu_si256((const __m256i *)pg));
            acc[g] = _mm256_add_epi32(acc[g], _mm256_madd_epi16(pa, ones));
        }
    }
    for (int g = 0; g < 4; g++)
        _mm256_storeu_si256((__m256i *)(S + (g0 + g) * G8), acc[g]);
}

HARNESS_TARGET_AVX2 static float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* x . c over a slice in float32, four chains: the re-check's |c|^2 - 2 x.c
 * (exact-math float32, like the difference form, at one FMA per element). */
HARNESS_TARGET_AVX2 static float dot_f32(const float *x, const float *c, int w)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int j = 0;
    for (; j + 32 <= w; j += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(c + j), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j + 8), _mm256_loadu_ps(c + j + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j + 16), _mm256_loadu_ps(c + j + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j + 24), _mm256_loadu_ps(c + j + 24), a3);
    }
    for (; j + 8 <= w; j += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(c + j), a0);
    float d = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; j < w; j++)
        d += x[j] * c[j];
    return d;
}

/* Lane mask for the last, partial vector of a w-wide slice. */
HARNESS_TARGET_AVX2 static __m256i tail_mask(int rem)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Quantize a row slice to qx in [1, 127]; returns the step a and writes
 * |xq| and |ex| (slightly enlarged to cover their own float32 rounding).
 * The last partial vector is a masked load (zeros past the slice). */
HARNESS_TARGET_AVX2 static float quantize_row(const float *x, int w, int wq, uint8_t *qx,
                                              float *xqn, float *exn)
{
    __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), mx = _mm256_setzero_ps();
    int full = w / 8 * 8;
    __m256i tm = tail_mask(w - full);
    for (int j = 0; j < full; j += 8)
        mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(x + j), absmask));
    mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_maskload_ps(x + full, tm), absmask));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float top = _mm_cvtss_f32(m4);
    float a = top > 0.0f ? top / 63.0f : 1.0f;
    __m256 va = _mm256_set1_ps(a), vinv = _mm256_set1_ps(1.0f / a);
    __m256i lim = _mm256_set1_epi32(63), nlim = _mm256_set1_epi32(-63), off = _mm256_set1_epi32(64);
    __m256 sx = _mm256_setzero_ps(), se = _mm256_setzero_ps();
    for (int j = 0; j < wq; j += 8) {
        __m256 v = j < full ? _mm256_loadu_ps(x + j)
                            : (j == full ? _mm256_maskload_ps(x + j, tm) : _mm256_setzero_ps());
        __m256i qi = _mm256_cvtps_epi32(_mm256_mul_ps(v, vinv));     /* round to nearest even */
        qi = _mm256_max_epi32(_mm256_min_epi32(qi, lim), nlim);
        __m256 xq = _mm256_mul_ps(va, _mm256_cvtepi32_ps(qi)), e = _mm256_sub_ps(v, xq);
        sx = _mm256_fmadd_ps(xq, xq, sx);
        se = _mm256_fmadd_ps(e, e, se);
        qi = _mm256_add_epi32(qi, off);
        __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
        __m128i p8 = _mm_packus_epi16(p16, p16);
        if (j + 8 <= wq)
            _mm_storel_epi64((__m128i *)(qx + j), p8);
        else
            _mm_storeu_si32(qx + j, p8);                 /* wq is a multiple of 4 */
    }
    /* past w, q = 0 -> qx = 64 against qc = 0 in the packing: no effect on the dots;
     * the sums are float32: 1e-4 relative covers their rounding */
    *xqn = sqrtf(hsum(sx)) * 1.0001f;
    *exn = sqrtf(hsum(se)) * 1.0001f + 1e-30f;
    return a;
}

/* The code of one row's subspace from its integer dots: the certified bound,
 * then the exact re-check of the candidates. The centroid nearest by the
 * integer estimate is re-checked first; its exact distance is the threshold,
 * and only centroids whose lower bound is at most that can still be the
 * minimum (any other is farther than a distance already in hand). Against the
 * smallest upper bound, the window counted the bound's width twice. */
HARNESS_TARGET_AVX2 static int select_i8(const float *x, int lo, int w, int dim, int s, int kp,
                                         int num_centroids, const struct i8book *bk, float a,
                                         float xqn, float exn, const int32_t *S, float *dp)
{
    const float *scale = bk->scale + (long)s * kp, *c2 = bk->cnorm2 + (long)s * kp;
    const float *bx = bk->bx + (long)s * kp, *bq = bk->bq + (long)s * kp;
    const int32_t *t64 = bk->t64 + (long)s * kp;
    __m256 va2 = _mm256_set1_ps(2.0f * a), vx = _mm256_set1_ps(xqn), ve = _mm256_set1_ps(exn);
    __m256 eps = _mm256_set1_ps(BOUND_EPS), tiny = _mm256_set1_ps(1e-30f);
    __m256 near = _mm256_set1_ps(INFINITY);
    __m256i near_k = _mm256_setzero_si256(), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i eight = _mm256_set1_epi32(8);
    for (int k = 0; k < kp; k += 8) {
        __m256i si = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(S + k)),
                                      _mm256_loadu_si256((const __m256i *)(t64 + k)));
        __m256 vc2 = _mm256_loadu_ps(c2 + k);
        /* d' = |c|^2 - 2 a b (S - 64 T) */
        __m256 d = _mm256_fnmadd_ps(_mm256_mul_ps(va2, _mm256_loadu_ps(scale + k)),
                                    _mm256_cvtepi32_ps(si), vc2);
        /* dropped terms, then a margin for the float32 arithmetic of d' */
        __m256 b = _mm256_fmadd_ps(vx, _mm256_loadu_ps(bq + k),
                                   _mm256_fmadd_ps(ve, _mm256_loadu_ps(bx + k),
                                                   _mm256_fmadd_ps(eps, vc2, tiny)));
        _mm256_storeu_ps(dp + k, _mm256_sub_ps(d, b));   /* the lower bound of each distance */
        __m256 closer = _mm256_cmp_ps(d, near, _CMP_LT_OQ);   /* padding: +inf, never closer */
        near = _mm256_blendv_ps(near, d, closer);
        near_k = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(near_k),
                                                      _mm256_castsi256_ps(lane), closer));
        lane = _mm256_add_epi32(lane, eight);
    }
    float nd[8];
    int32_t nk[8];
    _mm256_storeu_ps(nd, near);
    _mm256_storeu_si256((__m256i *)nk, near_k);
    int first = nk[0];
    float fd = nd[0];
    for (int l = 1; l < 8; l++)
        if (nd[l] < fd) {
            fd = nd[l];
            first = nk[l];
        }
    /* |c|^2 - 2 x.c: the row's own |x|^2 is common to every centroid */
    float best = c2[first] - 2.0f * dot_f32(x, bk->codebook + (long)first * dim + lo, w);
    int best_k = first;
    __m256 vthr = _mm256_set1_ps(best);
    for (int k = 0; k < num_centroids; k += 8) {
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(dp + k), vthr, _CMP_LE_OQ));
        while (mask) {                     /* candidates in increasing index order */
            int kk = k + __builtin_ctz(mask);
            mask &= mask - 1;
            if (kk >= num_centroids)
                break;
            if (kk == first)
                continue;
            float d = c2[kk] - 2.0f * dot_f32(x, bk->codebook + (long)kk * dim + lo, w);
            if (d < best || (d == best && kk < best_k)) {  /* the lowest index wins ties */
                best = d;
                best_k = kk;
            }
        }
    }
    return best_k;
}

/* Rows in blocks of RB, subspaces inside: the block's rows stay in L2 for all
 * six subspaces (and the exact re-check), so the input is read from memory
 * once; within a subspace, the block's quantized rows and one 32-centroid
 * slice of the packing (5.5 KB at dim 1026) stay in L1 while every row of
 * the block uses it. */
/* The integer dots of a block of rows against every centroid of subspace s:
 * S[r][k] = sum_j qx[r][j] qc_k[j] for r < rn (one function per ISA level). */
typedef void (*dots_fn)(uint8_t (*qx)[4096 + 64], int rn, const int8_t *qp, int kp, int quads,
                        int32_t (*S)[256 + KB]);

HARNESS_TARGET_AVX2 static void block_dots_avx2(uint8_t (*qx)[4096 + 64], int rn, const int8_t *qp,
                                                int kp, int quads, int32_t (*S)[256 + KB])
{
    for (int g0 = 0; g0 < kp / G8; g0 += 4)
        for (int r = 0; r < rn; r++)
            dots_i8(qx[r], qp, g0, quads, S[r]);
}

/* Every call brings new rows from memory, and a block reads each row in six
 * short runs, one per subspace: sixteen short streams at once, more than the
 * hardware prefetcher follows. The next block is one contiguous run of memory,
 * so it is fetched ahead, a sixth at a time while each subspace is worked on:
 * as much of it as fits in L2 beside the current block and a subspace's packing
 * (all of it at dim 1024, three quarters at 3072, a third at 4096; a trial
 * that fetched all of it at 4096 lost 5%). */
#define L2_BYTES (512L << 10)   /* the smallest L2 of the CPUs this runs on (Zen 3) */

static void prefetch_block(const float *rows, int dim, int num_subspaces, int n, int next, int s,
                           long packing_bytes)
{
    int count = n - next < RB ? n - next : RB;
    if (count <= 0)
        return;
    const char *base = (const char *)(rows + (long)next * dim);
    long block = (long)RB * dim * 4, bytes = (long)count * dim * 4;
    long room = L2_BYTES - block - packing_bytes;
    if (room < bytes)
        bytes = room;
    if (bytes <= 0)
        return;
    long from = bytes * s / num_subspaces / 64 * 64, to = bytes * (s + 1) / num_subspaces;
    for (long o = from; o < to; o += 64)
        _mm_prefetch(base + o, _MM_HINT_T1);
}

HARNESS_TARGET_AVX2 static void encode_i8(const struct i8book *bk, int dim, int num_subspaces,
                                          int num_centroids, const float *rows, int n, uint8_t *out,
                                          dots_fn dots)
{
    int kp = padded(num_centroids), quads = bk->wq / 4;
    uint8_t qx[RB][4096 + 64] __attribute__((aligned(64)));
    int32_t S[RB][256 + KB] __attribute__((aligned(64)));
    float dp[256 + KB], a[RB], xqn[RB], exn[RB];
    for (int i0 = 0; i0 < n; i0 += RB) {
        int rn = n - i0 < RB ? n - i0 : RB;
        for (int s = 0; s < num_subspaces; s++) {
            int lo = s * dim / num_subspaces, hi = (s + 1) * dim / num_subspaces, w = hi - lo;
            const int8_t *qp = bk->qpack + qpack_base(s, bk->kpack, bk->wq);
            prefetch_block(rows, dim, num_subspaces, n, i0 + rn, s, (long)kp * bk->wq);
            for (int r = 0; r < rn; r++)
                a[r] = quantize_row(rows + (long)(i0 + r) * dim + lo, w, bk->wq, qx[r], &xqn[r], &exn[r]);
            dots(qx, rn, qp, kp, quads, S);
            for (int r = 0; r < rn; r++)
                out[(long)(i0 + r) * num_subspaces + s] = (uint8_t)select_i8(
                    rows + (long)(i0 + r) * dim + lo, lo, w, dim, s, kp, num_centroids, bk, a[r],
                    xqn[r], exn[r], S[r], dp);
        }
    }
}

#endif /* HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2 */

/* ------------------------------------------------------------ AVX-512 VNNI first pass
 *
 * The same certified bound and exact re-check as the AVX2 path, at 16 lanes and
 * twice the integer resolution. vpdpbusd multiplies u8 by s8, sums each group of
 * four products and adds to int32 in one instruction (no 16-bit stage, so rows
 * use all of [1, 255] and centroids [-127, 127]): one zmm is one quad of one
 * 16-centroid group, 64 contiguous bytes of the packing (the AMX B layout too).
 */
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512

/* S[r][k] for two rows and the 64 centroids of groups g0..g0+3 (16 each): one
 * vpdpbusd per row, group and quad (u8 x s8, four products summed into int32, no
 * saturation), each 64-byte load of the packing shared by both rows. */
HARNESS_TARGET_AVX512 static void dots_vnni2(const uint8_t *x0, const uint8_t *x1, const int8_t *qp,
                                             int g0, int quads, int32_t *s0, int32_t *s1)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    __m512i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    const int8_t *p = qp + (long)g0 * quads * 64;
    const long gs = (long)quads * 64;
    for (int t = 0; t < quads; t++) {
        __m512i u = _mm512_set1_epi32(*(const int32_t *)(x0 + 4 * t));
        __m512i v = _mm512_set1_epi32(*(const int32_t *)(x1 + 4 * t));
        const int8_t *pt = p + (long)t * 64;
        __m512i c0 = _mm512_loadu_si512((const void *)pt), c1 = _mm512_loadu_si512((const void *)(pt + gs));
        __m512i c2 = _mm512_loadu_si512((const void *)(pt + 2 * gs));
        __m512i c3 = _mm512_loadu_si512((const void *)(pt + 3 * gs));
        a0 = _mm512_dpbusd_epi32(a0, u, c0); a1 = _mm512_dpbusd_epi32(a1, u, c1);
        a2 = _mm512_dpbusd_epi32(a2, u, c2); a3 = _mm512_dpbusd_epi32(a3, u, c3);
        b0 = _mm512_dpbusd_epi32(b0, v, c0); b1 = _mm512_dpbusd_epi32(b1, v, c1);
        b2 = _mm512_dpbusd_epi32(b2, v, c2); b3 = _mm512_dpbusd_epi32(b3, v, c3);
    }
    int32_t *o0 = s0 + g0 * 16, *o1 = s1 + g0 * 16;
    _mm512_storeu_si512((void *)o0, a0); _mm512_storeu_si512((void *)(o0 + 16), a1);
    _mm512_storeu_si512((void *)(o0 + 32), a2); _mm512_storeu_si512((void *)(o0 + 48), a3);
    _mm512_storeu_si512((void *)o1, b0); _mm512_storeu_si512((void *)(o1 + 16), b1);
    _mm512_storeu_si512((void *)(o1 + 32), b2); _mm512_storeu_si512((void *)(o1 + 48), b3);
}

/* The AVX-512 select: the same bound and re-check as select_i8, 16 centroids per
 * vector, the candidates found by a mask compare per vector. */
HARNESS_TARGET_AVX512 static float dot_f32_512(const float *x, const float *c, int w)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int j = 0;
    for (; j + 32 <= w; j += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(c + j), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + j + 16), _mm512_loadu_ps(c + j + 16), a1);
    }
    if (j + 16 <= w) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(c + j), a0);
        j += 16;
    }
    if (j < w) {
        __mmask16 m = (__mmask16)((1u << (w - j)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + j), _mm512_maskz_loadu_ps(m, c + j), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

/* The two rows' exact dots for their estimate-nearest centroids, interleaved: each
 * chain of FMAs waits on its own last result, so two chains keep the core busy. */
HARNESS_TARGET_AVX512 static void dot2_f32_512(const float *x0, const float *c0, const float *x1,
                                               const float *c1, int w, float *d0, float *d1)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
    int j = 0;
    for (; j + 32 <= w; j += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x0 + j), _mm512_loadu_ps(c0 + j), a0);
        b0 = _mm512_fmadd_ps(_mm512_loadu_ps(x1 + j), _mm512_loadu_ps(c1 + j), b0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x0 + j + 16), _mm512_loadu_ps(c0 + j + 16), a1);
        b1 = _mm512_fmadd_ps(_mm512_loadu_ps(x1 + j + 16), _mm512_loadu_ps(c1 + j + 16), b1);
    }
    if (j + 16 <= w) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x0 + j), _mm512_loadu_ps(c0 + j), a0);
        b0 = _mm512_fmadd_ps(_mm512_loadu_ps(x1 + j), _mm512_loadu_ps(c1 + j), b0);
        j += 16;
    }
    if (j < w) {
        __mmask16 m = (__mmask16)((1u << (w - j)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x0 + j), _mm512_maskz_loadu_ps(m, c0 + j), a1);
        b1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x1 + j), _mm512_maskz_loadu_ps(m, c1 + j), b1);
    }
    *d0 = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    *d1 = _mm512_reduce_add_ps(_mm512_add_ps(b0, b1));
}

/* Any lane holding the smallest estimate will do (it only sets the threshold; the
 * exact comparison breaks ties by index). */
HARNESS_TARGET_AVX512 static int lane_of_min(__m512 near, __m512i near_k)
{
    int32_t nk[16] __attribute__((aligned(64)));
    _mm512_store_si512((void *)nk, near_k);
    return nk[__builtin_ctz(_mm512_cmp_ps_mask(near, _mm512_set1_ps(_mm512_reduce_min_ps(near)),
                                               _CMP_EQ_OQ))];
}

/* Every candidate but `first`, as bits of one 256-bit mask built without a branch:
 * most selections have none, and a branch per vector on where the candidates fall
 * mispredicts once or twice a selection, discarding the work the core had started
 * on the next row. Returns whether there is any. */
HARNESS_TARGET_AVX512 static int candidate_bits(const float *dp, int kp, int num_centroids,
                                                int first, float best, uint64_t bits[4])
{
    __m512 vthr = _mm512_set1_ps(best);
    for (int q = 0; q < 4; q++) {          /* unrolled: the words stay in registers */
        uint64_t m = 0;
        for (int t = 0; t < 4; t++) {
            int k = q * 64 + t * 16, left = num_centroids - k;
            if (k >= kp)
                break;
            unsigned valid = left >= 16 ? 0xffffu : (left > 0 ? (1u << left) - 1 : 0u);
            valid &= (unsigned)(first - k) < 16 ? ~(1u << (first - k)) : ~0u;
            m |= (uint64_t)_mm512_mask_cmp_ps_mask((__mmask16)valid, _mm512_loadu_ps(dp + k), vthr,
                                                   _CMP_LE_OQ) << (16 * t);
        }
        bits[q] = m;
    }
    return (bits[0] | bits[1] | bits[2] | bits[3]) != 0;
}

/* The candidates' exact distances, in increasing index order; the smallest wins,
 * the lowest index on a tie. */
HARNESS_TARGET_AVX512 static int recheck(const float *x, const uint64_t bits[4], const float *c2,
                                         const float *codebook, int dim, int w, float best, int best_k)
{
    for (int q = 0; q < 4; q++)
        for (uint64_t m = bits[q]; m; m &= m - 1) {
            int kk = q * 64 + __builtin_ctzll(m);
            float d = c2[kk] - 2.0f * dot_f32_512(x, codebook + (long)kk * dim, w);
            int better = d < best || (d == best && kk < best_k);
            best = better ? d : best;
            best_k = better ? kk : best_k;
        }
    return best_k;
}

/* The AVX-512 select for two rows of one subspace at once: the same bound and
 * re-check as select_i8, 16 centroids per vector. The per-centroid factors are
 * loaded once for both rows, and the two rows' dependency chains (the running
 * minimum, the first exact dot) interleave. */
HARNESS_TARGET_AVX512 static void select2_512(const float *x0, const float *x1, int lo, int w,
                                              int dim, int s, int kp, int num_centroids,
                                              const struct i8book *bk, const float *a,
                                              const float *xqn, const float *exn,
                                              const int32_t *S0, const int32_t *S1,
                                              float (*dp)[256 + KB], uint8_t *k0, uint8_t *k1)
{
    const float *scale = bk->scale + (long)s * kp, *c2 = bk->cnorm2 + (long)s * kp;
    const float *bx = bk->bx + (long)s * kp, *bq = bk->bq + (long)s * kp;
    const int32_t *t64 = bk->t64 + (long)s * kp;
    __m512 va0 = _mm512_set1_ps(2.0f * a[0]), vx0 = _mm512_set1_ps(xqn[0]), ve0 = _mm512_set1_ps(exn[0]);
    __m512 va1 = _mm512_set1_ps(2.0f * a[1]), vx1 = _mm512_set1_ps(xqn[1]), ve1 = _mm512_set1_ps(exn[1]);
    __m512 eps = _mm512_set1_ps(BOUND_EPS), tiny = _mm512_set1_ps(1e-30f);
    __m512 near0 = _mm512_set1_ps(INFINITY), near1 = near0;
    __m512i nk0 = _mm512_setzero_si512(), nk1 = nk0;
    __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i sixteen = _mm512_set1_epi32(16);
    for (int k = 0; k < kp; k += 16) {
        __m512i t = _mm512_loadu_si512((const void *)(t64 + k));
        __m512 vc2 = _mm512_loadu_ps(c2 + k), sc = _mm512_loadu_ps(scale + k);
        __m512 vbq = _mm512_loadu_ps(bq + k), vbx = _mm512_loadu_ps(bx + k);
        __m512 margin = _mm512_fmadd_ps(eps, vc2, tiny);
        __m512 f0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512((const void *)(S0 + k)), t));
        __m512 f1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512((const void *)(S1 + k)), t));
        __m512 d0 = _mm512_fnmadd_ps(_mm512_mul_ps(va0, sc), f0, vc2);
        __m512 d1 = _mm512_fnmadd_ps(_mm512_mul_ps(va1, sc), f1, vc2);
        __m512 b0 = _mm512_fmadd_ps(vx0, vbq, _mm512_fmadd_ps(ve0, vbx, margin));
        __m512 b1 = _mm512_fmadd_ps(vx1, vbq, _mm512_fmadd_ps(ve1, vbx, margin));
        _mm512_store_ps(dp[0] + k, _mm512_sub_ps(d0, b0));
        _mm512_store_ps(dp[1] + k, _mm512_sub_ps(d1, b1));
        __mmask16 c0 = _mm512_cmp_ps_mask(d0, near0, _CMP_LT_OQ);
        __mmask16 c1 = _mm512_cmp_ps_mask(d1, near1, _CMP_LT_OQ);
        near0 = _mm512_mask_mov_ps(near0, c0, d0);
        near1 = _mm512_mask_mov_ps(near1, c1, d1);
        nk0 = _mm512_mask_mov_epi32(nk0, c0, lane);
        nk1 = _mm512_mask_mov_epi32(nk1, c1, lane);
        lane = _mm512_add_epi32(lane, sixteen);
    }
    int first0 = lane_of_min(near0, nk0), first1 = lane_of_min(near1, nk1);
    float e0, e1;
    dot2_f32_512(x0, bk->codebook + (long)first0 * dim + lo, x1, bk->codebook + (long)first1 * dim + lo,
                 w, &e0, &e1);
    float best0 = c2[first0] - 2.0f * e0, best1 = c2[first1] - 2.0f * e1;
    uint64_t bits0[4], bits1[4];
    int any0 = candidate_bits(dp[0], kp, num_centroids, first0, best0, bits0);
    int any1 = candidate_bits(dp[1], kp, num_centroids, first1, best1, bits1);
    *k0 = (uint8_t)(any0 ? recheck(x0, bits0, c2, bk->codebook + lo, dim, w, best0, first0) : first0);
    *k1 = (uint8_t)(any1 ? recheck(x1, bits1, c2, bk->codebook + lo, dim, w, best1, first1) : first1);
}

/* quantize_row at 16 lanes and twice the resolution (a = max|x| / 127, qx = round(x / a
 * + 128) in [1, 255], |xq| and |ex| slightly enlarged), masked loads past the slice,
 * two rows at once: each row's max and sums are chains that wait on their own last
 * result, and two rows' chains interleaved keep the core busy while each waits.
 * 512-bit work issues on two ports only, so every instruction counts: the offset
 * 128 is added before the rounding (any integer near x / a + 128 will do, as xq and
 * ex are computed from the one chosen), and |x / a| <= 127 (1 + 2^-21), so the
 * rounded value stays in [1, 255] with no clamp. */
HARNESS_TARGET_AVX512 static void quantize2_512(const float *x0, const float *x1, int w, int wq,
                                                uint8_t *q0, uint8_t *q1, float *a,
                                                float *xqn, float *exn)
{
    __m512 m0 = _mm512_setzero_ps(), m1 = m0;
    int full = w / 16 * 16;
    for (int j = 0; j < full; j += 16) {     /* vrangeps 0xb: the larger magnitude, sign cleared */
        m0 = _mm512_range_ps(m0, _mm512_loadu_ps(x0 + j), 0xb);
        m1 = _mm512_range_ps(m1, _mm512_loadu_ps(x1 + j), 0xb);
    }
    if (full < w) {
        __mmask16 m = (__mmask16)((1u << (w - full)) - 1);
        m0 = _mm512_range_ps(m0, _mm512_maskz_loadu_ps(m, x0 + full), 0xb);
        m1 = _mm512_range_ps(m1, _mm512_maskz_loadu_ps(m, x1 + full), 0xb);
    }
    float top0 = _mm512_reduce_max_ps(m0), top1 = _mm512_reduce_max_ps(m1);
    /* a slice this small is all ex (a = 1, q = 128): 1 / a must stay finite, or the
     * rounding could overflow and the byte stored would not be the q that xq used */
    a[0] = top0 > 1e-30f ? top0 / 127.0f : 1.0f;
    a[1] = top1 > 1e-30f ? top1 / 127.0f : 1.0f;
    __m512 va0 = _mm512_set1_ps(a[0]), vinv0 = _mm512_set1_ps(1.0f / a[0]);
    __m512 va1 = _mm512_set1_ps(a[1]), vinv1 = _mm512_set1_ps(1.0f / a[1]);
    __m512 o0 = _mm512_set1_ps(128.0f * a[0]), o1 = _mm512_set1_ps(128.0f * a[1]);
    __m512 off = _mm512_set1_ps(128.0f);
    __m512 sx0 = _mm512_setzero_ps(), se0 = sx0, sx1 = sx0, se1 = sx0;
    for (int j = 0; j < wq; j += 16) {
        __mmask16 m = j + 16 <= w ? 0xffff : (j < w ? (__mmask16)((1u << (w - j)) - 1) : 0);
        __mmask16 st = j + 16 <= wq ? 0xffff : (__mmask16)((1u << (wq - j)) - 1);
        __m512 v0 = _mm512_maskz_loadu_ps(m, x0 + j), v1 = _mm512_maskz_loadu_ps(m, x1 + j);
        __m512i i0 = _mm512_cvtps_epi32(_mm512_fmadd_ps(v0, vinv0, off));
        __m512i i1 = _mm512_cvtps_epi32(_mm512_fmadd_ps(v1, vinv1, off));
        /* xq = a (q - 128): one rounding, the same value as a times the integer q - 128 */
        __m512 xq0 = _mm512_fmsub_ps(va0, _mm512_cvtepi32_ps(i0), o0), e0 = _mm512_sub_ps(v0, xq0);
        __m512 xq1 = _mm512_fmsub_ps(va1, _mm512_cvtepi32_ps(i1), o1), e1 = _mm512_sub_ps(v1, xq1);
        sx0 = _mm512_fmadd_ps(xq0, xq0, sx0); sx1 = _mm512_fmadd_ps(xq1, xq1, sx1);
        se0 = _mm512_fmadd_ps(e0, e0, se0); se1 = _mm512_fmadd_ps(e1, e1, se1);
        _mm_mask_storeu_epi8(q0 + j, st, _mm512_cvtepi32_epi8(i0));
        _mm_mask_storeu_epi8(q1 + j, st, _mm512_cvtepi32_epi8(i1));
    }
    /* past w, v = 0 -> qx = 128 against qc = 0 in the packing: no effect on the dots */
    xqn[0] = sqrtf(_mm512_reduce_add_ps(sx0)) * 1.0001f;
    xqn[1] = sqrtf(_mm512_reduce_add_ps(sx1)) * 1.0001f;
    exn[0] = sqrtf(_mm512_reduce_add_ps(se0)) * 1.0001f + 1e-30f;
    exn[1] = sqrtf(_mm512_reduce_add_ps(se1)) * 1.0001f + 1e-30f;
}


HARNESS_TARGET_AVX512 static void block_dots_vnni(uint8_t (*qx)[4096 + 64], int rn, const int8_t *qp,
                                                  int kp, int quads, int32_t (*S)[256 + KB])
{
    for (int g0 = 0; g0 < kpack_for(kp, 16) / 16; g0 += 4) {
        int r = 0;
        for (; r + 2 <= rn; r += 2)
            dots_vnni2(qx[r], qx[r + 1], qp, g0, quads, S[r], S[r + 1]);
        if (r < rn)                  /* an odd row out: pair it with itself */
            dots_vnni2(qx[r], qx[r], qp, g0, quads, S[r], S[r]);
    }
}

#endif /* HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512 */

/* ------------------------------------------------------------ AMX int8 first pass
 *
 * tdpbusd: C[16 rows][16 centroids] (int32) += A[16 rows][16 quads] (u8) .
 * B[16 quads][16 centroids x 4] (s8): full-width tiles. The 16-centroid
 * packing is B as it stands: a 16-centroid group holds, quad after quad, 64 bytes (16 centroids
 * x 4 columns), so B is 16 consecutive quads of one group, rows 64 bytes
 * apart; A is 16 quantized rows, 64 bytes each. Two A tiles (32 rows) and two
 * B tiles (32 centroids) feed four C tiles per span. For AMX the packing and
 * the quantized rows are padded to whole 16-quad spans (kernels.py), so every
 * tile has one shape and one configuration serves the call.
 */
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AMX

struct tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

HARNESS_TARGET_AMX static void amx_config(void)
{
    struct tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {           /* C 0-3, A 4-5 (16 rows x 16 quads), B 6-7 */
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
}

/* 32 rows by 32 centroids per pass, four C tiles from two A and two B tiles: a
 * tile is never reloaded while a tdpbusd may still read it (tiles are not renamed:
 * one B tile reloaded for each of four groups serialized every load behind the
 * last product; measured on Intel family 6 model 207). */
HARNESS_TARGET_AMX static void block_dots_amx(uint8_t (*qx)[4096 + 64], int rn, const int8_t *qp,
                                              int kp, int quads, int32_t (*S)[256 + KB])
{
    (void)rn;                   /* rows past rn hold stale bytes; their sums are never read */
    const long qstride = sizeof qx[0], sstride = sizeof S[0];
    for (int g0 = 0; g0 < (kp + 63) / 64 * 4; g0 += 2) {
        const int8_t *b0 = qp + (long)g0 * quads * 64, *b1 = b0 + (long)quads * 64;
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (int t = 0; t < quads; t += 16) {
            _tile_loadd(4, &qx[0][4 * t], qstride);
            _tile_loadd(6, b0 + (long)t * 64, 64);
            _tile_dpbusd(0, 4, 6);
            _tile_loadd(7, b1 + (long)t * 64, 64);
            _tile_dpbusd(1, 4, 7);
            _tile_loadd(5, &qx[16][4 * t], qstride);
            _tile_dpbusd(2, 5, 6);
            _tile_dpbusd(3, 5, 7);
        }
        _tile_stored(0, &S[0][g0 * 16], sstride);
        _tile_stored(1, &S[0][(g0 + 1) * 16], sstride);
        _tile_stored(2, &S[16][g0 * 16], sstride);
        _tile_stored(3, &S[16][(g0 + 1) * 16], sstride);
    }
}

HARNESS_TARGET_AMX static void amx_release(void)
{
    _tile_release();
}


#endif /* HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AMX */

#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512

/* ------------------------------------------------------------ AVX-512 and AMX encode
 *
 * encode_i8 with the AVX-512 quantization and select, and the VNNI or the AMX dots.
 * With AMX the tiles are configured once per call. (A tdpbusd per row between the
 * bursts of dots, to keep the tile unit from powering down, cost more than it saved
 * on Intel family 6 model 207: each one waits on the last, and the AVX-512 work
 * around it slowed by half.) */
/* Subspaces outside, row blocks inside: one subspace's share of the codebook (its
 * int8 packing and its float32 slices for the re-check: 640 KB at dim 3072) stays in
 * L2 while every row passes, so the re-check's slices come from L2, not from L3. The
 * rows are read once per subspace, in slices of a few KB; the next block's slices are
 * fetched ahead while this block is worked on. */
static void prefetch_slices(const float *rows, int dim, int n, int next, int lo, int w)
{
    for (int r = next; r < next + RB && r < n; r++) {
        const char *x = (const char *)(rows + (long)r * dim + lo);
        for (long o = 0; o < (long)w * 4; o += 64)
            _mm_prefetch(x + o, _MM_HINT_T0);
    }
}

HARNESS_TARGET_AVX512 static void encode_512(const struct i8book *bk, int dim, int num_subspaces,
                                             int num_centroids, const float *rows, int n,
                                             uint8_t *out, dots_fn dots, int amx)
{
    int kp = padded(num_centroids), quads = bk->wq / 4;
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AMX
    if (amx)
        amx_config();
#endif
    uint8_t qx[SB][4096 + 64] __attribute__((aligned(64)));
    int32_t S[SB][256 + KB] __attribute__((aligned(64)));
    float dp[2][256 + KB] __attribute__((aligned(64))), a[SB + 1], xqn[SB + 1], exn[SB + 1];   /* + 1: an odd row out pairs with itself */
    for (int s = 0; s < num_subspaces; s++) {
        int lo = s * dim / num_subspaces, hi = (s + 1) * dim / num_subspaces, w = hi - lo;
        const int8_t *qp = bk->qpack + qpack_base(s, bk->kpack, bk->wq);
        for (int i0 = 0; i0 < n; i0 += SB) {
            int rn = n - i0 < SB ? n - i0 : SB;
            for (int r = 0; r < rn; r += 2) {
                int r1 = r + 1 < rn ? r + 1 : r;     /* an odd row out: paired with itself */
                if (r % RB == 0)
                    prefetch_slices(rows, dim, n, i0 + r + RB, lo, w);
                quantize2_512(rows + (long)(i0 + r) * dim + lo, rows + (long)(i0 + r1) * dim + lo, w,
                              bk->wq, qx[r], qx[r1], a + r, xqn + r, exn + r);
            }
            if (amx)
                dots(qx, rn, qp, kp, quads, S);
            else
                for (int r = 0; r < rn; r += RB)
                    dots(qx + r, rn - r < RB ? rn - r : RB, qp, kp, quads, S + r);
            for (int r = 0; r < rn; r += 2) {
                int r1 = r + 1 < rn ? r + 1 : r;     /* an odd row out: paired with itself */
                float a2[2] = {a[r], a[r1]}, x2[2] = {xqn[r], xqn[r1]}, e2[2] = {exn[r], exn[r1]};
                select2_512(rows + (long)(i0 + r) * dim + lo, rows + (long)(i0 + r1) * dim + lo, lo,
                            w, dim, s, kp, num_centroids, bk, a2, x2, e2, S[r], S[r1], dp,
                            out + (long)(i0 + r) * num_subspaces + s,
                            out + (long)(i0 + r1) * num_subspaces + s);
            }
        }
    }
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AMX
    if (amx)
        amx_release();
#endif
}

#endif /* HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512 */

/* ------------------------------------------------------------ dispatch */

void campq_encode(const float *packed, const float *norms, int dim, int num_subspaces,
                  int num_centroids, const float *rows, int n, uint8_t *out, int isa,
                  const float *codebook, int wq, const int8_t *qpack, const float *scale,
                  const int32_t *t64, const float *bx, const float *bq)
{
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2
    if (isa >= HARNESS_ISA_AVX2 && dim / num_subspaces + 1 <= 4096) {
        struct i8book bk = {qpack, scale, t64, norms, bx, bq, codebook, wq,
                            kpack_for(num_centroids, isa >= HARNESS_ISA_AVX512 ? 16 : 8)};
        dots_fn dots = block_dots_avx2;
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512
        if (isa >= HARNESS_ISA_AVX512)
            dots = block_dots_vnni;
#endif
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AMX
        if (isa >= HARNESS_ISA_AMX)
            dots = block_dots_amx;
#endif
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512
        if (isa >= HARNESS_ISA_AVX512) {
            encode_512(&bk, dim, num_subspaces, num_centroids, rows, n, out, dots,
                       isa >= HARNESS_ISA_AMX);
            return;
        }
#endif
        encode_i8(&bk, dim, num_subspaces, num_centroids, rows, n, out, dots);
        return;
    }
    if (isa >= HARNESS_ISA_AVX2) {
        encode_avx2(packed, norms, dim, num_subspaces, num_centroids, rows, n, out);
        return;
    }
#endif
    encode_portable(packed, norms, dim, num_subspaces, num_centroids, rows, n, out);
}
