/* posting_intersect kernel (agent-editable): the sorted intersection of K lists.
 *
 * The lists are ordered by length (indices, no copies) and folded from the
 * two shortest, so every partial result is as small as it can be. The merge
 * is branchless: on random lists a comparison branch mispredicts about half
 * the time.
 *
 * When one side is GALLOP_RATIO times longer or more, the values of the
 * short side are searched in the long side by branchless binary searches,
 * SEARCH_BATCH of them in lockstep: their cache misses overlap instead of
 * forming one chain (the long lists are not in cache when a call starts).
 *
 * For similar lengths, an AVX2 block merge: 8 values of each side, all
 * pairs compared (the b block and its 7 rotations), the a block's matches
 * compacted with a 256-entry permutation table, the block with the smaller
 * last value advanced; scalar merge for the tails.
 *
 * With AVX-512, the same block merge 16 x 16 (vpermd rotations, compares
 * into a mask), compacted by vpcompressd into a register and a plain store
 * bounded as in the AVX2 merge (the memory form of vpcompressd is microcoded
 * on Zen 4, and SIMDe emulates masked stores as full ones).
 *
 * Entry points take the ISA level the harness allows (enum harness_isa);
 * faster paths go in functions marked HARNESS_TARGET_AVX2 / _AVX512 / _AMX,
 * inside #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_*, and are chosen at the
 * entry point. Every level must give the reference's values, bit for bit.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "harness_isa.h"

#define MAX_SORTED_K 64

/* Branchless two-finger merge of sorted, duplicate-free a[na] and b[nb] into
 * out; returns the count. out may be a itself. Every iteration writes a[i]
 * to out[n] and keeps it only on a match: n <= i < na always holds at the
 * write, so the write stays inside out[0, na) (na <= the output's capacity)
 * and, in place, never overwrites a value not yet read. */
static long merge_scalar_at(const uint32_t *a, long na, const uint32_t *b, long nb, uint32_t *out,
                            long *jstop)
{
    long i = 0, j = 0, n = 0;
    while (i < na && j < nb) {
        uint32_t x = a[i], y = b[j];
        out[n] = x;
        n += (x == y);
        i += (x <= y);
        j += (y <= x);
    }
    *jstop = j;
    return n;
}

static long merge_scalar(const uint32_t *a, long na, const uint32_t *b, long nb, uint32_t *out)
{
    long j;
    return merge_scalar_at(a, na, b, nb, out, &j);
}

