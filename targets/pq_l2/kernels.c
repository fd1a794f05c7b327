/* pq_l2 kernel (agent-editable): distance tables and top-k ADC search.
 *
 * Entry points take the ISA level the harness allows (enum harness_isa);
 * faster paths go in functions marked HARNESS_TARGET_AVX2 / _AVX512 / _AMX
 * and are chosen in the dispatch functions at the bottom. Every level must
 * give results within the harness tolerance; see program.md.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "harness_isa.h"

static void tables_portable(const float *codebook, int dim, int num_sub_vectors,
                            int num_centroids, const float *queries, int nq, float *out)
{
    int dsub = dim / num_sub_vectors;
    for (int q = 0; q < nq; q++)
        for (int m = 0; m < num_sub_vectors; m++) {
            const float *x = queries + (long)q * dim + (long)m * dsub;
            float *row = out + ((long)q * num_sub_vectors + m) * num_centroids;
            for (int c = 0; c < num_centroids; c++) {
                const float *y = codebook + ((long)m * num_centroids + c) * dsub;
                float s = 0.0f;
                for (int d = 0; d < dsub; d++) {
                    float t = x[d] - y[d];
                    s += t * t;
                }
                row[c] = s;
            }
        }
}

/* Keep the k smallest (distance, id) pairs ascending; equal distances keep
 * the lower id first because ids arrive in increasing order. */
static void topk_insert(float *dists, uint32_t *ids, int k, float d, uint32_t id)
{
    int i = k - 1;
    if (!(d < dists[i]))
        return;
    while (i > 0 && d < dists[i - 1]) {
        dists[i] = dists[i - 1];
        ids[i] = ids[i - 1];
        i--;
    }
    dists[i] = d;
    ids[i] = id;
}

static void scan_portable(const float *table, int num_sub_vectors, int num_centroids,
                          const uint8_t *codes, int n, int k, uint32_t *ids, float *dists)
{
    for (int i = 0; i < k; i++) {
        dists[i] = INFINITY;
        ids[i] = UINT32_MAX;
    }
    for (int j = 0; j < n; j++) {
        const uint8_t *code = codes + (long)j * num_sub_vectors;
        float s = 0.0f;
        for (int m = 0; m < num_sub_vectors; m++)
            s += table[m * num_centroids + code[m]];
        topk_insert(dists, ids, k, s, (uint32_t)j);
    }
}

/* ------------------------------------------------------------ one query at a time (AVX2) */

#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2

/* One query's table from the codebook stored as cbt[m][d][c] (centroids
 * innermost, padded to kcp, a multiple of 32): each step is a broadcast, a
 * load and an FMA for 8 centroids, with no horizontal sum; four vectors at
 * a time so four FMA chains hide each other's latency. Rows of t are kcp apart. */
HARNESS_TARGET_AVX2 static void table_one(const float *cbt, int dim, int msub, int kcp,
                                          const float *q, float *t)
{
    int dsub = dim / msub;
    for (int m = 0; m < msub; m++) {
        const float *cm = cbt + (long)m * dsub * kcp;
        const float *qm = q + (long)m * dsub;
        for (int c = 0; c < kcp; c += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int d = 0; d < dsub; d++) {
                const float *y = cm + (long)d * kcp + c;
                __m256 x = _mm256_set1_ps(qm[d]);
                __m256 d0 = _mm256_sub_ps(x, _mm256_loadu_ps(y));
                __m256 d1 = _mm256_sub_ps(x, _mm256_loadu_ps(y + 8));
                __m256 d2 = _mm256_sub_ps(x, _mm256_loadu_ps(y + 16));
                __m256 d3 = _mm256_sub_ps(x, _mm256_loadu_ps(y + 24));
                a0 = _mm256_fmadd_ps(d0, d0, a0);
                a1 = _mm256_fmadd_ps(d1, d1, a1);
                a2 = _mm256_fmadd_ps(d2, d2, a2);
                a3 = _mm256_fmadd_ps(d3, d3, a3);
            }
            float *o = t + (long)m * kcp + c;
            _mm256_storeu_ps(o, a0);
            _mm256_storeu_ps(o + 8, a1);
            _mm256_storeu_ps(o + 16, a2);
            _mm256_storeu_ps(o + 24, a3);
        }
    }
}

/* A row's distance in four independent float chains: one chain waits on
 * every add's latency (3-4 cycles) where the lookups themselves need one. */
