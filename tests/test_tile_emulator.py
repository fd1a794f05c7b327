"""The AMX tile intrinsics and the AVX-512 shims agree with numpy models of the
instructions (Intel SDM pseudo-code).

A small C probe runs each tile dot product on given tiles; it is built at the
amx level, so on a CPU without AMX it runs harness_amx_emu.h, and on one with
AMX the real instructions, against the same models:

* tdpb[su][su]d: bytes signed or unsigned per operand as the name says,
  int32 accumulation that wraps;
* tdpbf16ps as Sapphire Rapids computes it (not the SDM's pseudo-code): one
  fp32 sum of the even products of the pairs and one of the odd ones, each
  over k in order, every addition rounded to nearest even, then the two
  sums added, then the accumulator; denormal inputs read as zero and
  denormal results flushed to zero;
* on a CPU with AMX the emulator is also built and compared with the real
  instructions bit for bit on the same tiles;
* shapes the hardware refuses trap (SIGILL), in a child process;
* shims: _mm512_reduce_add_ps in GCC's order, fp32 -> bf16 round to nearest even,
  masked integer min/max reductions, a masked byte store that leaves the
  bytes of clear mask bits untouched, a masked compare; the AVX-512 ones built
  both natively (where the CPU has it) and emulated, on every machine.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness_common import cbuild, isa

PROBE = r"""
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "harness_isa.h"

struct cfg { uint8_t palette, start, reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; };

/* dst (M x 4N bytes) += a (M x 4K bytes) . b (K x 4N bytes); kind 0..3: ssd sud usd uud, 4: bf16 */
HARNESS_TARGET_AMX int tile_dp(int kind, const void *a, const void *b, void *c, int m, int k, int n)
{
    struct cfg t = {0};
    t.palette = 1;
    t.rows[0] = (uint8_t)m; t.colsb[0] = (uint16_t)(4 * n);
    t.rows[1] = (uint8_t)m; t.colsb[1] = (uint16_t)(4 * k);
    t.rows[2] = (uint8_t)k; t.colsb[2] = (uint16_t)(4 * n);
    _tile_loadconfig(&t);
    _tile_loadd(0, c, 4 * n);
    _tile_loadd(1, a, 4 * k);
    _tile_loadd(2, b, 4 * n);
    switch (kind) {
    case 0: _tile_dpbssd(0, 1, 2); break;
    case 1: _tile_dpbsud(0, 1, 2); break;
    case 2: _tile_dpbusd(0, 1, 2); break;
    case 3: _tile_dpbuud(0, 1, 2); break;
    default: _tile_dpbf16ps(0, 1, 2); break;
    }
    _tile_stored(0, c, 4 * n);
    _tile_release();
    return 0;
}

/* A dot product whose src2 has one row too many for src1: #UD on hardware. */
HARNESS_TARGET_AMX void tile_bad_shape(void)
{
    struct cfg t = {0};
    t.palette = 1;
    t.rows[0] = 2; t.colsb[0] = 8;
    t.rows[1] = 2; t.colsb[1] = 8;
    t.rows[2] = 3; t.colsb[2] = 8;
    _tile_loadconfig(&t);
    _tile_dpbssd(0, 1, 2);
}

HARNESS_TARGET_AMX void to_bf16(const float *x, uint16_t *out)
{
    __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x));
    memcpy(out, &h, 32);
}
"""
CDEF = """
int tile_dp(int kind, const void *a, const void *b, void *c, int m, int k, int n);
void tile_bad_shape(void);
void to_bf16(const float *x, uint16_t *out);
"""
# The AVX-512 shims alone, built at the avx512 level: emulated, every AVX-512
# intrinsic comes from SIMDe or the shims (an amx-level build emulating only the
# tiles would compile them natively on a CPU with AVX-512).
LANES_PROBE = r"""
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "harness_isa.h"

HARNESS_TARGET_AVX512 float reduce_add(const float *x) { return _mm512_reduce_add_ps(_mm512_loadu_ps(x)); }

