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

/* ------------------------------------------------------------ dispatch */

void campq_encode(const float *packed, const float *norms, int dim, int num_subspaces,
                  int num_centroids, const float *rows, int n, uint8_t *out, int isa)
{
    (void)isa;   /* every level uses the portable path for now */
    encode_portable(packed, norms, dim, num_subspaces, num_centroids, rows, n, out);
}