static inline __attribute__((always_inline)) void scan_fp32_body(
    const float *t, int msub, int kcp, const uint8_t *codes, int n, int k, uint32_t *ids,
    float *dists)
{
    for (int i = 0; i < k; i++) {
        dists[i] = INFINITY;
        ids[i] = UINT32_MAX;
    }
    for (int j = 0; j < n; j++) {
        const uint8_t *code = codes + (long)j * msub;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int m = 0;
#pragma GCC unroll 8
        for (; m + 4 <= msub; m += 4) {
            s0 += t[(long)m * kcp + code[m]];
            s1 += t[(long)(m + 1) * kcp + code[m + 1]];
            s2 += t[(long)(m + 2) * kcp + code[m + 2]];
            s3 += t[(long)(m + 3) * kcp + code[m + 3]];
        }
        for (; m < msub; m++)
            s0 += t[(long)m * kcp + code[m]];
        topk_insert(dists, ids, k, (s0 + s1) + (s2 + s3), (uint32_t)j);
    }
}

/* The speed shapes get bodies with a constant M, so the lookups unroll. */
HARNESS_TARGET_AVX2 static void scan_fp32(const float *t, int msub, int kcp, const uint8_t *codes,
                                          int n, int k, uint32_t *ids, float *dists)
{
    if (msub == 16 && kcp == 256)
        scan_fp32_body(t, 16, 256, codes, n, k, ids, dists);
    else if (msub == 96 && kcp == 256)
        scan_fp32_body(t, 96, 256, codes, n, k, ids, dists);
    else
        scan_fp32_body(t, msub, kcp, codes, n, k, ids, dists);
}

/* A byte table that bounds the float table from below: q8[m][c] =
 * min(255, floor((t[m][c] - lo_m) / step)), so base + step * sum_m q8 <= the
 * row's distance for every row. Its M x K bytes stay in L1, where the float
 * table (4 x larger: 96 KB at M = 96) does not, and integer sums have no add
 * latency to hide. step spreads 255 levels over the mean per-sub-vector range;
 * larger entries saturate, which only loosens the bound for far rows. */
HARNESS_TARGET_AVX2 static void bound_table(const float *t, int msub, int kc, int kcp,
                                            float *lo, uint8_t *q8, double *base, double *step)
{
    double span = 0.0, lo_sum = 0.0;
    for (int m = 0; m < msub; m++) {
        const float *row = t + (long)m * kcp;
        float l = row[0], h = row[0];
        for (int c = 1; c < kc; c++) {
            l = row[c] < l ? row[c] : l;
            h = row[c] > h ? row[c] : h;
        }
        lo[m] = l;
        lo_sum += l;
        span += (double)h - l;
    }
    float s = (float)(span / (msub * 255.0));
    if (!(s > 0.0f) || !isfinite(s))
        s = 1.0f;                           /* every entry equal: any step bounds */
    float inv = 1.0f / s;
    for (int m = 0; m < msub; m++) {
        const float *row = t + (long)m * kcp;
        uint8_t *qr = q8 + (long)m * kcp;
        for (int c = 0; c < kc; c++) {
            float v = (row[c] - lo[m]) * inv;
            qr[c] = v >= 255.0f ? 255 : (uint8_t)v;     /* truncation is floor for v >= 0 */
        }
    }
    *base = lo_sum;
    *step = s;
}

/* The largest byte sum of a row that can still beat thr. The slack (a
 * relative 1e-5 and one step) covers the rounding of the float table and of
 * the bound, so no row that belongs in the top k is ever pruned. */
static inline uint32_t bound_limit(float thr, double base, double step)
{
    if (!(thr < INFINITY))
        return UINT32_MAX;
    double lim = ((double)thr * (1.0 + 1e-5) - base) / step + 1.0;
    return lim < 0.0 ? 0u : lim > 4e9 ? UINT32_MAX : (uint32_t)lim;
}

/* The exact float distance of a row the bound could not prune. Out of line,
 * so the scan loop keeps its registers for the byte sums. */
static __attribute__((noinline)) uint32_t recheck(const float *t, int msub, int kcp,
                                                  const uint8_t *code, uint32_t id, int k,
                                                  uint32_t *ids, float *dists, double base,
                                                  double step, uint32_t limit)
{
    float s = 0.0f;
    for (int m = 0; m < msub; m++)
        s += t[(long)m * kcp + code[m]];
    if (!(s < dists[k - 1]))
        return limit;
    topk_insert(dists, ids, k, s, id);
    return bound_limit(dists[k - 1], base, step);
}

