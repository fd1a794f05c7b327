/* AMX tile emulator: the tile intrinsics of <immintrin.h>, in plain C.
 *
 * Included by harness_isa.h, never by a kernel, when a module is built at
 * the amx level for a CPU without AMX (HARNESS_ISA_EMULATED). Kernels keep
 * writing the intrinsics (_tile_loadconfig, _tile_loadd, _tile_dpbusd, ...),
 * tile numbers as compile-time constants 0..7 as the instructions require;
 * here they act on eight 1 KiB tiles in memory, following the pseudo-code
 * of the Intel SDM:
 *
 *   - tile config: palette 1, 8 tiles of rows <= 16 and colsb <= 64 bytes;
 *     palette 0 (or _tile_release) returns to the unconfigured state;
 *   - loads zero the bytes past colsb and the rows past `rows`, stores write
 *     rows x colsb bytes with the given stride;
 *   - tdpb[su][su]d: per dword, four byte products (each byte signed or
 *     unsigned as named: the first letter is src1, the second src2) summed
 *     and added to the int32 accumulator with wrap-around, no saturation;
 *   - tdpbf16ps, as Sapphire Rapids computes it (measured bit for bit
 *     against the hardware; the SDM's pseudo-code, one running sum from C,
 *     disagrees with it in about half the elements of random tiles): two
 *     fp32 sums per output element, one over the even products (element 2k
 *     of each pair) and one over the odd ones, each over k in order from
 *     zero, every addition rounded to nearest even; then the two sums are
 *     added, then C; bf16 and fp32 input denormals read as zero and
 *     denormal results flushed to zero, regardless of MXCSR.
 *
 * What the hardware refuses (#UD/#GP: no config, a bad config, mismatched
 * shapes, the same tile twice) traps here too (__builtin_trap, SIGILL), so
 * the battery reports a crash where real AMX would fault. State is per
 * module and per process, like the tile registers of a single thread; the
 * harness forbids threads in kernels.
 */
#ifndef HARNESS_AMX_EMU_H
#define HARNESS_AMX_EMU_H

#include <stdint.h>
#include <string.h>

#define HARNESS_AMX_TILES 8
#define HARNESS_AMX_ROWS 16
#define HARNESS_AMX_COLSB 64

static struct {
    int configured;
    uint8_t config[64];
    uint8_t rows[HARNESS_AMX_TILES];
    uint16_t colsb[HARNESS_AMX_TILES];
    uint8_t data[HARNESS_AMX_TILES][HARNESS_AMX_ROWS * HARNESS_AMX_COLSB];
} harness_amx_;

/* Tile numbers are immediates in the instructions: a variable one fails to
 * compile here as it does with the real intrinsics (an out-of-range one as
 * a negative array size). */
void harness_amx_tile_not_constant_(void)
    __attribute__((error("AMX tile numbers must be compile-time constants 0..7, as in the instructions")));
#define HARNESS_AMX_TILE_(t) __builtin_choose_expr(__builtin_constant_p(t), \
    (int)((t) + 0 * sizeof(char[((t) >= 0 && (t) < HARNESS_AMX_TILES) ? 1 : -1])), \
    (harness_amx_tile_not_constant_(), 0))

static inline void harness_amx_fault_(void) { __builtin_trap(); }

static inline void harness_amx_reset_(void)
{
    memset(&harness_amx_, 0, sizeof harness_amx_);
}

static inline void harness_tile_loadconfig_(const void *config)
{
    const uint8_t *c = (const uint8_t *)config;
    if (c[0] == 0) {                      /* palette 0: back to the init state */
        harness_amx_reset_();
        return;
    }
    if (c[0] != 1)
        harness_amx_fault_();
    for (int i = 2; i < 16; i++)          /* reserved bytes must be zero */
        if (c[i])
            harness_amx_fault_();
    harness_amx_reset_();
    for (int t = 0; t < 16; t++) {
        uint16_t colsb = (uint16_t)(c[16 + 2 * t] | (c[17 + 2 * t] << 8));
        uint8_t rows = c[48 + t];
        if (t >= HARNESS_AMX_TILES) {
            if (colsb || rows)
                harness_amx_fault_();
            continue;
        }
        if (colsb > HARNESS_AMX_COLSB || rows > HARNESS_AMX_ROWS || (!colsb != !rows))
            harness_amx_fault_();
        harness_amx_.colsb[t] = colsb;
        harness_amx_.rows[t] = rows;
    }
    memcpy(harness_amx_.config, c, 64);
    harness_amx_.config[1] = 0;           /* start_row: no interrupted load to resume */
    harness_amx_.configured = 1;
}