HARNESS_TARGET_AVX512 void mask_store_bytes(uint8_t *p, unsigned k, const uint8_t *src)
{
    _mm_mask_storeu_epi8(p, (__mmask16)k, _mm_loadu_si128((const __m128i *)src));
}

HARNESS_TARGET_AVX512 int mask_min(unsigned k, const int32_t *x)
{
    return _mm512_mask_reduce_min_epi32((__mmask16)k, _mm512_loadu_si512(x));
}

HARNESS_TARGET_AVX512 int mask_max(unsigned k, const int32_t *x)
{
    return _mm512_mask_reduce_max_epi32((__mmask16)k, _mm512_loadu_si512(x));
}

HARNESS_TARGET_AVX512 unsigned mask_cmp_le(unsigned k, const float *a, const float *b)
{
    return _mm512_mask_cmp_ps_mask((__mmask16)k, _mm512_loadu_ps(a), _mm512_loadu_ps(b), _CMP_LE_OQ);
}
"""
LANES_CDEF = """
float reduce_add(const float *x);
void mask_store_bytes(uint8_t *p, unsigned k, const uint8_t *src);
int mask_min(unsigned k, const int32_t *x);
int mask_max(unsigned k, const int32_t *x);
unsigned mask_cmp_le(unsigned k, const float *a, const float *b);
"""
KINDS = {"dpbssd": (0, True, True), "dpbsud": (1, True, False),
         "dpbusd": (2, False, True), "dpbuud": (3, False, False)}


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    d = tmp_path_factory.mktemp("tile")
    (d / "probe.c").write_text(PROBE)
    if not isa.emulated("amx"):
        assert isa.request_amx_permission() == "granted"
    so = cbuild.build(d / "probe.c", CDEF, True, "amx")
    module = cbuild.load_module(so)
    return module.ffi, module.lib, so


@pytest.fixture(scope="module", params=["native", "emulated"])
def lanes(request, tmp_path_factory):
    """The shim probe built natively (where this CPU has AVX-512) and emulated on
    every machine: the shims must match the instructions, and a machine that has
    the level would otherwise never run them."""
    if request.param == "native" and isa.emulated("avx512"):
        pytest.skip("this CPU has no AVX-512: the native build would be emulated too")
    d = tmp_path_factory.mktemp(f"lanes-{request.param}")
    (d / "lanes.c").write_text(LANES_PROBE)
    so = cbuild.build(d / "lanes.c", LANES_CDEF, True, "avx512", emulate=request.param == "emulated")
    module = cbuild.load_module(so)
    return module.ffi, module.lib, so


def _ptr(ffi, a):
    return ffi.cast("void *", ffi.from_buffer(a))


def run_dp(probe, kind, a, b, c):
    ffi, lib, _ = probe
    c = c.copy()
    m, k4 = a.shape[0], a.shape[1] * a.itemsize // 4
    n4 = c.shape[1] * c.itemsize // 4
    lib.tile_dp(kind, _ptr(ffi, a), _ptr(ffi, b), _ptr(ffi, c), m, k4, n4)
    return c


# ------------------------------------------------------------ int8

def int8_model(a, b, c, sa, sb):
    """C[m, n] += sum_k sum_i A[m, 4k+i] * B[k, 4n+i], int32 wrap-around."""
    av = (a.view(np.int8) if sa else a).astype(np.int64)
    bv = (b.view(np.int8) if sb else b).astype(np.int64)
    m, k4, n4 = a.shape[0], a.shape[1] // 4, b.shape[1] // 4
    prod = np.einsum("mki,kni->mn", av.reshape(m, k4, 4), bv.reshape(k4, n4, 4))
    return ((c.astype(np.int64) + prod + 2**31) % 2**32 - 2**31).astype(np.int32)


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("shape", [(16, 16, 16), (3, 5, 7), (1, 1, 1)])
def test_int8_dot_products_match_the_model(probe, name, shape):
    kind, sa, sb = KINDS[name]
    m, k4, n4 = shape
    rng = np.random.default_rng([kind, *shape])
    a = rng.integers(0, 256, (m, 4 * k4), dtype=np.uint8)
    b = rng.integers(0, 256, (k4, 4 * n4), dtype=np.uint8)
    c = rng.integers(-2**31, 2**31, (m, n4), dtype=np.int64).astype(np.int32)
    assert np.array_equal(run_dp(probe, kind, a, b, c), int8_model(a, b, c, sa, sb))


def test_signedness_is_per_operand(probe):
    # 0xFF is 255 unsigned and -1 signed: each variant gives its own sum.
    a = np.full((1, 4), 0xFF, np.uint8)
    b = np.full((1, 4), 0xFF, np.uint8)
    c = np.zeros((1, 1), np.int32)
    got = {name: int(run_dp(probe, KINDS[name][0], a, b, c)[0, 0]) for name in KINDS}
    assert got == {"dpbssd": 4, "dpbsud": -4 * 255, "dpbusd": -4 * 255, "dpbuud": 4 * 255 * 255}


def test_int8_accumulator_wraps(probe):
    a = np.full((1, 4), 0xFF, np.uint8)
    b = np.full((1, 4), 0xFF, np.uint8)
    c = np.full((1, 1), 2**31 - 1, np.int32)
    assert int(run_dp(probe, KINDS["dpbuud"][0], a, b, c)[0, 0]) == \
        int(np.int64(2**31 - 1 + 4 * 255 * 255 - 2**32))


# ------------------------------------------------------------ bf16

def _ftz(x):
    x = np.asarray(x, np.float32)
    return np.where(np.abs(x) < np.finfo(np.float32).tiny, np.copysign(np.float32(0), x), x)


def bf16_to_f32(h):
    return _ftz((h.astype(np.uint32) << 16).view(np.float32))


def bf16_model(a, b, c):
    """sum_i = sum over k ascending of A[m, 2k+i] * B[k, 2n+i] (i = 0, 1), each from
    zero; then C[m, n] += sum_0 + sum_1. Each product exact, each addition rounded
    to fp32 (RNE), DAZ inputs, FTZ outputs: Sapphire Rapids' order, measured."""
    af, bf = bf16_to_f32(a), bf16_to_f32(b)
    k2 = a.shape[1] // 2
    sums = [np.zeros(c.shape, np.float32), np.zeros(c.shape, np.float32)]
    for k in range(k2):
        for i in range(2):
            p = _ftz((af[:, 2 * k + i][:, None].astype(np.float64) *
                      bf[k, i::2][None, :].astype(np.float64)).astype(np.float32))
            sums[i] = _ftz(sums[i] + p)
    return _ftz(_ftz(sums[0] + sums[1]) + _ftz(c.copy()))


