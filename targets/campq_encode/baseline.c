/* ==========================================================================
 * IMMUTABLE: the scalar yardstick for campq_encode ("speedup vs scalar").
 * A plain C port of reference.py, compiled without vectorization.
 * ========================================================================== */
#include <stdint.h>

void campq_encode(const float *codebook, int dim, int num_subspaces, int num_centroids,
                  const float *rows, int n, uint8_t *out)
{
    for (int i = 0; i < n; i++) {
        const float *x = rows + (long)i * dim;
        for (int s = 0; s < num_subspaces; s++) {
            int lo = s * dim / num_subspaces, hi = (s + 1) * dim / num_subspaces;
            float best = 0.0f;
            int best_k = 0;
            for (int k = 0; k < num_centroids; k++) {
                const float *c = codebook + (long)k * dim;
                float d = 0.0f;
                for (int j = lo; j < hi; j++) {
                    float t = x[j] - c[j];
                    d += t * t;
                }
                if (k == 0 || d < best) {      /* strict: the lowest index wins ties */
                    best = d;
                    best_k = k;
                }
            }
            out[(long)i * num_subspaces + s] = (uint8_t)best_k;
        }
    }
}
