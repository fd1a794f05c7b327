/* Peak vector throughput of this CPU, for roofline estimates (harness-owned).
 * Ten independent accumulators hide the FMA/add latency; the loop returns a
 * value so the compiler cannot drop it. Returns the lanes processed. */
#include <immintrin.h>

#include "harness_isa.h"

#if HARNESS_X86
HARNESS_TARGET_AVX2 static double fma_avx2(long iters)
{
    __m256 a[10], b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-9f);
    for (int i = 0; i < 10; i++) a[i] = _mm256_set1_ps(1.0f + i);
    for (long n = 0; n < iters; n++)
        for (int i = 0; i < 10; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
    float out[8];
    __m256 s = a[0];
    for (int i = 1; i < 10; i++) s = _mm256_add_ps(s, a[i]);
    _mm256_storeu_ps(out, s);
    return out[0];
}

HARNESS_TARGET_AVX512 static double fma_avx512(long iters)
{
    __m512 a[10], b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-9f);
    for (int i = 0; i < 10; i++) a[i] = _mm512_set1_ps(1.0f + i);
    for (long n = 0; n < iters; n++)
        for (int i = 0; i < 10; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    __m512 s = a[0];
    for (int i = 1; i < 10; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}
#endif

static double fma_scalar(long iters)
{
    float a[10], b = 0.999999f, c = 1e-9f, s = 0.0f;
    for (int i = 0; i < 10; i++) a[i] = 1.0f + i;
    for (long n = 0; n < iters; n++)
        for (int i = 0; i < 10; i++) a[i] = a[i] * b + c;
    for (int i = 0; i < 10; i++) s += a[i];
    return s;
}

/* Multiply-add lanes run at `isa` level (0 scalar, 1 avx2, 2+ avx512); *sink keeps the work live. */
long peak_fma_lanes(long iters, int isa, double *sink)
{
#if HARNESS_X86
    if (isa >= 2) { *sink = fma_avx512(iters); return iters * 10 * 16; }
    if (isa == 1) { *sink = fma_avx2(iters); return iters * 10 * 8; }
#endif
    *sink = fma_scalar(iters);
    return iters * 10;
}