static inline void harness_tile_storeconfig_(void *config)
{
    memcpy(config, harness_amx_.config, 64);   /* all zero when unconfigured */
}

static inline void harness_amx_need_(int t)
{
    if (!harness_amx_.configured || !harness_amx_.rows[t])
        harness_amx_fault_();
}

static inline void harness_tile_loadd_(int t, const void *base, long stride)
{
    harness_amx_need_(t);
    uint8_t *d = harness_amx_.data[t];
    memset(d, 0, sizeof harness_amx_.data[t]);
    for (int r = 0; r < harness_amx_.rows[t]; r++)
        memcpy(d + r * HARNESS_AMX_COLSB, (const uint8_t *)base + r * stride, harness_amx_.colsb[t]);
}

static inline void harness_tile_stored_(int t, void *base, long stride)
{
    harness_amx_need_(t);
    for (int r = 0; r < harness_amx_.rows[t]; r++)
        memcpy((uint8_t *)base + r * stride, harness_amx_.data[t] + r * HARNESS_AMX_COLSB,
               harness_amx_.colsb[t]);
}

static inline void harness_tile_zero_(int t)
{
    harness_amx_need_(t);
    memset(harness_amx_.data[t], 0, sizeof harness_amx_.data[t]);
}

/* The shape rules every tile dot product checks: dst is M x N dwords, src1
 * M x K dwords, src2 K x N dwords, three distinct tiles. */
static inline void harness_amx_dp_shapes_(int dst, int a, int b)
{
    harness_amx_need_(dst);
    harness_amx_need_(a);
    harness_amx_need_(b);
    if (dst == a || dst == b || a == b)
        harness_amx_fault_();
    if (harness_amx_.rows[dst] != harness_amx_.rows[a] || harness_amx_.colsb[a] % 4 ||
        harness_amx_.colsb[a] / 4 != harness_amx_.rows[b] ||
        harness_amx_.colsb[dst] != harness_amx_.colsb[b] || harness_amx_.colsb[dst] % 4)
        harness_amx_fault_();
}

/* One int8 dot product; `sa`/`sb`: src1/src2 bytes are signed. Rows of dst
 * past its shape stay zero, as the instruction's write_row_and_zero leaves them. */
static inline void harness_tile_dpb_(int dst, int a, int b, int sa, int sb)
{
    harness_amx_dp_shapes_(dst, a, b);
    int m_rows = harness_amx_.rows[dst], n_cols = harness_amx_.colsb[dst] / 4;
    int k_len = harness_amx_.colsb[a] / 4;
    for (int m = 0; m < m_rows; m++) {
        const uint8_t *arow = harness_amx_.data[a] + m * HARNESS_AMX_COLSB;
        uint8_t *drow = harness_amx_.data[dst] + m * HARNESS_AMX_COLSB;
        for (int n = 0; n < n_cols; n++) {
            uint32_t acc;
            memcpy(&acc, drow + 4 * n, 4);
            for (int k = 0; k < k_len; k++) {
                const uint8_t *brow = harness_amx_.data[b] + k * HARNESS_AMX_COLSB;
                int32_t s = 0;
                for (int i = 0; i < 4; i++) {
                    int32_t x = sa ? (int8_t)arow[4 * k + i] : arow[4 * k + i];
                    int32_t y = sb ? (int8_t)brow[4 * n + i] : brow[4 * n + i];
                    s += x * y;
                }
                acc += (uint32_t)s;       /* unsigned: wraps like the instruction */
            }
            memcpy(drow + 4 * n, &acc, 4);
        }
    }
}

static inline float harness_amx_flush_(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0)           /* zero or denormal: signed zero */
        u &= 0x80000000u;
    memcpy(&x, &u, 4);
    return x;
}