static const uint32_t compact_idx[256][8] __attribute__((aligned(32))) = {
    {0,0,0,0,0,0,0,0}, {0,0,0,0,0,0,0,0}, {1,0,0,0,0,0,0,0}, {0,1,0,0,0,0,0,0}, {2,0,0,0,0,0,0,0}, {0,2,0,0,0,0,0,0}, {1,2,0,0,0,0,0,0}, {0,1,2,0,0,0,0,0},
    {3,0,0,0,0,0,0,0}, {0,3,0,0,0,0,0,0}, {1,3,0,0,0,0,0,0}, {0,1,3,0,0,0,0,0}, {2,3,0,0,0,0,0,0}, {0,2,3,0,0,0,0,0}, {1,2,3,0,0,0,0,0}, {0,1,2,3,0,0,0,0},
    {4,0,0,0,0,0,0,0}, {0,4,0,0,0,0,0,0}, {1,4,0,0,0,0,0,0}, {0,1,4,0,0,0,0,0}, {2,4,0,0,0,0,0,0}, {0,2,4,0,0,0,0,0}, {1,2,4,0,0,0,0,0}, {0,1,2,4,0,0,0,0},
    {3,4,0,0,0,0,0,0}, {0,3,4,0,0,0,0,0}, {1,3,4,0,0,0,0,0}, {0,1,3,4,0,0,0,0}, {2,3,4,0,0,0,0,0}, {0,2,3,4,0,0,0,0}, {1,2,3,4,0,0,0,0}, {0,1,2,3,4,0,0,0},
    {5,0,0,0,0,0,0,0}, {0,5,0,0,0,0,0,0}, {1,5,0,0,0,0,0,0}, {0,1,5,0,0,0,0,0}, {2,5,0,0,0,0,0,0}, {0,2,5,0,0,0,0,0}, {1,2,5,0,0,0,0,0}, {0,1,2,5,0,0,0,0},
    {3,5,0,0,0,0,0,0}, {0,3,5,0,0,0,0,0}, {1,3,5,0,0,0,0,0}, {0,1,3,5,0,0,0,0}, {2,3,5,0,0,0,0,0}, {0,2,3,5,0,0,0,0}, {1,2,3,5,0,0,0,0}, {0,1,2,3,5,0,0,0},
    {4,5,0,0,0,0,0,0}, {0,4,5,0,0,0,0,0}, {1,4,5,0,0,0,0,0}, {0,1,4,5,0,0,0,0}, {2,4,5,0,0,0,0,0}, {0,2,4,5,0,0,0,0}, {1,2,4,5,0,0,0,0}, {0,1,2,4,5,0,0,0},
    {3,4,5,0,0,0,0,0}, {0,3,4,5,0,0,0,0}, {1,3,4,5,0,0,0,0}, {0,1,3,4,5,0,0,0}, {2,3,4,5,0,0,0,0}, {0,2,3,4,5,0,0,0}, {1,2,3,4,5,0,0,0}, {0,1,2,3,4,5,0,0},
    {6,0,0,0,0,0,0,0}, {0,6,0,0,0,0,0,0}, {1,6,0,0,0,0,0,0}, {0,1,6,0,0,0,0,0}, {2,6,0,0,0,0,0,0}, {0,2,6,0,0,0,0,0}, {1,2,6,0,0,0,0,0}, {0,1,2,6,0,0,0,0},
    {3,6,0,0,0,0,0,0}, {0,3,6,0,0,0,0,0}, {1,3,6,0,0,0,0,0}, {0,1,3,6,0,0,0,0}, {2,3,6,0,0,0,0,0}, {0,2,3,6,0,0,0,0}, {1,2,3,6,0,0,0,0}, {0,1,2,3,6,0,0,0},
    {4,6,0,0,0,0,0,0}, {0,4,6,0,0,0,0,0}, {1,4,6,0,0,0,0,0}, {0,1,4,6,0,0,0,0}, {2,4,6,0,0,0,0,0}, {0,2,4,6,0,0,0,0}, {1,2,4,6,0,0,0,0}, {0,1,2,4,6,0,0,0},
    {3,4,6,0,0,0,0,0}, {0,3,4,6,0,0,0,0}, {1,3,4,6,0,0,0,0}, {0,1,3,4,6,0,0,0}, {2,3,4,6,0,0,0,0}, {0,2,3,4,6,0,0,0}, {1,2,3,4,6,0,0,0}, {0,1,2,3,4,6,0,0},
    {5,6,0,0,0,0,0,0}, {0,5,6,0,0,0,0,0}, {1,5,6,0,0,0,0,0}, {0,1,5,6,0,0,0,0}, {2,5,6,0,0,0,0,0}, {0,2,5,6,0,0,0,0}, {1,2,5,6,0,0,0,0}, {0,1,2,5,6,0,0,0},
    {3,5,6,0,0,0,0,0}, {0,3,5,6,0,0,0,0}, {1,3,5,6,0,0,0,0}, {0,1,3,5,6,0,0,0}, {2,3,5,6,0,0,0,0}, {0,2,3,5,6,0,0,0}, {1,2,3,5,6,0,0,0}, {0,1,2,3,5,6,0,0},
    {4,5,6,0,0,0,0,0}, {0,4,5,6,0,0,0,0}, {1,4,5,6,0,0,0,0}, {0,1,4,5,6,0,0,0}, {2,4,5,6,0,0,0,0}, {0,2,4,5,6,0,0,0}, {1,2,4,5,6,0,0,0}, {0,1,2,4,5,6,0,0},
    {3,4,5,6,0,0,0,0}, {0,3,4,5,6,0,0,0}, {1,3,4,5,6,0,0,0}, {0,1,3,4,5,6,0,0}, {2,3,4,5,6,0,0,0}, {0,2,3,4,5,6,0,0}, {1,2,3,4,5,6,0,0}, {0,1,2,3,4,5,6,0},
    {7,0,0,0,0,0,0,0}, {0,7,0,0,0,0,0,0}, {1,7,0,0,0,0,0,0}, {0,1,7,0,0,0,0,0}, {2,7,0,0,0,0,0,0}, {0,2,7,0,0,0,0,0}, {1,2,7,0,0,0,0,0}, {0,1,2,7,0,0,0,0},
    {3,7,0,0,0,0,0,0}, {0,3,7,0,0,0,0,0}, {1,3,7,0,0,0,0,0}, {0,1,3,7,0,0,0,0}, {2,3,7,0,0,0,0,0}, {0,2,3,7,0,0,0,0}, {1,2,3,7,0,0,0,0}, {0,1,2,3,7,0,0,0},
    {4,7,0,0,0,0,0,0}, {0,4,7,0,0,0,0,0}, {1,4,7,0,0,0,0,0}, {0,1,4,7,0,0,0,0}, {2,4,7,0,0,0,0,0}, {0,2,4,7,0,0,0,0}, {1,2,4,7,0,0,0,0}, {0,1,2,4,7,0,0,0},
    {3,4,7,0,0,0,0,0}, {0,3,4,7,0,0,0,0}, {1,3,4,7,0,0,0,0}, {0,1,3,4,7,0,0,0}, {2,3,4,7,0,0,0,0}, {0,2,3,4,7,0,0,0}, {1,2,3,4,7,0,0,0}, {0,1,2,3,4,7,0,0},
    {5,7,0,0,0,0,0,0}, {0,5,7,0,0,0,0,0}, {1,5,7,0,0,0,0,0}, {0,1,5,7,0,0,0,0}, {2,5,7,0,0,0,0,0}, {0,2,5,7,0,0,0,0}, {1,2,5,7,0,0,0,0}, {0,1,2,5,7,0,0,0},
    {3,5,7,0,0,0,0,0}, {0,3,5,7,0,0,0,0}, {1,3,5,7,0,0,0,0}, {0,1,3,5,7,0,0,0}, {2,3,5,7,0,0,0,0}, {0,2,3,5,7,0,0,0}, {1,2,3,5,7,0,0,0}, {0,1,2,3,5,7,0,0},
    {4,5,7,0,0,0,0,0}, {0,4,5,7,0,0,0,0}, {1,4,5,7,0,0,0,0}, {0,1,4,5,7,0,0,0}, {2,4,5,7,0,0,0,0}, {0,2,4,5,7,0,0,0}, {1,2,4,5,7,0,0,0}, {0,1,2,4,5,7,0,0},
    {3,4,5,7,0,0,0,0}, {0,3,4,5,7,0,0,0}, {1,3,4,5,7,0,0,0}, {0,1,3,4,5,7,0,0}, {2,3,4,5,7,0,0,0}, {0,2,3,4,5,7,0,0}, {1,2,3,4,5,7,0,0}, {0,1,2,3,4,5,7,0},
    {6,7,0,0,0,0,0,0}, {0,6,7,0,0,0,0,0}, {1,6,7,0,0,0,0,0}, {0,1,6,7,0,0,0,0}, {2,6,7,0,0,0,0,0}, {0,2,6,7,0,0,0,0}, {1,2,6,7,0,0,0,0}, {0,1,2,6,7,0,0,0},
    {3,6,7,0,0,0,0,0}, {0,3,6,7,0,0,0,0}, {1,3,6,7,0,0,0,0}, {0,1,3,6,7,0,0,0}, {2,3,6,7,0,0,0,0}, {0,2,3,6,7,0,0,0}, {1,2,3,6,7,0,0,0}, {0,1,2,3,6,7,0,0},
    {4,6,7,0,0,0,0,0}, {0,4,6,7,0,0,0,0}, {1,4,6,7,0,0,0,0}, {0,1,4,6,7,0,0,0}, {2,4,6,7,0,0,0,0}, {0,2,4,6,7,0,0,0}, {1,2,4,6,7,0,0,0}, {0,1,2,4,6,7,0,0},
    {3,4,6,7,0,0,0,0}, {0,3,4,6,7,0,0,0}, {1,3,4,6,7,0,0,0}, {0,1,3,4,6,7,0,0}, {2,3,4,6,7,0,0,0}, {0,2,3,4,6,7,0,0}, {1,2,3,4,6,7,0,0}, {0,1,2,3,4,6,7,0},
    {5,6,7,0,0,0,0,0}, {0,5,6,7,0,0,0,0}, {1,5,6,7,0,0,0,0}, {0,1,5,6,7,0,0,0}, {2,5,6,7,0,0,0,0}, {0,2,5,6,7,0,0,0}, {1,2,5,6,7,0,0,0}, {0,1,2,5,6,7,0,0},
    {3,5,6,7,0,0,0,0}, {0,3,5,6,7,0,0,0}, {1,3,5,6,7,0,0,0}, {0,1,3,5,6,7,0,0}, {2,3,5,6,7,0,0,0}, {0,2,3,5,6,7,0,0}, {1,2,3,5,6,7,0,0}, {0,1,2,3,5,6,7,0},
    {4,5,6,7,0,0,0,0}, {0,4,5,6,7,0,0,0}, {1,4,5,6,7,0,0,0}, {0,1,4,5,6,7,0,0}, {2,4,5,6,7,0,0,0}, {0,2,4,5,6,7,0,0}, {1,2,4,5,6,7,0,0}, {0,1,2,4,5,6,7,0},
    {3,4,5,6,7,0,0,0}, {0,3,4,5,6,7,0,0}, {1,3,4,5,6,7,0,0}, {0,1,3,4,5,6,7,0}, {2,3,4,5,6,7,0,0}, {0,2,3,4,5,6,7,0}, {1,2,3,4,5,6,7,0}, {0,1,2,3,4,5,6,7}
};