def to_bf16_bits(x):
    """Truncate float32 to bf16 bits (the test inputs; any bf16 pattern is fair)."""
    return (np.asarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)


@pytest.mark.parametrize("shape", [(16, 16, 16), (4, 3, 5)])
def test_bf16_dot_product_matches_the_model(probe, shape):
    m, k4, n = shape
    rng = np.random.default_rng(7)
    # Mixed magnitudes make the order and rounding of each addition visible.
    scale = 2.0 ** rng.integers(-12, 12, (m, 2 * k4))
    a = to_bf16_bits(rng.standard_normal((m, 2 * k4)) * scale)
    b = to_bf16_bits(rng.standard_normal((k4, 2 * n)) * 2.0 ** rng.integers(-12, 12, (k4, 2 * n)))
    c = (rng.standard_normal((m, n)) * 100).astype(np.float32)
    got = run_dp(probe, 4, a, b, c)
    want = bf16_model(a, b, c)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_bf16_sums_even_and_odd_products_apart_then_adds_the_accumulator(probe):
    one, tiny = to_bf16_bits([1.0])[0], to_bf16_bits([2.0 ** -24])[0]
    # 1 + 2^-24 + 2^-24 with the 1 in C: the pair's two products meet first (2^-23),
    # so nothing rounds away; one running sum from C would round back to 1 twice.
    a = np.array([[tiny, tiny]], np.uint16)
    b = np.array([[one, one]], np.uint16)
    assert run_dp(probe, 4, a, b, np.ones((1, 1), np.float32))[0, 0] == np.float32(1 + 2.0 ** -23)
    # The same three terms as products: 1 (k = 0, even) + 2^-24 (k = 1, even) rounds
    # to 1 (ties to even), then the odd sum's 2^-24 rounds away again: each addition
    # is rounded to fp32, the exact sum 1 + 2^-23 is not reached.
    a = np.array([[one, tiny, tiny, 0]], np.uint16)
    b = np.array([[one, one], [one, one]], np.uint16)
    assert run_dp(probe, 4, a, b, np.zeros((1, 1), np.float32))[0, 0] == np.float32(1.0)
    # C joins last: 1 - 1 cancels before the 2^-30 in C is added, so it survives.
    a = np.array([[one, to_bf16_bits([-1.0])[0]]], np.uint16)
    b = np.array([[one, one]], np.uint16)
    assert run_dp(probe, 4, a, b, np.full((1, 1), 2.0 ** -30, np.float32))[0, 0] == np.float32(2.0 ** -30)


