/* Test fixture, spliced into the frozen plain pq_l2 kernel (plain/) before its
 * dispatch (tests/test_emulation_paths.py): an AVX-512 path for distance_tables.
 * With FIXTURE_BUG 1 the masked tail load drops the last dimension of each
 * sub-vector: a bug only this path has, which only an avx512 run can see. */
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512

HARNESS_TARGET_AVX512 static void tables_avx512(const float *codebook, int dim, int msub,
                                                int kc, const float *queries, int nq, float *out)
{
    int dsub = dim / msub;
    for (int q = 0; q < nq; q++)
        for (int m = 0; m < msub; m++) {
            const float *x = queries + (long)q * dim + (long)m * dsub;
            float *row = out + ((long)q * msub + m) * kc;
            for (int c = 0; c < kc; c++) {
                const float *y = codebook + ((long)m * kc + c) * dsub;
                __m512 acc = _mm512_setzero_ps();
                for (int d = 0; d < dsub; d += 16) {
                    int rem = dsub - d < 16 ? dsub - d : 16;
                    if (FIXTURE_BUG && d + 16 >= dsub)
                        rem -= 1;
                    __mmask16 k = (__mmask16)((1u << rem) - 1);
                    __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + d),
                                             _mm512_maskz_loadu_ps(k, y + d));
                    acc = _mm512_fmadd_ps(t, t, acc);
                }
                row[c] = _mm512_reduce_add_ps(acc);
            }
        }
}

#define FIXTURE_TABLES_LEVEL HARNESS_ISA_LEVEL_AVX512
#define FIXTURE_TABLES_ISA HARNESS_ISA_AVX512
#define FIXTURE_TABLES tables_avx512
#endif