/* Byte sums for every row; only rows whose bound is within the current k-th
 * distance look at the float table. */
static inline __attribute__((always_inline)) void scan_bound_body(
    const float *t, const uint8_t *q8, int msub, int kcp, const uint8_t *codes, int n, int k,
    uint32_t *ids, float *dists, double base, double step)
{
    for (int i = 0; i < k; i++) {
        dists[i] = INFINITY;
        ids[i] = UINT32_MAX;
    }
    uint32_t limit = UINT32_MAX;
    for (int j = 0; j < n; j++) {
        const uint8_t *code = codes + (long)j * msub;
        uint32_t a = 0, b = 0;
        int m = 0;
#pragma GCC unroll 16
        for (; m + 2 <= msub; m += 2) {
            a += q8[(long)m * kcp + code[m]];
            b += q8[(long)(m + 1) * kcp + code[m + 1]];
        }
        if (m < msub)
            a += q8[(long)m * kcp + code[m]];
        if (__builtin_expect(a + b > limit, 1))
            continue;
        limit = recheck(t, msub, kcp, code, (uint32_t)j, k, ids, dists, base, step, limit);
    }
}

HARNESS_TARGET_AVX2 static void scan_bound(const float *t, const uint8_t *q8, int msub, int kcp,
                                           const uint8_t *codes, int n, int k, uint32_t *ids,
                                           float *dists, double base, double step)
{
    if (msub == 16 && kcp == 256)
        scan_bound_body(t, q8, 16, 256, codes, n, k, ids, dists, base, step);
    else if (msub == 96 && kcp == 256)
        scan_bound_body(t, q8, 96, 256, codes, n, k, ids, dists, base, step);
    else
        scan_bound_body(t, q8, msub, kcp, codes, n, k, ids, dists, base, step);
}

#define L1_BYTES 32768   /* a float table this small is read from L1 already: no bound needed */

/* scratch: msub * kcp floats (table), msub floats and msub * kcp bytes (bound table) */
HARNESS_TARGET_AVX2 static void search_one(const float *cbt, int dim, int msub, int kc,
                                           const float *query, const uint8_t *codes, int n,
                                           int k, uint32_t *ids, float *dists, float *scratch)
{
    int kcp = (kc + 31) & ~31;
    float *t = scratch, *lo = t + (long)msub * kcp;
    uint8_t *q8 = (uint8_t *)(lo + msub);
    double base, step;
    table_one(cbt, dim, msub, kcp, query, t);
    if ((long)msub * kcp * sizeof(float) <= L1_BYTES) {
        scan_fp32(t, msub, kcp, codes, n, k, ids, dists);
        return;
    }
    bound_table(t, msub, kc, kcp, lo, q8, &base, &step);
    scan_bound(t, q8, msub, kcp, codes, n, k, ids, dists, base, step);
}

/* ------------------------------------------------------------ a batch (AVX2) */

#define NQ_BATCH 8   /* from this many queries on, one scan serves 32 query lanes */
#define QB 32  /* queries sharing one scan: two 64-byte lines (four ymm) of table entries per code byte */
#define NV (QB / 8)

/* t8[m][c][lane] = |query (q0+lane) sub-vector m - centroid c|^2 for QB queries
 * (lanes past nq are copies of the last query). The group's queries are
 * transposed first (qt[d][lane]) so each step loads one vector. Per query,
 * the sum over the sub-vector's dimensions runs in order, as in the scalar code. */
HARNESS_TARGET_AVX2 static void tables_interleaved(const float *codebook, int dim, int msub,
                                                   int kc, const float *queries, int nq, int q0,
                                                   float *t8, float *qt)
{
    int dsub = dim / msub;
    for (int l = 0; l < QB; l++) {
        const float *q = queries + (long)(q0 + l < nq ? q0 + l : nq - 1) * dim;
        for (int d = 0; d < dim; d++)
            qt[(long)d * QB + l] = q[d];
    }
    for (int m = 0; m < msub; m++) {
        const float *qm = qt + (long)m * dsub * QB;
        for (int c = 0; c < kc; c++) {
            const float *y = codebook + ((long)m * kc + c) * dsub;
            __m256 acc[NV];
            for (int v = 0; v < NV; v++)
                acc[v] = _mm256_setzero_ps();
            for (int d = 0; d < dsub; d++) {
                __m256 yd = _mm256_set1_ps(y[d]);
                for (int v = 0; v < NV; v++) {
                    __m256 diff = _mm256_sub_ps(_mm256_loadu_ps(qm + d * QB + 8 * v), yd);
                    acc[v] = _mm256_fmadd_ps(diff, diff, acc[v]);
                }
            }
            for (int v = 0; v < NV; v++)
                _mm256_storeu_ps(t8 + ((long)m * kc + c) * QB + 8 * v, acc[v]);
        }
    }
}