@pytest.mark.skipif(isa.emulated("amx"), reason="needs a CPU with AMX: the emulator is compared "
                    "with the real instructions")
def test_the_emulator_matches_this_cpus_tiles_bit_for_bit(probe, tmp_path):
    (tmp_path / "probe.c").write_text(PROBE)
    so = cbuild.build(tmp_path / "probe.c", CDEF, True, "amx", emulate=True)
    emu = cbuild.load_module(so)
    emu_probe = (emu.ffi, emu.lib, so)
    rng = np.random.default_rng(11)
    for _ in range(20):
        m, k4, n = (int(v) for v in rng.integers(1, 17, 3))
        e = int(rng.integers(2, 70))        # up to the bf16 denormal range and back
        a = to_bf16_bits(rng.standard_normal((m, 2 * k4)) * 2.0 ** rng.integers(-e, e, (m, 2 * k4)))
        b = to_bf16_bits(rng.standard_normal((k4, 2 * n)) * 2.0 ** rng.integers(-e, e, (k4, 2 * n)))
        c = (rng.standard_normal((m, n)) * 2.0 ** rng.integers(-e, e, (m, n))).astype(np.float32)
        hw, em = run_dp(probe, 4, a, b, c), run_dp(emu_probe, 4, a, b, c)
        assert np.array_equal(hw.view(np.uint32), em.view(np.uint32)), (m, k4, n, e)
        ia = rng.integers(0, 256, (m, 4 * k4), dtype=np.uint8)
        ib = rng.integers(0, 256, (k4, 4 * n), dtype=np.uint8)
        ic = rng.integers(-2**31, 2**31, (m, n), dtype=np.int64).astype(np.int32)
        for kind in range(4):
            assert np.array_equal(run_dp(probe, kind, ia, ib, ic), run_dp(emu_probe, kind, ia, ib, ic))


def test_bf16_denormals_are_zero_and_flushed(probe):
    denormal = np.uint16(0x0001)                    # smallest bf16 denormal
    one = to_bf16_bits([1.0])[0]
    a = np.array([[denormal, one]], np.uint16)
    b = np.array([[one, 0]], np.uint16)             # denormal * 1 + 1 * 0
    c = np.zeros((1, 1), np.float32)
    got = run_dp(probe, 4, a, b, c)
    assert got[0, 0] == 0 and not np.signbit(got[0, 0])
    # A product below FLT_MIN flushes to zero instead of staying denormal.
    small = to_bf16_bits([2.0 ** -70])[0]
    a = np.array([[small, 0]], np.uint16)
    b = np.array([[small, 0]], np.uint16)
    assert run_dp(probe, 4, a, b, c)[0, 0] == 0


def test_bad_tile_shape_traps_like_the_hardware(probe):
    _, _, so = probe
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(cbuild.INCLUDE_DIR.parent.parent)!r})
        from harness_common import cbuild, isa
        isa.request_amx_permission()
        cbuild.load_module({str(so)!r}).lib.tile_bad_shape()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode < 0, proc           # killed by a signal (SIGILL), not an exit