#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2
/* Block merge of a[na] and b[nb] into out (out may be a). a is the side the
 * output is bounded by. The matches of the current a block (at i) are
 * accumulated in `acc` over the b blocks it meets and stored, compacted, at
 * out[n0, n0+8) with n0 <= i and i + 8 <= na: every 8-lane store stays inside
 * out[0, na). In place, such a store may clobber a[i, i+8) (the current a
 * block), which is why that block lives in a register (va) and is reloaded
 * only when a advances. */
HARNESS_TARGET_AVX2 static long merge_avx2(const uint32_t *a, long na, const uint32_t *b, long nb,
                                           uint32_t *out)
{
    long i = 0, j = 0, n = 0;
    if (na >= 8 && nb >= 8) {
        __m256i va = _mm256_loadu_si256((const __m256i *)a);
        __m256i vb = _mm256_loadu_si256((const __m256i *)b);
        uint32_t amax = a[7], bmax = b[7];
        unsigned acc = 0;
        long ai;
        for (;;) {
            __m256i r1 = _mm256_shuffle_epi32(vb, _MM_SHUFFLE(0, 3, 2, 1));
            __m256i r2 = _mm256_shuffle_epi32(vb, _MM_SHUFFLE(1, 0, 3, 2));
            __m256i r3 = _mm256_shuffle_epi32(vb, _MM_SHUFFLE(2, 1, 0, 3));
            __m256i vs = _mm256_permute2x128_si256(vb, vb, 1);
            __m256i s1 = _mm256_shuffle_epi32(vs, _MM_SHUFFLE(0, 3, 2, 1));
            __m256i s2 = _mm256_shuffle_epi32(vs, _MM_SHUFFLE(1, 0, 3, 2));
            __m256i s3 = _mm256_shuffle_epi32(vs, _MM_SHUFFLE(2, 1, 0, 3));
            __m256i c0 = _mm256_or_si256(_mm256_cmpeq_epi32(va, vb), _mm256_cmpeq_epi32(va, r1));
            __m256i c1 = _mm256_or_si256(_mm256_cmpeq_epi32(va, r2), _mm256_cmpeq_epi32(va, r3));
            __m256i c2 = _mm256_or_si256(_mm256_cmpeq_epi32(va, vs), _mm256_cmpeq_epi32(va, s1));
            __m256i c3 = _mm256_or_si256(_mm256_cmpeq_epi32(va, s2), _mm256_cmpeq_epi32(va, s3));
            __m256i c = _mm256_or_si256(_mm256_or_si256(c0, c1), _mm256_or_si256(c2, c3));
            acc |= (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(c));
            __m256i perm = _mm256_load_si256((const __m256i *)compact_idx[acc]);
            _mm256_storeu_si256((__m256i *)(out + n), _mm256_permutevar8x32_epi32(va, perm));
            long cnt = __builtin_popcount(acc);
            ai = (amax <= bmax) ? 8 : 0;
            long bj = (bmax <= amax) ? 8 : 0;
            i += ai;
            j += bj;
            n += ai ? cnt : 0;          /* n: where the current a block's matches start */
            acc = ai ? 0 : acc;
            if (i + 8 > na || j + 8 > nb)
                break;
            /* a[i, i+8) may be clobbered when a did not advance: keep va then */
            __m256i keep = _mm256_set1_epi32(ai ? 0 : -1);
            va = _mm256_blendv_epi8(_mm256_loadu_si256((const __m256i *)(a + i)), va, keep);
            amax = ai ? a[i + 7] : amax;
            vb = _mm256_loadu_si256((const __m256i *)(b + j));
            bmax = b[j + 7];
        }
        if (!ai) {
            /* the a block at i is only in va: finish it from a private copy (its
             * values matched so far are below b[j], so they do not match again) */
            uint32_t tmp[8] __attribute__((aligned(32)));
            long jt;
            n += __builtin_popcount(acc);
            _mm256_store_si256((__m256i *)tmp, va);
            n += merge_scalar_at(tmp, 8, b + j, nb - j, out + n, &jt);
            j += jt;
            i += 8;
            if (j >= nb)
                return n;
        }
    }
    return n + merge_scalar(a + i, na - i, b + j, nb - j, out + n);
}
#endif