/* Insert the rows whose lane sums beat their query's k-th best, lane by lane. */
HARNESS_TARGET_AVX2 static inline void offer(const __m256 *acc, __m256 *vthr, uint32_t id,
                                             float *thr, uint32_t *ids, float *dists, int k)
{
    uint32_t mask = 0;
    for (int v = 0; v < NV; v++)
        mask |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(acc[v], vthr[v], _CMP_LT_OQ)) << (8 * v);
    if (__builtin_expect(!mask, 1))
        return;
    float s[QB];
    for (int v = 0; v < NV; v++)
        _mm256_storeu_ps(s + 8 * v, acc[v]);
    while (mask) {
        int l = __builtin_ctz(mask);
        mask &= mask - 1;
        topk_insert(dists + (long)l * k, ids + (long)l * k, k, s[l], id);
        thr[l] = dists[(long)l * k + k - 1];
    }
    for (int v = 0; v < NV; v++)
        vthr[v] = _mm256_loadu_ps(thr + 8 * v);
}

#define RBLK 1024  /* rows per block: their partial sums (128 KB) stay in L2 */
#define MCH 12     /* sub-vectors per pass: their table slab (384 KB) stays in L2 */

/* Every code byte feeds four vectors of two cache lines: the table entries of
 * 32 queries. Each query's sum runs over the sub-vectors in order. Past MCH
 * sub-vectors the table outgrows L2, so rows go in blocks and sub-vectors in
 * passes of MCH, carrying partial sums between passes. */
HARNESS_TARGET_AVX2 static void scan_interleaved(const float *t16, int msub, int kc,
                                                 const uint8_t *codes, int n, int k,
                                                 int nlanes, uint32_t *ids, float *dists,
                                                 float *partial)
{
    float thr[QB];
    for (int l = 0; l < nlanes; l++) {
        for (int i = 0; i < k; i++) {
            dists[(long)l * k + i] = INFINITY;
            ids[(long)l * k + i] = UINT32_MAX;
        }
        thr[l] = INFINITY;
    }
    for (int l = nlanes; l < QB; l++)
        thr[l] = -INFINITY;                     /* unused lanes never insert */
    __m256 vthr[NV];
    for (int v = 0; v < NV; v++)
        vthr[v] = _mm256_loadu_ps(thr + 8 * v);
    int rblk = msub > MCH ? RBLK : n;
    for (int r0 = 0; r0 < n; r0 += rblk) {
        int rn = n - r0 < rblk ? n - r0 : rblk;
        for (int m0 = 0; m0 < msub; m0 += MCH) {
            int m1 = msub - m0 < MCH ? msub : m0 + MCH;
            for (int r = 0; r < rn; r++) {
                const uint8_t *code = codes + (long)(r0 + r) * msub;
                float *p = partial + (long)r * QB;
                __m256 acc[NV];
                for (int v = 0; v < NV; v++)
                    acc[v] = m0 ? _mm256_load_ps(p + 8 * v) : _mm256_setzero_ps();
                for (int m = m0; m < m1; m++) {
                    const float *e = t16 + ((long)m * kc + code[m]) * QB;
                    for (int v = 0; v < NV; v++)
                        acc[v] = _mm256_add_ps(acc[v], _mm256_load_ps(e + 8 * v));
                }
                if (m1 == msub) {
                    offer(acc, vthr, (uint32_t)(r0 + r), thr, ids, dists, k);
                } else {
                    for (int v = 0; v < NV; v++)
                        _mm256_store_ps(p + 8 * v, acc[v]);
                }
            }
        }
    }
}

HARNESS_TARGET_AVX2 static void search_avx2(const float *codebook, int dim, int msub, int kc,
                                            const float *queries, int nq, const uint8_t *codes,
                                            int n, int k, uint32_t *out_ids, float *out_dists,
                                            float *t8)
{
    for (int q0 = 0; q0 < nq; q0 += QB) {
        int lanes = nq - q0 < QB ? nq - q0 : QB;
        tables_interleaved(codebook, dim, msub, kc, queries, nq, q0, t8,
                           t8 + (long)msub * kc * QB);
        scan_interleaved(t8, msub, kc, codes, n, k, lanes, out_ids + (long)q0 * k,
                         out_dists + (long)q0 * k, t8 + (long)msub * kc * QB + (long)QB * dim);
    }
}

