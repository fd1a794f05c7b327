/* AVX-512 intrinsics SIMDe 0.8 does not emulate, for emulated builds.
 *
 * Included by harness_isa.h after SIMDe's avx512.h, never by a kernel.
 * Each shim follows the instruction (or, for the sequences such as
 * _mm512_reduce_add_ps, GCC's own <immintrin.h> definition, so a float sum
 * rounds the same as in a native build). Plain loops over lanes: emulated
 * builds are checked for correctness, never timed.
 *
 * An intrinsic neither SIMDe nor this file provides stops an emulated build
 * with "inlining failed ... target specific option mismatch" naming it; the
 * harness adds a note pointing here. Adding one: a static inline function
 * harness_<name> plus `#define <name>(...) harness_<name>(...)`, each alias
 * under #ifndef so that a SIMDe release that adds the intrinsic wins.
 */
#ifndef HARNESS_SIMDE_SHIMS_H
#define HARNESS_SIMDE_SHIMS_H

#include <stdint.h>
#include <string.h>

#define HARNESS_SHIM_ static inline __attribute__((always_inline))

/* Lanes in and out of any vector type by value (memcpy: no aliasing rules). */
#define HARNESS_LANES_(type, n, v) type n[sizeof(v) / sizeof(type)]; memcpy(n, &(v), sizeof(v))
#define HARNESS_PACK_(vtype, lanes) __extension__ ({ vtype r_; memcpy(&r_, (lanes), sizeof r_); r_; })

#if !defined(SIMDE_X86_AVX512F_NATIVE)

/* ------------------------------------------------------------ reductions
 * GCC's order: high 256 + low 256, then high 128 + low 128, then lanes
 * {0,1} + {2,3}, then lane 0 + lane 1. */
#define HARNESS_REDUCE16_(T, name, OP) \
    HARNESS_SHIM_ T harness_##name(const T *v) { \
        T a[8], b[4], c[2]; \
        for (int i = 0; i < 8; i++) a[i] = OP(v[8 + i], v[i]); \
        for (int i = 0; i < 4; i++) b[i] = OP(a[4 + i], a[i]); \
        for (int i = 0; i < 2; i++) c[i] = OP(b[i], b[2 + i]); \
        return OP(c[0], c[1]); }
#define HARNESS_REDUCE8_(T, name, OP) \
    HARNESS_SHIM_ T harness_##name(const T *v) { \
        T a[4], b[2]; \
        for (int i = 0; i < 4; i++) a[i] = OP(v[4 + i], v[i]); \
        for (int i = 0; i < 2; i++) b[i] = OP(a[2 + i], a[i]); \
        return OP(b[0], b[1]); }
#define HARNESS_ADD_(x, y) ((x) + (y))
#define HARNESS_MUL_(x, y) ((x) * (y))
#define HARNESS_AND_(x, y) ((x) & (y))
#define HARNESS_OR_(x, y) ((x) | (y))
#define HARNESS_WRAPADD_(x, y) ((int32_t)((uint32_t)(x) + (uint32_t)(y)))
#define HARNESS_WRAPADD64_(x, y) ((int64_t)((uint64_t)(x) + (uint64_t)(y)))

HARNESS_REDUCE16_(float, reduce16_add_ps, HARNESS_ADD_)
HARNESS_REDUCE16_(float, reduce16_mul_ps, HARNESS_MUL_)
HARNESS_REDUCE16_(int32_t, reduce16_add_epi32, HARNESS_WRAPADD_)
HARNESS_REDUCE16_(int32_t, reduce16_and_epi32, HARNESS_AND_)
HARNESS_REDUCE16_(int32_t, reduce16_or_epi32, HARNESS_OR_)
HARNESS_REDUCE8_(double, reduce8_add_pd, HARNESS_ADD_)
HARNESS_REDUCE8_(int64_t, reduce8_add_epi64, HARNESS_WRAPADD64_)