#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512
/* merge_avx2 with 16-lane blocks: the matches of the current a block
 * accumulate in `acc` and are stored compacted at out[n, n+16), n <= i,
 * i + 16 <= na, so the store stays inside out[0, na); in place the a block
 * lives in va and is reloaded only when a advances. */
HARNESS_TARGET_AVX512 static long merge_avx512(const uint32_t *a, long na, const uint32_t *b, long nb,
                                               uint32_t *out)
{
    long i = 0, j = 0, n = 0;
    if (na >= 16 && nb >= 16) {
        __m512i va = _mm512_loadu_si512((const void *)a);
        __m512i vb = _mm512_loadu_si512((const void *)b);
        uint32_t amax = a[15], bmax = b[15];
        const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        const __m512i m15v = _mm512_set1_epi32(15);
        const __m512i rot1 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(1)), m15v);
        const __m512i rot2 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(2)), m15v);
        const __m512i rot3 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(3)), m15v);
        const __m512i rot4 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(4)), m15v);
        const __m512i rot5 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(5)), m15v);
        const __m512i rot6 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(6)), m15v);
        const __m512i rot7 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(7)), m15v);
        const __m512i rot8 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(8)), m15v);
        const __m512i rot9 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(9)), m15v);
        const __m512i rot10 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(10)), m15v);
        const __m512i rot11 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(11)), m15v);
        const __m512i rot12 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(12)), m15v);
        const __m512i rot13 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(13)), m15v);
        const __m512i rot14 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(14)), m15v);
        const __m512i rot15 = _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(15)), m15v);
        __mmask16 acc = 0;
        long ai;
        for (;;) {
            __mmask16 m0 = _mm512_cmpeq_epi32_mask(va, vb);
            __mmask16 m1 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot1, vb));
            __mmask16 m2 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot2, vb));
            __mmask16 m3 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot3, vb));
            __mmask16 m4 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot4, vb));
            __mmask16 m5 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot5, vb));
            __mmask16 m6 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot6, vb));
            __mmask16 m7 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot7, vb));
            __mmask16 m8 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot8, vb));
            __mmask16 m9 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot9, vb));
            __mmask16 m10 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot10, vb));
            __mmask16 m11 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot11, vb));
            __mmask16 m12 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot12, vb));
            __mmask16 m13 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot13, vb));
            __mmask16 m14 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot14, vb));
            __mmask16 m15 = _mm512_cmpeq_epi32_mask(va, _mm512_permutexvar_epi32(rot15, vb));
            acc |= (__mmask16)(((m0 | m1) | (m2 | m3)) | ((m4 | m5) | (m6 | m7)) |
                               ((m8 | m9) | (m10 | m11)) | ((m12 | m13) | (m14 | m15)));
            _mm512_storeu_si512((void *)(out + n), _mm512_maskz_compress_epi32(acc, va));
            long cnt = __builtin_popcount((unsigned)acc);
            ai = (amax <= bmax) ? 16 : 0;
            long bj = (bmax <= amax) ? 16 : 0;
            i += ai;
            j += bj;
            n += ai ? cnt : 0;
            acc = ai ? 0 : acc;
            if (i + 16 > na || j + 16 > nb)
                break;
            va = _mm512_mask_loadu_epi32(va, (__mmask16)(ai ? 0xFFFF : 0), (const void *)(a + i));
            amax = ai ? a[i + 15] : amax;
            vb = _mm512_loadu_si512((const void *)(b + j));
            bmax = b[j + 15];
        }
        if (!ai) {
            uint32_t tmp[16] __attribute__((aligned(64)));
            long jt;
            n += __builtin_popcount((unsigned)acc);
            _mm512_store_si512((void *)tmp, va);
            n += merge_scalar_at(tmp, 16, b + j, nb - j, out + n, &jt);
            j += jt;
            i += 16;
            if (j >= nb)
                return n;
        }
    }
    return n + merge_scalar(a + i, na - i, b + j, nb - j, out + n);
}
#endif