#endif /* HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2 */

/* ------------------------------------------------------------ AVX-512 batch path
 *
 * The AVX2 batch path at twice the width: a code byte's 32 table entries are
 * two zmm (the same two cache lines), the k-th-best test is one mask compare
 * per vector, and the tables build 16 queries per vector. Sums run in the
 * same order as every other path (per query: dimensions, then sub-vectors).
 */
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512

#define NZ (QB / 16)

HARNESS_TARGET_AVX512 static void tables_interleaved_512(const float *codebook, int dim, int msub,
                                                         int kc, const float *queries, int nq,
                                                         int q0, float *t8, float *qt)
{
    int dsub = dim / msub;
    for (int l = 0; l < QB; l++) {
        const float *q = queries + (long)(q0 + l < nq ? q0 + l : nq - 1) * dim;
        for (int d = 0; d < dim; d++)
            qt[(long)d * QB + l] = q[d];
    }
    for (int m = 0; m < msub; m++) {
        const float *qm = qt + (long)m * dsub * QB;
        for (int c = 0; c < kc; c++) {
            const float *y = codebook + ((long)m * kc + c) * dsub;
            __m512 acc[NZ];
            for (int v = 0; v < NZ; v++)
                acc[v] = _mm512_setzero_ps();
            for (int d = 0; d < dsub; d++) {
                __m512 yd = _mm512_set1_ps(y[d]);
                for (int v = 0; v < NZ; v++) {
                    __m512 diff = _mm512_sub_ps(_mm512_loadu_ps(qm + d * QB + 16 * v), yd);
                    acc[v] = _mm512_fmadd_ps(diff, diff, acc[v]);
                }
            }
            for (int v = 0; v < NZ; v++)
                _mm512_storeu_ps(t8 + ((long)m * kc + c) * QB + 16 * v, acc[v]);
        }
    }
}

HARNESS_TARGET_AVX512 static inline void offer_512(const __m512 *acc, __m512 *vthr, uint32_t id,
                                                   float *thr, uint32_t *ids, float *dists, int k)
{
    uint32_t mask = 0;
    for (int v = 0; v < NZ; v++)
        mask |= (uint32_t)_mm512_cmp_ps_mask(acc[v], vthr[v], _CMP_LT_OQ) << (16 * v);
    if (__builtin_expect(!mask, 1))
        return;
    float s[QB];
    for (int v = 0; v < NZ; v++)
        _mm512_storeu_ps(s + 16 * v, acc[v]);
    while (mask) {
        int l = __builtin_ctz(mask);
        mask &= mask - 1;
        topk_insert(dists + (long)l * k, ids + (long)l * k, k, s[l], id);
        thr[l] = dists[(long)l * k + k - 1];
    }
    for (int v = 0; v < NZ; v++)
        vthr[v] = _mm512_loadu_ps(thr + 16 * v);
}

HARNESS_TARGET_AVX512 static void scan_interleaved_512(const float *t16, int msub, int kc,
                                                       const uint8_t *codes, int n, int k,
                                                       int nlanes, uint32_t *ids, float *dists,
                                                       float *partial)
{
    float thr[QB];
    for (int l = 0; l < nlanes; l++) {
        for (int i = 0; i < k; i++) {
            dists[(long)l * k + i] = INFINITY;
            ids[(long)l * k + i] = UINT32_MAX;
        }
        thr[l] = INFINITY;
    }
    for (int l = nlanes; l < QB; l++)
        thr[l] = -INFINITY;                     /* unused lanes never insert */
    __m512 vthr[NZ];
    for (int v = 0; v < NZ; v++)
        vthr[v] = _mm512_loadu_ps(thr + 16 * v);
    int rblk = msub > MCH ? RBLK : n;
    for (int r0 = 0; r0 < n; r0 += rblk) {
        int rn = n - r0 < rblk ? n - r0 : rblk;
        for (int m0 = 0; m0 < msub; m0 += MCH) {
            int m1 = msub - m0 < MCH ? msub : m0 + MCH;
            for (int r = 0; r < rn; r++) {
                const uint8_t *code = codes + (long)(r0 + r) * msub;
                float *p = partial + (long)r * QB;
                __m512 acc[NZ];
                for (int v = 0; v < NZ; v++)
                    acc[v] = m0 ? _mm512_load_ps(p + 16 * v) : _mm512_setzero_ps();
                for (int m = m0; m < m1; m++) {
                    const float *e = t16 + ((long)m * kc + code[m]) * QB;
                    for (int v = 0; v < NZ; v++)
                        acc[v] = _mm512_add_ps(acc[v], _mm512_load_ps(e + 16 * v));
                }
                if (m1 == msub) {
                    offer_512(acc, vthr, (uint32_t)(r0 + r), thr, ids, dists, k);
                } else {
                    for (int v = 0; v < NZ; v++)
                        _mm512_store_ps(p + 16 * v, acc[v]);
                }
            }
        }
    }
}