# ------------------------------------------------------------ AVX-512 shims

def test_reduce_add_ps_sums_in_gccs_order(lanes):
    ffi, lib, _ = lanes
    x = np.array([1e8, 1, -1e8, 1, 3, 5e-3, 7, 1e-7] + [0.1 * i for i in range(8)], np.float32)
    h = x[8:] + x[:8]                 # high 256 + low 256
    q = h[4:] + h[:4]                 # high 128 + low 128
    p = q[:2] + q[2:]                 # lanes {0,1} + {2,3}
    want = p[0] + p[1]
    assert lib.reduce_add(ffi.cast("float *", ffi.from_buffer(x))) == want


def test_fp32_to_bf16_rounds_to_nearest_even(probe):
    ffi, lib, _ = probe
    bits = np.array([0x3F800000, 0x3F808000, 0x3F818000, 0x3F80C000, 0x3F807FFF, 0x00000001,
                     0x80000001, 0x7F800000, 0x7FC00001, 0x7F800001, 0xC0490FDB, 0x7F7FFFFF,
                     0x3F80FFFF, 0, 0x80000000, 0x00800000], np.uint32)
    out = np.zeros(16, np.uint16)
    lib.to_bf16(ffi.cast("float *", ffi.from_buffer(bits)), ffi.cast("uint16_t *", ffi.from_buffer(out)))
    want = [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0x3F80, 0x0000, 0x8000, 0x7F80, 0x7FC0, 0x7FC0,
            0xC049, 0x7F80, 0x3F81, 0, 0x8000, 0x0080]
    assert [hex(v) for v in out] == [hex(v) for v in want]


@pytest.mark.parametrize("k", [0x0000, 0x0001, 0x8000, 0x00FF, 0x5A5A, 0xFFFF, 0x07FF])
def test_masked_byte_store_writes_only_the_set_lanes(lanes, k):
    ffi, lib, _ = lanes
    src = np.arange(1, 17, dtype=np.uint8)
    buf = np.full(16, 0xEE, np.uint8)
    lib.mask_store_bytes(ffi.cast("uint8_t *", ffi.from_buffer(buf)), k,
                         ffi.cast("uint8_t *", ffi.from_buffer(src)))
    on = np.array([(k >> i) & 1 for i in range(16)], bool)
    assert buf.tolist() == np.where(on, src, 0xEE).tolist()


@pytest.mark.parametrize("k", [0xFFFF, 0x0001, 0x8000, 0x0F0F, 0x0000])
def test_masked_min_and_max_take_the_identity_on_clear_lanes(lanes, k):
    ffi, lib, _ = lanes
    x = np.array([5, -7, 12, 3, 99, -100, 0, 42, 8, -1, 7, 2 ** 31 - 1, -2 ** 31, 6, 1, -3], np.int32)
    on = np.array([(k >> i) & 1 for i in range(16)], bool)
    xp = ffi.cast("int32_t *", ffi.from_buffer(x))
    assert lib.mask_min(k, xp) == (int(x[on].min()) if on.any() else 2 ** 31 - 1)
    assert lib.mask_max(k, xp) == (int(x[on].max()) if on.any() else -2 ** 31)


@pytest.mark.parametrize("k", [0xFFFF, 0x0000, 0x8001, 0x5A5A])
def test_masked_compare_keeps_only_the_lanes_of_the_mask(lanes, k):
    ffi, lib, _ = lanes
    a = np.array([1, 2, 3, np.nan, -1, 0, 5, 5, np.inf, -np.inf, 2, 2, 7, 8, 9, 0], np.float32)
    b = np.array([1, 1, 4, 0, np.nan, -0.0, 5, 4, np.inf, 0, 3, 1, 7, 9, 8, 0], np.float32)
    fp = lambda x: ffi.cast("float *", ffi.from_buffer(x))
    with np.errstate(invalid="ignore"):
        le = a <= b                      # ordered: NaN on either side is false
    want = sum(1 << i for i in range(16) if le[i] and (k >> i) & 1)
    assert lib.mask_cmp_le(k, fp(a), fp(b)) == want