#ifndef GALLOP_RATIO
#define GALLOP_RATIO 32
#endif

#ifndef SEARCH_BATCH
#define SEARCH_BATCH 16
#endif

/* For each a[i], its lower bound in b[j0, nb) by a branchless binary search;
 * SEARCH_BATCH searches advance level by level together (independent loads).
 * Each batch searches from the previous batch's last lower bound. The write
 * out[n] (n <= i < na) stays inside out, and out may be a itself. */
static long search_batched(const uint32_t *a, long na, const uint32_t *b, long nb, uint32_t *out)
{
    long n = 0, j0 = 0;
    for (long g = 0; g < na; g += SEARCH_BATCH) {
        long cnt = na - g < SEARCH_BATCH ? na - g : SEARCH_BATCH;
        uint32_t x[SEARCH_BATCH];
        long lo[SEARCH_BATCH];
        for (long t = 0; t < cnt; t++) {
            x[t] = a[g + t];
            lo[t] = j0;
        }
        long len = nb - j0;
        while (len > 1) {
            long half = len >> 1;
            for (long t = 0; t < cnt; t++)
                lo[t] = (b[lo[t] + half] < x[t]) ? lo[t] + half : lo[t];
            len -= half;
        }
        /* b[lo] < x (then the answer is lo + 1) or lo == j0 with b[j0] >= x */
        long pos = j0;
        for (long t = 0; t < cnt; t++) {
            pos = lo[t] + (b[lo[t]] < x[t]);
            uint32_t y = b[pos < nb ? pos : nb - 1];
            out[n] = x[t];
            n += (pos < nb) & (y == x[t]);
        }
        if (pos >= nb)
            break;
        j0 = pos;
    }
    return n;
}