HARNESS_TARGET_AVX512 static void search_avx512(const float *codebook, int dim, int msub, int kc,
                                                const float *queries, int nq, const uint8_t *codes,
                                                int n, int k, uint32_t *out_ids, float *out_dists,
                                                float *t8)
{
    for (int q0 = 0; q0 < nq; q0 += QB) {
        int lanes = nq - q0 < QB ? nq - q0 : QB;
        tables_interleaved_512(codebook, dim, msub, kc, queries, nq, q0, t8,
                               t8 + (long)msub * kc * QB);
        scan_interleaved_512(t8, msub, kc, codes, n, k, lanes, out_ids + (long)q0 * k,
                             out_dists + (long)q0 * k, t8 + (long)msub * kc * QB + (long)QB * dim);
    }
}

#undef NZ

/* ------------------------------------------------------------ one query at a time (AVX-512)
 *
 * A 16-lane gather looks up 16 sub-vectors of one row in one instruction,
 * where the AVX2 scan issues a code load and a table load per lookup: M = 16
 * is one gather per row, M = 96 six (from the byte bound table, in L1). Rows
 * go 16 at a time, so their 16 vectors of partial sums fold into one vector
 * of 16 row sums and the k-th-best test is one compare per 16 rows. Sub-vector
 * counts that are not a multiple of 16 keep the AVX2 scan.
 */
#define GB 16   /* rows per block: one vector of row sums */

/* v[r] holds row r's partial sums; the result's lane r is row r's sum. Four
 * rounds of cross-lane shuffles and adds, each halving the vectors in play. */
HARNESS_TARGET_AVX512 static inline __m512 sum_rows_512(const __m512 *v)
{
    __m512 w[8], x[4], y[2];
    for (int i = 0; i < 8; i++)
        w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)
        x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++) {
        __m512d a = _mm512_castps_pd(x[2 * i]), b = _mm512_castps_pd(x[2 * i + 1]);
        y[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    __m512 z = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xDD));
    /* z's lane 4b + j holds row 4j + b: transpose the 4 x 4 back to row order */
    const __m512i rows = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    return _mm512_permutexvar_ps(rows, z);
}

/* Table offsets of sub-vectors 0..15 for one row's 16 code bytes. */
HARNESS_TARGET_AVX512 static inline __m512i lookup_index(const uint8_t *code, __m512i offs)
{
    return _mm512_add_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)code)), offs);
}

HARNESS_TARGET_AVX512 static inline __attribute__((always_inline)) void scan_gather_fp32_body(
    const float *t, int msub, int kcp, const uint8_t *codes, int n, int k, uint32_t *ids,
    float *dists)
{
    for (int i = 0; i < k; i++) {
        dists[i] = INFINITY;
        ids[i] = UINT32_MAX;
    }
    const __m512i offs = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(kcp));
    int j = 0;
    for (; j + GB <= n; j += GB) {
        __m512 v[GB];
        for (int r = 0; r < GB; r++) {
            const uint8_t *code = codes + (long)(j + r) * msub;
            __m512 acc = _mm512_i32gather_ps(lookup_index(code, offs), t, 4);
            for (int m = 16; m < msub; m += 16)
                acc = _mm512_add_ps(acc, _mm512_i32gather_ps(lookup_index(code + m, offs),
                                                             t + (long)m * kcp, 4));
            v[r] = acc;
        }
        __m512 s = sum_rows_512(v);
        __mmask16 hit = _mm512_cmp_ps_mask(s, _mm512_set1_ps(dists[k - 1]), _CMP_LT_OQ);
        if (__builtin_expect(!hit, 1))
            continue;
        float sv[GB];
        _mm512_storeu_ps(sv, s);
        while (hit) {
            int r = __builtin_ctz(hit);
            hit &= hit - 1;
            topk_insert(dists, ids, k, sv[r], (uint32_t)(j + r));
        }
    }
    for (; j < n; j++) {
        const uint8_t *code = codes + (long)j * msub;
        float s = 0.0f;
        for (int m = 0; m < msub; m++)
            s += t[(long)m * kcp + code[m]];
        topk_insert(dists, ids, k, s, (uint32_t)j);
    }
}

