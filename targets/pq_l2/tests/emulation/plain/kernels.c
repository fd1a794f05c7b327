/* A frozen copy of pq_l2's plain kernel for tests/test_emulation_paths.py: the
 * fixtures there splice one level's path into it. Not the target's kernel.
 *
 * pq_l2 kernel: distance tables and top-k ADC search.
 *
 * Entry points take the ISA level the harness allows (enum harness_isa);
 * faster paths go in functions marked HARNESS_TARGET_AVX2 / _AVX512 / _AMX
 * and are chosen in the dispatch functions at the bottom. Every level must
 * give results within the harness tolerance; see program.md.
 */
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

/* ------------------------------------------------------------ dispatch */

void pq_distance_tables(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
                        const float *queries, int nq, float *out, int isa)
{
    (void)isa;
    tables_portable(codebook, dim, num_sub_vectors, num_centroids, queries, nq, out);
}

void pq_search(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
               const float *queries, int nq, const uint8_t *codes, int n, int k,
               uint32_t *out_ids, float *out_dists, float *tables, int isa)
{
    pq_distance_tables(codebook, dim, num_sub_vectors, num_centroids, queries, nq, tables, isa);
    for (int q = 0; q < nq; q++)
        scan_portable(tables + (long)q * num_sub_vectors * num_centroids, num_sub_vectors,
                      num_centroids, codes, n, k, out_ids + (long)q * k, out_dists + (long)q * k);
}