HARNESS_SHIM_ float harness_mm512_reduce_add_ps(__m512 a) { HARNESS_LANES_(float, v, a); return harness_reduce16_add_ps(v); }
HARNESS_SHIM_ float harness_mm512_reduce_mul_ps(__m512 a) { HARNESS_LANES_(float, v, a); return harness_reduce16_mul_ps(v); }
HARNESS_SHIM_ int harness_mm512_reduce_add_epi32(__m512i a) { HARNESS_LANES_(int32_t, v, a); return harness_reduce16_add_epi32(v); }
HARNESS_SHIM_ int harness_mm512_reduce_and_epi32(__m512i a) { HARNESS_LANES_(int32_t, v, a); return harness_reduce16_and_epi32(v); }
HARNESS_SHIM_ int harness_mm512_reduce_or_epi32(__m512i a) { HARNESS_LANES_(int32_t, v, a); return harness_reduce16_or_epi32(v); }
HARNESS_SHIM_ double harness_mm512_reduce_add_pd(__m512d a) { HARNESS_LANES_(double, v, a); return harness_reduce8_add_pd(v); }
HARNESS_SHIM_ long long harness_mm512_reduce_add_epi64(__m512i a) { HARNESS_LANES_(int64_t, v, a); return harness_reduce8_add_epi64(v); }

/* Masked: inactive lanes take the operation's identity, as in GCC. */
#define HARNESS_MASKED_REDUCE16_(ret, vt, T, name, reduce, identity) \
    HARNESS_SHIM_ ret harness_##name(__mmask16 k, vt a) { \
        HARNESS_LANES_(T, v, a); \
        for (int i = 0; i < 16; i++) if (!((k >> i) & 1)) v[i] = (identity); \
        return harness_##reduce(v); }
HARNESS_MASKED_REDUCE16_(float, __m512, float, mm512_mask_reduce_add_ps, reduce16_add_ps, 0.0f)
HARNESS_MASKED_REDUCE16_(int, __m512i, int32_t, mm512_mask_reduce_add_epi32, reduce16_add_epi32, 0)

#ifndef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps(a) harness_mm512_reduce_add_ps(a)
#endif
#ifndef _mm512_reduce_mul_ps
#define _mm512_reduce_mul_ps(a) harness_mm512_reduce_mul_ps(a)
#endif
#ifndef _mm512_reduce_add_epi32
#define _mm512_reduce_add_epi32(a) harness_mm512_reduce_add_epi32(a)
#endif
#ifndef _mm512_reduce_and_epi32
#define _mm512_reduce_and_epi32(a) harness_mm512_reduce_and_epi32(a)
#endif
#ifndef _mm512_reduce_or_epi32
#define _mm512_reduce_or_epi32(a) harness_mm512_reduce_or_epi32(a)
#endif
#ifndef _mm512_reduce_add_pd
#define _mm512_reduce_add_pd(a) harness_mm512_reduce_add_pd(a)
#endif
#ifndef _mm512_reduce_add_epi64
#define _mm512_reduce_add_epi64(a) harness_mm512_reduce_add_epi64(a)
#endif
#ifndef _mm512_mask_reduce_add_ps
#define _mm512_mask_reduce_add_ps(k, a) harness_mm512_mask_reduce_add_ps(k, a)
#endif
#ifndef _mm512_mask_reduce_add_epi32
#define _mm512_mask_reduce_add_epi32(k, a) harness_mm512_mask_reduce_add_epi32(k, a)
#endif

/* Integer min and max are exact in any order; masked, inactive lanes take the
 * identity (INT32_MAX for min, INT32_MIN for max), as in GCC. */
#define HARNESS_MIN_(x, y) ((x) < (y) ? (x) : (y))
#define HARNESS_MAX_(x, y) ((x) > (y) ? (x) : (y))
HARNESS_REDUCE16_(int32_t, reduce16_min_epi32, HARNESS_MIN_)
HARNESS_REDUCE16_(int32_t, reduce16_max_epi32, HARNESS_MAX_)
HARNESS_SHIM_ int harness_mm512_reduce_min_epi32(__m512i a) { HARNESS_LANES_(int32_t, v, a); return harness_reduce16_min_epi32(v); }
HARNESS_SHIM_ int harness_mm512_reduce_max_epi32(__m512i a) { HARNESS_LANES_(int32_t, v, a); return harness_reduce16_max_epi32(v); }
HARNESS_MASKED_REDUCE16_(int, __m512i, int32_t, mm512_mask_reduce_min_epi32, reduce16_min_epi32, INT32_MAX)
HARNESS_MASKED_REDUCE16_(int, __m512i, int32_t, mm512_mask_reduce_max_epi32, reduce16_max_epi32, INT32_MIN)
#ifndef _mm512_reduce_min_epi32
#define _mm512_reduce_min_epi32(a) harness_mm512_reduce_min_epi32(a)
#endif
#ifndef _mm512_reduce_max_epi32
#define _mm512_reduce_max_epi32(a) harness_mm512_reduce_max_epi32(a)
#endif
#ifndef _mm512_mask_reduce_min_epi32
#define _mm512_mask_reduce_min_epi32(k, a) harness_mm512_mask_reduce_min_epi32(k, a)
#endif
#ifndef _mm512_mask_reduce_max_epi32
#define _mm512_mask_reduce_max_epi32(k, a) harness_mm512_mask_reduce_max_epi32(k, a)
#endif

