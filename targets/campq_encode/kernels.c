/* campq_encode kernel (agent-editable): nearest centroid per subspace.
 *
 * The constructor transposes each subspace's centroids to [column][K] and
 * precomputes |c|^2, so encoding a row is argmin_k |c_k|^2 - 2 x.c_k with
 * the inner loop running across a block of centroids (independent sums, so
 * the compiler vectorizes it without reassociating, and keeps them in
 * registers across the columns). Entry points take the ISA
 * level the harness allows; faster paths go in HARNESS_TARGET_* functions.
 */
#include <stdint.h>
#include <string.h>

#include "harness_isa.h"

/* cbt[j][k] = codebook[k][j]; norms[s][k] = |centroid k of subspace s|^2 */
void campq_prepare(const float *codebook, int dim, int num_subspaces, int num_centroids,
                   float *cbt, float *norms)
{
    for (int k = 0; k < num_centroids; k++)
        for (int j = 0; j < dim; j++)
            cbt[(long)j * num_centroids + k] = codebook[(long)k * dim + j];
    for (int s = 0; s < num_subspaces; s++) {
        int lo = s * dim / num_subspaces, hi = (s + 1) * dim / num_subspaces;
        for (int k = 0; k < num_centroids; k++) {
            float t = 0.0f;
            for (int j = lo; j < hi; j++) {
                float c = codebook[(long)k * dim + j];
                t += c * c;
            }
            norms[(long)s * num_centroids + k] = t;
        }
    }
}

/* Four-float vectors in GCC's portable vector extension (SSE2 on any x86-64):
 * 8 of them hold the sums of a block of 32 centroids in registers. */
typedef float v4f __attribute__((vector_size(16), aligned(4)));
#define KB 32

static void dot_block(const float *x, const float *cbt, int stride, int lo, int hi,
                       int k0, float *acc)
{
    v4f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    for (int j = lo; j < hi; j++) {
        const v4f *c = (const v4f *)(cbt + (long)j * stride + k0);
        v4f xj = {x[j], x[j], x[j], x[j]};
        a0 += xj * c[0]; a1 += xj * c[1]; a2 += xj * c[2]; a3 += xj * c[3];
        a4 += xj * c[4]; a5 += xj * c[5]; a6 += xj * c[6]; a7 += xj * c[7];
    }
    v4f *out = (v4f *)acc;
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
    out[4] = a4; out[5] = a5; out[6] = a6; out[7] = a7;
}

#define RB 16   /* rows per block: each codebook block is read once per 16 rows */

static void encode_portable(const float *cbt, const float *norms, int dim, int num_subspaces,
                            int num_centroids, const float *rows, int n, uint8_t *out)
{
    float dist[RB][256];              /* 16 KB: stays in L1 with the current rows */
    for (int i0 = 0; i0 < n; i0 += RB) {
        int rn = n - i0 < RB ? n - i0 : RB;
        for (int s = 0; s < num_subspaces; s++) {
            int lo = s * dim / num_subspaces, hi = (s + 1) * dim / num_subspaces;
            const float *nrm = norms + (long)s * num_centroids;
            for (int k0 = 0; k0 < num_centroids; k0 += KB) {
                int kn = num_centroids - k0 < KB ? num_centroids - k0 : KB;
                for (int r = 0; r < rn; r++) {
                    const float *x = rows + (long)(i0 + r) * dim;
                    float *acc = dist[r] + k0;
                    if (kn == KB) {
                        dot_block(x, cbt, num_centroids, lo, hi, k0, acc);
                    } else {
                        for (int k = 0; k < kn; k++) {
                            acc[k] = 0.0f;
                            for (int j = lo; j < hi; j++)
                                acc[k] += x[j] * cbt[(long)j * num_centroids + k0 + k];
                        }
                    }
                }
            }
            for (int r = 0; r < rn; r++) {
                int best_k = 0;
                float best = nrm[0] - 2.0f * dist[r][0];
                for (int k = 1; k < num_centroids; k++) {
                    float d = nrm[k] - 2.0f * dist[r][k];
                    if (d < best) {                 /* strict: lowest index wins ties */
                        best = d;
                        best_k = k;
                    }
                }
                out[(long)(i0 + r) * num_subspaces + s] = (uint8_t)best_k;
            }
        }
    }
}

/* ------------------------------------------------------------ dispatch */

void campq_encode(const float *cbt, const float *norms, int dim, int num_subspaces,
                  int num_centroids, const float *rows, int n, uint8_t *out, int isa)
{
    (void)isa;   /* every level uses the portable path for now */
    encode_portable(cbt, norms, dim, num_subspaces, num_centroids, rows, n, out);
}
