/* pq_l2 kernel (agent-editable): distance tables and top-k ADC search.
 *
 * Entry points take the ISA level the harness allows (enum harness_isa);
 * faster paths go in functions marked HARNESS_TARGET_AVX2 / _AVX512 / _AMX
 * and are chosen in the dispatch functions at the bottom, all inside
 * #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_* (see harness_isa.h). Every level
 * must give results within the harness tolerance; see program.md.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

static void topk_init(float *dists, uint32_t *ids, int k)
{
    for (int i = 0; i < k; i++) {
        dists[i] = INFINITY;
        ids[i] = UINT32_MAX;
    }
}

static void scan_portable(const float *table, int num_sub_vectors, int num_centroids,
                          const uint8_t *codes, int n, int k, uint32_t *ids, float *dists)
{
    topk_init(dists, ids, k);
    for (int j = 0; j < n; j++) {
        const uint8_t *code = codes + (long)j * num_sub_vectors;
        float s = 0.0f;
        for (int m = 0; m < num_sub_vectors; m++)
            s += table[m * num_centroids + code[m]];
        topk_insert(dists, ids, k, s, (uint32_t)j);
    }
}

/* ------------------------------------------------------------ AVX2 */

#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2

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
        topk_init(dists + (long)l * k, ids + (long)l * k, k);
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

/* ------------------------------------------------------------ dispatch */

void pq_distance_tables(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
                        const float *queries, int nq, float *out, int isa)
{
    (void)isa;
    tables_portable(codebook, dim, num_sub_vectors, num_centroids, queries, nq, out);
}

/* tables: scratch of num_sub_vectors * num_centroids * max(nq, 32) + 32 * dim + 32 * 1024 + 16 floats */
void pq_search(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
               const float *queries, int nq, const uint8_t *codes, int n, int k,
               uint32_t *out_ids, float *out_dists, float *tables, int isa)
{
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2
    if (isa >= HARNESS_ISA_AVX2) {
        float *t16 = (float *)(((uintptr_t)tables + 63) & ~(uintptr_t)63);   /* whole lines */
        search_avx2(codebook, dim, num_sub_vectors, num_centroids, queries, nq, codes, n, k,
                    out_ids, out_dists, t16);
        return;
    }
#endif
    pq_distance_tables(codebook, dim, num_sub_vectors, num_centroids, queries, nq, tables, isa);
    for (int q = 0; q < nq; q++)
        scan_portable(tables + (long)q * num_sub_vectors * num_centroids, num_sub_vectors,
                      num_centroids, codes, n, k, out_ids + (long)q * k, out_dists + (long)q * k);
}