/* ------------------------------------------------------------ conversions */

#define HARNESS_CVT_(name, in_t, from, out_vt, to, n) \
    HARNESS_SHIM_ out_vt harness_##name(in_t a) { \
        HARNESS_LANES_(from, v, a); to r[n]; \
        for (int i = 0; i < (n); i++) r[i] = (to)v[i]; \
        return HARNESS_PACK_(out_vt, r); }
/* Widening: the low lanes of a narrower vector. */
HARNESS_CVT_(mm512_cvtepu8_epi32, __m128i, uint8_t, __m512i, int32_t, 16)
HARNESS_CVT_(mm512_cvtepi8_epi32, __m128i, int8_t, __m512i, int32_t, 16)
HARNESS_CVT_(mm512_cvtepu8_epi16, __m256i, uint8_t, __m512i, int16_t, 32)
HARNESS_CVT_(mm512_cvtepi32_epi64, __m256i, int32_t, __m512i, int64_t, 8)
HARNESS_CVT_(mm512_cvtepu32_epi64, __m256i, uint32_t, __m512i, int64_t, 8)
HARNESS_CVT_(mm512_cvtps_pd, __m256, float, __m512d, double, 8)
HARNESS_CVT_(mm512_cvtepi32_pd, __m256i, int32_t, __m512d, double, 8)
/* Narrowing by truncation (vpmovdb, vpmovdw) and double -> float (current rounding). */
HARNESS_CVT_(mm512_cvtepi32_epi8, __m512i, int32_t, __m128i, int8_t, 16)
HARNESS_CVT_(mm512_cvtepi32_epi16, __m512i, int32_t, __m256i, int16_t, 16)
HARNESS_CVT_(mm512_cvtpd_ps, __m512d, double, __m256, float, 8)

#ifndef _mm512_cvtepu8_epi32
#define _mm512_cvtepu8_epi32(a) harness_mm512_cvtepu8_epi32(a)
#endif
#ifndef _mm512_cvtepi8_epi32
#define _mm512_cvtepi8_epi32(a) harness_mm512_cvtepi8_epi32(a)
#endif
#ifndef _mm512_cvtepu8_epi16
#define _mm512_cvtepu8_epi16(a) harness_mm512_cvtepu8_epi16(a)
#endif
#ifndef _mm512_cvtepi32_epi64
#define _mm512_cvtepi32_epi64(a) harness_mm512_cvtepi32_epi64(a)
#endif
#ifndef _mm512_cvtepu32_epi64
#define _mm512_cvtepu32_epi64(a) harness_mm512_cvtepu32_epi64(a)
#endif
#ifndef _mm512_cvtps_pd
#define _mm512_cvtps_pd(a) harness_mm512_cvtps_pd(a)
#endif
#ifndef _mm512_cvtepi32_pd
#define _mm512_cvtepi32_pd(a) harness_mm512_cvtepi32_pd(a)
#endif
#ifndef _mm512_cvtepi32_epi8
#define _mm512_cvtepi32_epi8(a) harness_mm512_cvtepi32_epi8(a)
#endif
#ifndef _mm512_cvtepi32_epi16
#define _mm512_cvtepi32_epi16(a) harness_mm512_cvtepi32_epi16(a)
#endif
#ifndef _mm512_cvtpd_ps
#define _mm512_cvtpd_ps(a) harness_mm512_cvtpd_ps(a)
#endif

HARNESS_SHIM_ float harness_mm512_cvtss_f32(__m512 a) { HARNESS_LANES_(float, v, a); return v[0]; }
HARNESS_SHIM_ int harness_mm512_cvtsi512_si32(__m512i a) { HARNESS_LANES_(int32_t, v, a); return v[0]; }
#ifndef _mm512_cvtss_f32
#define _mm512_cvtss_f32(a) harness_mm512_cvtss_f32(a)
#endif
#ifndef _mm512_cvtsi512_si32
#define _mm512_cvtsi512_si32(a) harness_mm512_cvtsi512_si32(a)
#endif

