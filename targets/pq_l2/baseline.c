/* ==========================================================================
 * IMMUTABLE: the scalar yardstick for pq_l2 ("speedup vs scalar").
 * A plain C port of reference.py, compiled without vectorization.
 * ========================================================================== */
#include <math.h>
#include <stdint.h>

/* out[q][m][c] = sum_d (queries[q][m*dsub+d] - codebook[m][c][d])^2 */
void pq_distance_tables(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
                        const float *queries, int nq, float *out)
{
    int dsub = dim / num_sub_vectors;
    for (int q = 0; q < nq; q++)
        for (int m = 0; m < num_sub_vectors; m++)
            for (int c = 0; c < num_centroids; c++) {
                const float *x = queries + (long)q * dim + (long)m * dsub;
                const float *y = codebook + ((long)m * num_centroids + c) * dsub;
                float s = 0.0f;
                for (int d = 0; d < dsub; d++) {
                    float t = x[d] - y[d];
                    s += t * t;
                }
                out[((long)q * num_sub_vectors + m) * num_centroids + c] = s;
            }
}

/* Insert (d, id) into the ascending list of the k best so far; equal
 * distances keep the earlier (lower) id first. */
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

void pq_search(const float *codebook, int dim, int num_sub_vectors, int num_centroids,
               const float *queries, int nq, const uint8_t *codes, int n, int k,
               uint32_t *out_ids, float *out_dists, float *tables)
{
    pq_distance_tables(codebook, dim, num_sub_vectors, num_centroids, queries, nq, tables);
    for (int q = 0; q < nq; q++) {
        const float *table = tables + (long)q * num_sub_vectors * num_centroids;
        float *dists = out_dists + (long)q * k;
        uint32_t *ids = out_ids + (long)q * k;
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
}