/* a is the shorter side (na <= nb, or the running result). */
static long intersect2(const uint32_t *a, long na, const uint32_t *b, long nb, uint32_t *out, int isa)
{
    if (nb == 0)
        return 0;
    if (nb / GALLOP_RATIO >= na)
        return search_batched(a, na, b, nb, out);
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512
    if (HARNESS_ISA_ALLOWS(isa, HARNESS_ISA_AVX512))
        return merge_avx512(a, na, b, nb, out);
#endif
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2
    if (HARNESS_ISA_ALLOWS(isa, HARNESS_ISA_AVX2))
        return merge_avx2(a, na, b, nb, out);
#endif
    (void)isa;
    return merge_scalar(a, na, b, nb, out);
}

long pi_intersect(const uint32_t *const *lists, const long *lens, int k, uint32_t *out, int isa)
{
    if (k <= 0)
        return 0;
    /* order[] = list indices by ascending length (insertion sort: K is small) */
    int order_small[MAX_SORTED_K];
    int *order = order_small;
    int kk = k;
    if (kk > MAX_SORTED_K) {
        /* very many lists: only the shortest matters for the start; fold the rest unsorted */
        kk = MAX_SORTED_K;
    }
    int s = 0;
    for (int i = 1; i < k; i++)
        if (lens[i] < lens[s])
            s = i;
    if (k > MAX_SORTED_K) {
        order[0] = s;
        int m = 1;
        for (int i = 0; i < k && m < MAX_SORTED_K; i++)
            if (i != s)
                order[m++] = i;
        (void)m;
    } else {
        for (int i = 0; i < k; i++) {
            int v = i, p = i;
            while (p > 0 && lens[order[p - 1]] > lens[v]) {
                order[p] = order[p - 1];
                p--;
            }
            order[p] = v;
        }
    }
    long n = lens[order[0]];
    if (n == 0)
        return 0;
    if (k == 1) {
        memcpy(out, lists[order[0]], (size_t)n * sizeof(uint32_t));
        return n;
    }
    n = intersect2(lists[order[0]], n, lists[order[1]], lens[order[1]], out, isa);
    for (int m = 2; m < kk && n > 0; m++)
        n = intersect2(out, n, lists[order[m]], lens[order[m]], out, isa);
    /* lists beyond the first MAX_SORTED_K, in their given order */
    if (k > MAX_SORTED_K) {
        for (int i = 0; i < k && n > 0; i++) {
            int seen = 0;
            for (int m = 0; m < kk; m++)
                seen |= (order[m] == i);
            if (!seen)
                n = intersect2(out, n, lists[i], lens[i], out, isa);
        }
    }
    return n;
}