/* ------------------------------------------------------------ gather, masks, misc */

HARNESS_SHIM_ __m512i harness_mm512_i32gather_epi32(__m512i idx, const void *base, int scale)
{
    HARNESS_LANES_(int32_t, ix, idx);
    int32_t r[16];
    for (int i = 0; i < 16; i++)
        memcpy(&r[i], (const char *)base + (long)ix[i] * scale, 4);
    return HARNESS_PACK_(__m512i, r);
}
#ifndef _mm512_i32gather_epi32
#define _mm512_i32gather_epi32(idx, base, scale) harness_mm512_i32gather_epi32(idx, base, scale)
#endif

#ifndef _mm512_kor
#define _mm512_kor(a, b) ((__mmask16)((a) | (b)))
#endif
#ifndef _mm512_kandn
#define _mm512_kandn(a, b) ((__mmask16)(~(a) & (b)))
#endif
#ifndef _mm512_kxnor
#define _mm512_kxnor(a, b) ((__mmask16)~((a) ^ (b)))
#endif
#ifndef _mm512_kmov
#define _mm512_kmov(a) ((__mmask16)(a))
#endif
#ifndef _mm512_kortestz
#define _mm512_kortestz(a, b) ((int)((__mmask16)((a) | (b)) == 0))
#endif
#ifndef _mm512_kortestc
#define _mm512_kortestc(a, b) ((int)((__mmask16)((a) | (b)) == 0xFFFF))
#endif
#ifndef _mm512_kunpackb
#define _mm512_kunpackb(a, b) ((__mmask16)((((a) & 0xFF) << 8) | ((b) & 0xFF)))
#endif
#ifndef _mm512_kunpackw
#define _mm512_kunpackw(a, b) ((__mmask32)((((a) & 0xFFFFu) << 16) | ((b) & 0xFFFFu)))
#endif
#ifndef _mm512_kunpackd
#define _mm512_kunpackd(a, b) ((__mmask64)((((a) & 0xFFFFFFFFull) << 32) | ((b) & 0xFFFFFFFFull)))
#endif

#ifndef _mm512_setzero
#define _mm512_setzero() _mm512_setzero_ps()
#endif
#ifndef _mm512_undefined_ps
#define _mm512_undefined_ps() _mm512_setzero_ps()
#endif
#ifndef _mm512_undefined_pd
#define _mm512_undefined_pd() _mm512_setzero_pd()
#endif
#ifndef _mm512_undefined_epi32
#define _mm512_undefined_epi32() _mm512_setzero_si512()
#endif
#ifndef _mm512_zextsi256_si512
#define _mm512_zextsi256_si512(a) _mm512_inserti64x4(_mm512_setzero_si512(), (a), 0)
#endif
#ifndef _mm512_zextps256_ps512
#define _mm512_zextps256_ps512(a) _mm512_insertf32x8(_mm512_setzero_ps(), (a), 0)
#endif
/* Non-temporal hints change no result. */
#ifndef _mm512_stream_ps
#define _mm512_stream_ps(p, a) _mm512_store_ps((p), (a))
#endif
#ifndef _mm512_stream_si512
#define _mm512_stream_si512(p, a) _mm512_store_si512((p), (a))
#endif
#ifndef _mm512_stream_load_si512
#define _mm512_stream_load_si512(p) _mm512_load_si512(p)
#endif

/* Masked compare: the lanes of k that compare true (vcmpps with a writemask). */
#ifndef _mm512_mask_cmp_ps_mask
#define _mm512_mask_cmp_ps_mask(k, a, b, imm) ((__mmask16)((k) & _mm512_cmp_ps_mask((a), (b), (imm))))
#endif

#endif /* !SIMDE_X86_AVX512F_NATIVE */