static inline float harness_amx_bf16_(const uint8_t *p)
{
    uint32_t u = (uint32_t)(p[0] | (p[1] << 8)) << 16;
    float x;
    memcpy(&x, &u, 4);
    return harness_amx_flush_(x);
}

static inline void harness_tile_dpbf16ps_(int dst, int a, int b)
{
    harness_amx_dp_shapes_(dst, a, b);
    int m_rows = harness_amx_.rows[dst], n_cols = harness_amx_.colsb[dst] / 4;
    int k_len = harness_amx_.colsb[a] / 4;
    for (int m = 0; m < m_rows; m++) {
        const uint8_t *arow = harness_amx_.data[a] + m * HARNESS_AMX_COLSB;
        uint8_t *drow = harness_amx_.data[dst] + m * HARNESS_AMX_COLSB;
        for (int n = 0; n < n_cols; n++) {
            float acc, sum[2] = {0.0f, 0.0f};
            memcpy(&acc, drow + 4 * n, 4);
            acc = harness_amx_flush_(acc);
            for (int k = 0; k < k_len; k++) {
                const uint8_t *brow = harness_amx_.data[b] + k * HARNESS_AMX_COLSB;
                for (int i = 0; i < 2; i++) {
                    /* bf16 x bf16 is exact in double, so the float conversion
                     * rounds only where fp32 over- or underflows (then FTZ),
                     * and no fused multiply-add can change the float sum. */
                    double p = (double)harness_amx_bf16_(arow + 4 * k + 2 * i) *
                               (double)harness_amx_bf16_(brow + 4 * n + 2 * i);
                    sum[i] = harness_amx_flush_(sum[i] + harness_amx_flush_((float)p));
                }
            }
            acc = harness_amx_flush_(harness_amx_flush_(sum[0] + sum[1]) + acc);
            memcpy(drow + 4 * n, &acc, 4);
        }
    }
}

/* The intrinsics, by their <immintrin.h> names (those are macros or inline
 * functions there; these definitions replace them for the rest of the file). */
#undef _tile_loadconfig
#undef _tile_storeconfig
#undef _tile_release
#undef _tile_loadd
#undef _tile_stream_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbssd
#undef _tile_dpbsud
#undef _tile_dpbusd
#undef _tile_dpbuud
#undef _tile_dpbf16ps
#define _tile_loadconfig(config) harness_tile_loadconfig_(config)
#define _tile_storeconfig(config) harness_tile_storeconfig_(config)
#define _tile_release() harness_amx_reset_()
#define _tile_loadd(dst, base, stride) \
    harness_tile_loadd_(HARNESS_AMX_TILE_(dst), (base), (long)(stride))
#define _tile_stream_loadd(dst, base, stride) _tile_loadd(dst, base, stride)
#define _tile_stored(src, base, stride) \
    harness_tile_stored_(HARNESS_AMX_TILE_(src), (base), (long)(stride))
#define _tile_zero(dst) harness_tile_zero_(HARNESS_AMX_TILE_(dst))
#define _tile_dpbssd(dst, a, b) \
    harness_tile_dpb_(HARNESS_AMX_TILE_(dst), HARNESS_AMX_TILE_(a), HARNESS_AMX_TILE_(b), 1, 1)
#define _tile_dpbsud(dst, a, b) \
    harness_tile_dpb_(HARNESS_AMX_TILE_(dst), HARNESS_AMX_TILE_(a), HARNESS_AMX_TILE_(b), 1, 0)
#define _tile_dpbusd(dst, a, b) \
    harness_tile_dpb_(HARNESS_AMX_TILE_(dst), HARNESS_AMX_TILE_(a), HARNESS_AMX_TILE_(b), 0, 1)
#define _tile_dpbuud(dst, a, b) \
    harness_tile_dpb_(HARNESS_AMX_TILE_(dst), HARNESS_AMX_TILE_(a), HARNESS_AMX_TILE_(b), 0, 0)
#define _tile_dpbf16ps(dst, a, b) \
    harness_tile_dpbf16ps_(HARNESS_AMX_TILE_(dst), HARNESS_AMX_TILE_(a), HARNESS_AMX_TILE_(b))

#endif