HARNESS_TARGET_AVX512 static void scan_gather_fp32(const float *t, int msub, int kcp,
                                                   const uint8_t *codes, int n, int k,
                                                   uint32_t *ids, float *dists)
{
    if (msub == 16 && kcp == 256)
        scan_gather_fp32_body(t, 16, 256, codes, n, k, ids, dists);
    else
        scan_gather_fp32_body(t, msub, kcp, codes, n, k, ids, dists);
}

/* recheck with gathers: a row's exact float distance in M / 16 gathers from
 * the float table, where the scalar re-check pays M dependent adds. */
HARNESS_TARGET_AVX512 static __attribute__((noinline)) uint32_t recheck_512(
    const float *t, int msub, int kcp, const uint8_t *code, uint32_t id, int k, uint32_t *ids,
    float *dists, double base, double step, uint32_t limit, __m512i offs)
{
    __m512 acc = _mm512_i32gather_ps(lookup_index(code, offs), t, 4);
    for (int m = 16; m < msub; m += 16)
        acc = _mm512_add_ps(acc, _mm512_i32gather_ps(lookup_index(code + m, offs),
                                                     t + (long)m * kcp, 4));
    float s = _mm512_reduce_add_ps(acc);
    if (!(s < dists[k - 1]))
        return limit;
    topk_insert(dists, ids, k, s, id);
    return bound_limit(dists[k - 1], base, step);
}

/* The byte bound table through dword gathers at byte offsets (scale 1; the
 * mask keeps the addressed byte): byte sums stay below 2^24, so they add
 * exactly as floats and share the row-sum fold. */
HARNESS_TARGET_AVX512 static inline __attribute__((always_inline)) void scan_gather_bound_body(
    const float *t, const uint8_t *q8, int msub, int kcp, const uint8_t *codes, int n, int k,
    uint32_t *ids, float *dists, double base, double step)
{
    for (int i = 0; i < k; i++) {
        dists[i] = INFINITY;
        ids[i] = UINT32_MAX;
    }
    const __m512i offs = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(kcp));
    const __m512i low = _mm512_set1_epi32(0xFF);
    uint32_t limit = UINT32_MAX;
    int j = 0;
    for (; j + GB <= n; j += GB) {
        __m512 v[GB];
        for (int r = 0; r < GB; r++) {
            const uint8_t *code = codes + (long)(j + r) * msub;
            __m512i acc = _mm512_and_si512(_mm512_i32gather_epi32(lookup_index(code, offs), q8, 1), low);
            for (int m = 16; m < msub; m += 16)
                acc = _mm512_add_epi32(acc, _mm512_and_si512(_mm512_i32gather_epi32(
                    lookup_index(code + m, offs), q8 + (long)m * kcp, 1), low));
            v[r] = _mm512_cvtepi32_ps(acc);
        }
        __m512 s = sum_rows_512(v);
        float lim = limit >= (1u << 24) ? (float)(1u << 24) : (float)limit;
        __mmask16 hit = _mm512_cmp_ps_mask(s, _mm512_set1_ps(lim), _CMP_LE_OQ);
        if (__builtin_expect(!hit, 1))
            continue;
        while (hit) {
            int r = __builtin_ctz(hit);
            hit &= hit - 1;
            limit = recheck_512(t, msub, kcp, codes + (long)(j + r) * msub, (uint32_t)(j + r), k,
                                ids, dists, base, step, limit, offs);
        }
    }
    for (; j < n; j++) {
        const uint8_t *code = codes + (long)j * msub;
        uint32_t a = 0;
        for (int m = 0; m < msub; m++)
            a += q8[(long)m * kcp + code[m]];
        if (a <= limit)
            limit = recheck(t, msub, kcp, code, (uint32_t)j, k, ids, dists, base, step, limit);
    }
}

HARNESS_TARGET_AVX512 static void scan_gather_bound(const float *t, const uint8_t *q8, int msub,
                                                    int kcp, const uint8_t *codes, int n, int k,
                                                    uint32_t *ids, float *dists, double base,
                                                    double step)
{
    if (msub == 96 && kcp == 256)
        scan_gather_bound_body(t, q8, 96, 256, codes, n, k, ids, dists, base, step);
    else
        scan_gather_bound_body(t, q8, msub, kcp, codes, n, k, ids, dists, base, step);
}