#if !defined(SIMDE_X86_AVX512VL_NATIVE)
/* AVX-512VL's typed unaligned loads and stores: the same bytes as loadu_si256. */
#ifndef _mm256_loadu_epi8
#define _mm256_loadu_epi8(p) _mm256_loadu_si256((const __m256i *)(p))
#endif
#ifndef _mm256_loadu_epi16
#define _mm256_loadu_epi16(p) _mm256_loadu_si256((const __m256i *)(p))
#endif
#ifndef _mm256_loadu_epi32
#define _mm256_loadu_epi32(p) _mm256_loadu_si256((const __m256i *)(p))
#endif
#ifndef _mm256_loadu_epi64
#define _mm256_loadu_epi64(p) _mm256_loadu_si256((const __m256i *)(p))
#endif
#ifndef _mm256_storeu_epi32
#define _mm256_storeu_epi32(p, a) _mm256_storeu_si256((__m256i *)(p), (a))
#endif
#ifndef _mm256_storeu_epi64
#define _mm256_storeu_epi64(p, a) _mm256_storeu_si256((__m256i *)(p), (a))
#endif
#ifndef _mm_loadu_epi8
#define _mm_loadu_epi8(p) _mm_loadu_si128((const __m128i *)(p))
#endif
#ifndef _mm_loadu_epi32
#define _mm_loadu_epi32(p) _mm_loadu_si128((const __m128i *)(p))
#endif
#ifndef _mm_storeu_epi8
#define _mm_storeu_epi8(p, a) _mm_storeu_si128((__m128i *)(p), (a))
#endif
#ifndef _mm_storeu_epi32
#define _mm_storeu_epi32(p, a) _mm_storeu_si128((__m128i *)(p), (a))
#endif
#ifndef _mm256_or_epi32
#define _mm256_or_epi32(a, b) _mm256_or_si256((a), (b))
#endif

#ifndef _mm256_xor_epi32
#define _mm256_xor_epi32(a, b) _mm256_xor_si256((a), (b))
#endif

/* AVX-512VL+BW masked byte store: only the bytes of set mask bits are written
 * (the others are not touched, as the instruction's fault suppression allows
 * a mask that stops at the end of a buffer). */
HARNESS_SHIM_ void harness_mm_mask_storeu_epi8(void *p, __mmask16 k, __m128i a)
{
    HARNESS_LANES_(uint8_t, v, a);
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1) ((uint8_t *)p)[i] = v[i];
}
#ifndef _mm_mask_storeu_epi8
#define _mm_mask_storeu_epi8(p, k, a) harness_mm_mask_storeu_epi8((p), (k), (a))
#endif
#endif

#if !defined(SIMDE_X86_AVX512BF16_NATIVE)
/* ------------------------------------------------------------ bf16 (AVX512_BF16)
 * fp32 -> bf16 as the SDM's convert_fp32_to_bfloat16: round to nearest even,
 * denormals to signed zero, NaN kept quiet; MXCSR ignored. */
HARNESS_SHIM_ uint16_t harness_bf16_from_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0)
        return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    if ((u & 0x7fffffffu) == 0x7f800000u)
        return (uint16_t)(u >> 16);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

HARNESS_SHIM_ __m512bh harness_mm512_cvtne2ps_pbh(__m512 a, __m512 b)
{
    HARNESS_LANES_(float, va, a);
    HARNESS_LANES_(float, vb, b);
    uint16_t r[32];
    for (int i = 0; i < 16; i++) {          /* b fills the low half, a the high */
        r[i] = harness_bf16_from_f32(vb[i]);
        r[16 + i] = harness_bf16_from_f32(va[i]);
    }
    return HARNESS_PACK_(__m512bh, r);
}

HARNESS_SHIM_ __m256bh harness_mm512_cvtneps_pbh(__m512 a)
{
    HARNESS_LANES_(float, v, a);
    uint16_t r[16];
    for (int i = 0; i < 16; i++) r[i] = harness_bf16_from_f32(v[i]);
    return HARNESS_PACK_(__m256bh, r);
}

HARNESS_SHIM_ __m512 harness_mm512_cvtpbh_ps(__m256bh a)
{
    HARNESS_LANES_(uint16_t, v, a);
    uint32_t r[16];
    for (int i = 0; i < 16; i++) r[i] = (uint32_t)v[i] << 16;
    return HARNESS_PACK_(__m512, r);
}

#ifndef _mm512_cvtne2ps_pbh
#define _mm512_cvtne2ps_pbh(a, b) harness_mm512_cvtne2ps_pbh(a, b)
#endif
#ifndef _mm512_cvtneps_pbh
#define _mm512_cvtneps_pbh(a) harness_mm512_cvtneps_pbh(a)
#endif
#ifndef _mm512_cvtpbh_ps
#define _mm512_cvtpbh_ps(a) harness_mm512_cvtpbh_ps(a)
#endif
#endif /* !SIMDE_X86_AVX512BF16_NATIVE */

#endif