/* As search_one, with the gather scans; msub must be a multiple of 16. The
 * byte table's last gathers read 3 bytes past it, inside the scratch. */
HARNESS_TARGET_AVX512 static void search_one_512(const float *cbt, int dim, int msub, int kc,
                                                 const float *query, const uint8_t *codes, int n,
                                                 int k, uint32_t *ids, float *dists,
                                                 float *scratch)
{
    int kcp = (kc + 31) & ~31;
    float *t = scratch, *lo = t + (long)msub * kcp;
    uint8_t *q8 = (uint8_t *)(lo + msub);
    double base, step;
    table_one(cbt, dim, msub, kcp, query, t);
    if ((long)msub * kcp * sizeof(float) <= L1_BYTES) {
        scan_gather_fp32(t, msub, kcp, codes, n, k, ids, dists);
        return;
    }
    bound_table(t, msub, kc, kcp, lo, q8, &base, &step);
    scan_gather_bound(t, q8, msub, kcp, codes, n, k, ids, dists, base, step);
}

#undef GB

#endif /* HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512 */

/* ------------------------------------------------------------ dispatch */

void pq_distance_tables(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
                        const float *queries, int nq, float *out, int isa)
{
    (void)isa;   /* every level uses the portable path for now */
    tables_portable(codebook, dim, num_sub_vectors, num_centroids, queries, nq, out);
}

/* cbt[m][d][c] = codebook[m][c][d], centroids padded with zeros to a multiple of 32. */
void pq_transpose_codebook(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
                           float *cbt)
{
    int dsub = dim / num_sub_vectors, kcp = (num_centroids + 31) & ~31;
    for (int m = 0; m < num_sub_vectors; m++)
        for (int d = 0; d < dsub; d++)
            for (int c = 0; c < kcp; c++)
                cbt[((long)m * dsub + d) * kcp + c] =
                    c < num_centroids ? codebook[((long)m * num_centroids + c) * dsub + d] : 0.0f;
}

/* tables: scratch of max(nq, 1) * num_sub_vectors * num_centroids floats (portable path)
 * or (2 * num_sub_vectors * (num_centroids rounded up to 32) + num_sub_vectors) floats
 * (one query at a time); batch: num_sub_vectors * num_centroids * 32 + 32 * dim + 32 * 1024
 * + 16 floats (NQ_BATCH or more queries). */
void pq_search(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
               const float *queries, int nq, const uint8_t *codes, int n, int k,
               uint32_t *out_ids, float *out_dists, float *tables, const float *cbt,
               float *batch, int isa)
{
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2
    if (isa >= HARNESS_ISA_AVX2 && nq >= NQ_BATCH) {
        float *t16 = (float *)(((uintptr_t)batch + 63) & ~(uintptr_t)63);   /* whole lines */
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512
        if (isa >= HARNESS_ISA_AVX512) {
            search_avx512(codebook, dim, num_sub_vectors, num_centroids, queries, nq, codes, n, k,
                          out_ids, out_dists, t16);
            return;
        }
#endif
        search_avx2(codebook, dim, num_sub_vectors, num_centroids, queries, nq, codes, n, k,
                    out_ids, out_dists, t16);
        return;
    }
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512
    if (isa >= HARNESS_ISA_AVX512 && num_sub_vectors % 16 == 0) {
        for (int q = 0; q < nq; q++)
            search_one_512(cbt, dim, num_sub_vectors, num_centroids, queries + (long)q * dim,
                           codes, n, k, out_ids + (long)q * k, out_dists + (long)q * k, tables);
        return;
    }
#endif
    if (isa >= HARNESS_ISA_AVX2) {
        for (int q = 0; q < nq; q++)
            search_one(cbt, dim, num_sub_vectors, num_centroids, queries + (long)q * dim, codes,
                       n, k, out_ids + (long)q * k, out_dists + (long)q * k, tables);
        return;
    }
#endif
    pq_distance_tables(codebook, dim, num_sub_vectors, num_centroids, queries, nq, tables, isa);
    for (int q = 0; q < nq; q++)
        scan_portable(tables + (long)q * num_sub_vectors * num_centroids, num_sub_vectors,
                      num_centroids, codes, n, k, out_ids + (long)q * k, out_dists + (long)q * k);
}
