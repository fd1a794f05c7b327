"""harness_common.cbuild: builds are named by content (a stale build never
loads), in-process builds reuse the cache while a trial's builds (out_dir)
always compile afresh, a worker serves the trial's prebuilt modules from open
fds, compile errors show the compiler's own line, a missing or too slow
toolchain is a one-line BuildError, pointer() names a bad argument, and the
ISA attributes of harness_isa.h compile on this machine."""
import os
import shutil
import subprocess
import textwrap

import cffi
import numpy as np
import pytest

from harness_common import cbuild, isa

CDEF = "int add(int a, int b);"
SOURCE = "int add(int a, int b) { return a + b; }\n"


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """One compiled-module cache for this file's tests, so each C file compiles once."""
    return tmp_path_factory.mktemp("cbuild-cache")


@pytest.fixture
def cache(module_cache, monkeypatch):
    # monkeypatch records the module's current settings and restores them afterwards
    # (configure() cannot set the cache back to "unset", so it cannot restore it itself).
    monkeypatch.setattr(cbuild, "_CACHE_DIR", cbuild._CACHE_DIR)
    monkeypatch.setattr(cbuild, "_PREBUILT", None)
    cbuild.configure(cache_dir=module_cache)
    assert cbuild.cache_dir() == module_cache
    return module_cache


@pytest.fixture
def out_dir(tmp_path):
    """A trial's private build directory (the trial creates it before building)."""
    d = tmp_path / "so"
    d.mkdir()
    return d


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


# ------------------------------------------------------------ module_name

def test_module_name_is_stable_for_same_inputs():
    a = cbuild.module_name(SOURCE.encode(), CDEF, cbuild.KERNEL_FLAGS)
    assert a == cbuild.module_name(SOURCE.encode(), CDEF, cbuild.KERNEL_FLAGS)
    assert a.startswith("_kernel_")


@pytest.mark.parametrize("source, cdef, flags", [
    (SOURCE + " ", CDEF, cbuild.KERNEL_FLAGS),
    (SOURCE, CDEF + " ", cbuild.KERNEL_FLAGS),
    (SOURCE, "int add(int x, int y);", cbuild.KERNEL_FLAGS),
    (SOURCE, CDEF, cbuild.SCALAR_FLAGS),
    (SOURCE, CDEF, cbuild.KERNEL_FLAGS + ("-O2",)),
])
def test_module_name_changes_with_source_cdef_or_flags(source, cdef, flags):
    base = cbuild.module_name(SOURCE.encode(), CDEF, cbuild.KERNEL_FLAGS)
    assert cbuild.module_name(source.encode(), cdef, flags) != base


def test_flags_for_caps_the_isa_and_names_differ_per_level():
    assert cbuild.flags_for(True, "avx2")[:len(cbuild.KERNEL_FLAGS)] == cbuild.KERNEL_FLAGS
    assert cbuild.flags_for(False, "avx2")[:len(cbuild.SCALAR_FLAGS)] == cbuild.SCALAR_FLAGS
    for i, level in enumerate(cbuild.ISA_LEVELS):
        assert cbuild.flags_for(True, level)[-1] == f"-DHARNESS_ISA_MAX={i}"
    names = {cbuild.module_name(SOURCE.encode(), CDEF, cbuild.flags_for(True, level))
             for level in cbuild.ISA_LEVELS}
    assert len(names) == len(cbuild.ISA_LEVELS)


def test_module_name_parts_cannot_slide_into_each_other():
    # Length-prefixed parts: moving text from source to cdef changes the name.
    a = cbuild.module_name(b"ab", "c", cbuild.KERNEL_FLAGS)
    b = cbuild.module_name(b"a", "bc", cbuild.KERNEL_FLAGS)
    assert a != b


# ------------------------------------------------------------ build / cache

def test_build_twice_reuses_the_module(cache, tmp_path):
    c = _write(tmp_path / "reuse.c", "int add(int a, int b) { return a + b + 0; }\n")
    first = cbuild.build(c, CDEF)
    assert first.exists() and first.parent == cache
    mtime = first.stat().st_mtime_ns
    second = cbuild.build(c, CDEF)
    assert second == first
    assert second.stat().st_mtime_ns == mtime
    assert not list(cache.glob("build-*")), "temporary build folders must be removed"


def test_edited_source_builds_and_loads_a_new_module(cache, tmp_path):
    c = _write(tmp_path / "edit.c", "int add(int a, int b) { return a + b; }\n")
    old = cbuild.build(c, CDEF)
    assert cbuild.load_module(old).lib.add(2, 3) == 5
    _write(c, "int add(int a, int b) { return a + b + 100; }\n")
    new = cbuild.build(c, CDEF)
    assert new != old
    assert cbuild.load_module(new).lib.add(2, 3) == 105


def test_vectorize_false_is_a_separate_build(cache, tmp_path):
    c = _write(tmp_path / "scalar.c", "int add(int a, int b) { return a + b - 0; }\n")
    assert cbuild.build(c, CDEF, vectorize=False) != cbuild.build(c, CDEF)


def test_compile_error_shows_compiler_line(cache, tmp_path):
    c = _write(tmp_path / "broken.c", """\
        int add(int a, int b) {
            int x = a + b;
            return x + undeclared_thing;
        }
        """)
    with pytest.raises(cbuild.BuildError) as info:
        cbuild.build(c, CDEF)
    msg = str(info.value)
    assert f"{c}:3:" in msg
    assert "error:" in msg and "undeclared_thing" in msg
    assert "build-" not in msg, "the temporary build path should be mapped back"
    assert not list(cache.glob("build-*"))


def test_implicit_declaration_is_an_error(cache, tmp_path):
    c = _write(tmp_path / "implicit.c", "int add(int a, int b) { return helper(a) + b; }\n")
    with pytest.raises(cbuild.BuildError, match=r"implicit.c:1:.*error:"):
        cbuild.build(c, CDEF)


def test_bad_cdef_raises_build_error(cache, tmp_path):
    c = _write(tmp_path / "cdef.c", SOURCE)
    with pytest.raises(cbuild.BuildError, match="CDEF"):
        cbuild.build(c, "int add(int a, int b")


def test_missing_source_raises_build_error(cache, tmp_path):
    with pytest.raises(cbuild.BuildError, match="cannot read"):
        cbuild.build(tmp_path / "absent.c", CDEF)


def test_out_dir_build_compiles_afresh_despite_a_poisoned_cache(cache, out_dir, tmp_path, monkeypatch):
    # A trial's build never takes anything from a cache the agent could write:
    # an identical module in the cache, even one under the very same name in
    # out_dir, is replaced by a fresh compile.
    c = _write(tmp_path / "fresh.c", "int add(int a, int b) { return a + b + 7; }\n")
    cached = cbuild.build(c, CDEF)
    cached.write_bytes(b"poisoned: not a module")
    cbuild._symbols_path(cached).write_text("pthread_create\n")
    (out_dir / cached.name).write_bytes(b"poisoned: not a module")
    cbuild._symbols_path(out_dir / cached.name).write_text("pthread_create\n")
    compiles = []
    real = cbuild._compile
    monkeypatch.setattr(cbuild, "_compile", lambda *a: (compiles.append(a[-1]), real(*a))[1])
    built = cbuild.build(c, CDEF, out_dir=out_dir)
    assert built == out_dir / cached.name, "same inputs, same name"
    assert compiles == [built]
    assert built.read_bytes()[:4] == b"\x7fELF"
    assert cbuild.load_module(built).lib.add(2, 3) == 12
    assert cbuild.kernel_symbols(built) == set(), "the symbol list is the fresh one too"
    assert cached.read_bytes() == b"poisoned: not a module", "the cache is neither read nor repaired"
    # and again: a second trial build compiles again, never reusing the first
    assert cbuild.build(c, CDEF, out_dir=out_dir) == built
    assert compiles == [built, built]
    assert not list(out_dir.glob("build-*"))


def test_in_process_build_uses_the_cache_but_a_trial_build_does_not(cache, out_dir, tmp_path, monkeypatch):
    c = _write(tmp_path / "cached.c", "int add(int a, int b) { return a + b + 8; }\n")
    cbuild.build(c, CDEF)
    compiles = []
    real = cbuild._compile
    monkeypatch.setattr(cbuild, "_compile", lambda *a: (compiles.append(a[-1]), real(*a))[1])
    cbuild.build(c, CDEF)
    assert compiles == []
    cbuild.build(c, CDEF, vectorize=False, isa_level="scalar", out_dir=out_dir)
    assert len(compiles) == 1 and compiles[0].parent == out_dir


def test_use_prebuilt_serves_the_given_fd(cache, out_dir, tmp_path, monkeypatch):
    py = tmp_path / "served.py"
    py.write_text("# stand-in for kernels.py\n")
    c = _write(tmp_path / "served.c", "int add(int a, int b) { return a * 100 + b; }\n")
    so = cbuild.build(c, CDEF, out_dir=out_dir)
    fd = os.open(so, os.O_RDONLY)
    try:
        # The worker has no files: neither the source nor the built path exists,
        # and nothing may be compiled.
        c.unlink()
        so.unlink()
        monkeypatch.setattr(cbuild, "build", lambda *a, **k: pytest.fail("a worker must not build"))
        cbuild.use_prebuilt({str(py): (fd, so.name.split(".")[0])})
        ffi, lib = cbuild.load_kernel_lib(str(py), CDEF)
        assert lib.add(4, 2) == 402
        with pytest.raises(cbuild.BuildError, match="was not built by this trial"):
            cbuild.load_kernel_lib(str(tmp_path / "other.py"), CDEF)
    finally:
        os.close(fd)


def _one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg and msg.strip() == msg
    return msg


def test_missing_compiler_is_a_one_line_build_error(cache, out_dir, tmp_path, monkeypatch):
    cbuild.compiler_id()          # the name hash asks the real compiler once, as a trial would
    monkeypatch.setattr(cbuild, "_compiler", lambda: "/nonexistent/bin/no-such-cc")
    c = _write(tmp_path / "nocc.c", "int add(int a, int b) { return a + b + 9; }\n")
    with pytest.raises(cbuild.BuildError) as info:
        cbuild.build(c, CDEF, out_dir=out_dir)
    msg = _one_line(info)
    assert "nocc.c needs `/nonexistent/bin/no-such-cc`, which is not installed" in msg
    assert "build-essential" in msg
    assert not list(out_dir.iterdir())


def test_missing_nm_is_a_one_line_build_error(cache, out_dir, tmp_path, monkeypatch):
    # A PATH with the compiler and assembler but no nm.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (cbuild._compiler(), "as", "ld"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    cbuild.compiler_id()
    monkeypatch.setenv("PATH", str(bin_dir))
    assert shutil.which("nm") is None
    c = _write(tmp_path / "nonm.c", "int add(int a, int b) { return a + b + 10; }\n")
    with pytest.raises(cbuild.BuildError) as info:
        cbuild.build(c, CDEF, out_dir=out_dir)
    msg = _one_line(info)
    assert "nonm.c needs `nm`, which is not installed" in msg
    assert not list(out_dir.iterdir())


def test_compile_timeout_is_a_one_line_build_error(cache, out_dir, tmp_path, monkeypatch):
    cbuild.compiler_id()
    monkeypatch.setattr(cbuild, "TOOL_TIMEOUT", 0.001)     # no compiler starts that fast
    body = "".join(f"    s = s * {i} + x[{i % 64}];\n" for i in range(200))
    c = _write(tmp_path / "slow.c", "int add(int a, int b) { return a + b + 11; }\n"
               "long slow(const long *x) {\n    long s = 0;\n" + body + "    return s;\n}\n")
    with pytest.raises(cbuild.BuildError) as info:
        cbuild.build(c, CDEF, out_dir=out_dir)
    msg = _one_line(info)
    assert "took more than 0.001 s on slow.c" in msg and "simplify the kernel" in msg
    assert not list(out_dir.iterdir())


def test_compile_timeout_from_subprocess_is_reported(cache, out_dir, tmp_path, monkeypatch):
    cbuild.compiler_id()

    def hang(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, kw.get("timeout"))
    monkeypatch.setattr(cbuild.subprocess, "run", hang)
    c = _write(tmp_path / "hang.c", "int add(int a, int b) { return a + b + 12; }\n")
    with pytest.raises(cbuild.BuildError) as info:
        cbuild.build(c, CDEF, out_dir=out_dir)
    assert f"took more than {cbuild.TOOL_TIMEOUT} s on hang.c" in _one_line(info)


def test_unreadable_symbols_raise_build_error(cache, out_dir, tmp_path):
    c = _write(tmp_path / "nosyms.c", "int add(int a, int b) { return a + b + 13; }\n")
    so = cbuild.build(c, CDEF, out_dir=out_dir)
    assert cbuild.kernel_symbols(so) == set()
    cbuild._symbols_path(so).unlink()
    with pytest.raises(cbuild.BuildError, match=r"symbol list of .*cannot be read.*not run"):
        cbuild.kernel_symbols(so)
    with pytest.raises(cbuild.BuildError, match="cannot be read"):
        cbuild.kernel_symbols(tmp_path / "never_built.cpython-311-x86_64-linux-gnu.so")


def test_load_kernel_lib_builds_the_c_file_beside_the_py_file(cache, tmp_path):
    py = tmp_path / "kern.py"
    py.write_text("# stand-in for a target's kernels.py\n")
    _write(tmp_path / "kern.c", """\
        #include <stdint.h>
        void scale(const float *x, int n, float a, float *out) {
            for (int i = 0; i < n; i++) out[i] = a * x[i];
        }
        int64_t dot_u8(const uint8_t *a, const uint8_t *b, int n) {
            int64_t s = 0;
            for (int i = 0; i < n; i++) s += (int64_t)a[i] * b[i];
            return s;
        }
        """)
    cdef = ("void scale(const float *x, int n, float a, float *out);\n"
            "int64_t dot_u8(const uint8_t *a, const uint8_t *b, int n);")
    ffi, lib = cbuild.load_kernel_lib(str(py), cdef)
    x = np.arange(10, dtype=np.float32)
    out = np.full(10, np.nan, dtype=np.float32)
    lib.scale(cbuild.pointer(ffi, x, "float32", (10,), "x"), 10, 2.5,
              cbuild.pointer(ffi, out, "float32", (None,), "out"))
    np.testing.assert_array_equal(out, 2.5 * x)
    a = np.arange(200, dtype=np.uint8)
    b = (255 - a).astype(np.uint8)
    got = lib.dot_u8(cbuild.pointer(ffi, a, "uint8", (200,), "a"),
                     cbuild.pointer(ffi, b, "uint8", (200,), "b"), 200)
    assert got == int(np.dot(a.astype(np.int64), b.astype(np.int64)))


# ------------------------------------------------------------ read_cdef

def test_read_cdef_returns_the_module_level_literal(tmp_path):
    py = tmp_path / "kernels.py"
    py.write_text('import numpy as np\n\nCDEF = """\nint add(int a, int b);\n"""\nX = 1\n')
    assert cbuild.read_cdef(py) == "\nint add(int a, int b);\n"


@pytest.mark.parametrize("body", ["CDEF = 'int a(void);' + ''\n", "def f():\n    CDEF = 'int a(void);'\n",
                                  "X = 1\n"])
def test_read_cdef_requires_a_module_level_string_literal(tmp_path, body):
    py = tmp_path / "kernels.py"
    py.write_text(body)
    with pytest.raises(cbuild.BuildError, match="CDEF as a string literal"):
        cbuild.read_cdef(py)


def test_read_cdef_syntax_error_names_the_line(tmp_path):
    py = tmp_path / "kernels.py"
    py.write_text("CDEF = 'x'\ndef (:\n")
    with pytest.raises(cbuild.BuildError, match="kernels.py:2: syntax error"):
        cbuild.read_cdef(py)


# ------------------------------------------------------------ pointer

@pytest.fixture(scope="module")
def ffi():
    return cffi.FFI()


def test_pointer_accepts_free_dimension(ffi):
    arr = np.zeros((7, 4), np.float32)
    p = cbuild.pointer(ffi, arr, "float32", (None, 4), "queries")
    assert ffi.typeof(p) == ffi.typeof("float *")
    p[5] = 3.0
    assert arr[1, 1] == 3.0    # a view, not a copy


def test_pointer_rejects_non_array(ffi):
    with pytest.raises(TypeError, match="queries must be a numpy array, got list"):
        cbuild.pointer(ffi, [1.0, 2.0], "float32", (None,), "queries")


def test_pointer_rejects_wrong_dtype(ffi):
    with pytest.raises(TypeError, match="codes must have dtype uint8, got int64"):
        cbuild.pointer(ffi, np.zeros((3, 4), np.int64), "uint8", (None, 4), "codes")


@pytest.mark.parametrize("shape", [(3, 5), (3, 4, 1), (12,)])
def test_pointer_rejects_wrong_shape(ffi, shape):
    with pytest.raises(ValueError, match=r"out must have shape \(3, 4\)"):
        cbuild.pointer(ffi, np.zeros(shape, np.float32), "float32", (3, 4), "out")


def test_pointer_shape_message_shows_free_dimension(ffi):
    with pytest.raises(ValueError, match=r"codes must have shape \(\*, 16\), got \(5, 8\)"):
        cbuild.pointer(ffi, np.zeros((5, 8), np.uint8), "uint8", (None, 16), "codes")


def test_pointer_rejects_non_contiguous(ffi):
    arr = np.zeros((4, 8), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="rows must be C-contiguous"):
        cbuild.pointer(ffi, arr, "float32", (4, 4), "rows")


def test_pointer_rejects_fortran_order(ffi):
    arr = np.asfortranarray(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        cbuild.pointer(ffi, arr, "float32", (4, 3), "codebook")


# ------------------------------------------------------------ harness_isa.h

ISA_SOURCE = """\
#include <stdint.h>
#include <immintrin.h>
#include "harness_isa.h"

static float sum_scalar(const float *x, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += x[i];
    return s;
}

HARNESS_TARGET_AVX2 static float sum_avx2(const float *x, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    float s = 0.0f;
    for (int j = 0; j < 8; j++) s += lanes[j];
    for (; i < n; i++) s += x[i];
    return s;
}

HARNESS_TARGET_AVX512 static float sum_avx512(const float *x, int n) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + i));
    float s = _mm512_reduce_add_ps(acc);
    for (; i < n; i++) s += x[i];
    return s;
}

struct tile_config {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

HARNESS_TARGET_AMX static void amx_touch(void) {
    struct tile_config cfg = {0};
    cfg.palette_id = 1;
    cfg.rows[0] = 16;
    cfg.colsb[0] = 64;
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_release();
}

float isa_sum(const float *x, int n, int isa) {
    if (isa >= HARNESS_ISA_AMX) amx_touch();
    if (isa >= HARNESS_ISA_AVX512) return sum_avx512(x, n);
    if (isa >= HARNESS_ISA_AVX2) return sum_avx2(x, n);
    return sum_scalar(x, n);
}
"""


def test_isa_attributes_compile_and_dispatch(cache, tmp_path):
    py = tmp_path / "isa_kernel.py"
    py.write_text("")
    (tmp_path / "isa_kernel.c").write_text(ISA_SOURCE)
    ffi, lib = cbuild.load_kernel_lib(py, "float isa_sum(const float *x, int n, int isa);")
    x = np.arange(37, dtype=np.float32)
    p = cbuild.pointer(ffi, x, "float32", (37,), "x")
    # Every path runs: levels this CPU lacks are built emulated (cap amx by default).
    for level in range(len(isa.LEVELS)):
        assert lib.isa_sum(p, 37, level) == pytest.approx(float(x.sum())), isa.LEVELS[level]



TILECFG_SOURCE = r"""
#include <immintrin.h>
#include <stdint.h>
#include "harness_isa.h"

struct tile_config { uint8_t palette_id, start_row, reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; };

HARNESS_TARGET_AMX void configure(void) {
    struct tile_config cfg = {0};
    cfg.palette_id = 1;
    cfg.rows[0] = 13;
    cfg.colsb[0] = 44;
    _tile_loadconfig(&cfg);
}
"""


def test_a_tile_configuration_is_stored_whole_before_it_is_loaded(tmp_path):
    # GCC 12's own _tile_loadconfig tells the compiler it reads 8 bytes, so the
    # stores of rows and colsb above looked dead and were dropped: real AMX then
    # faulted on stack garbage while the emulator passed. harness_isa.h replaces
    # it; a native build (compiled here on any CPU, never run) must keep both stores.
    src = tmp_path / "cfg.c"
    src.write_text(TILECFG_SOURCE)
    asm = subprocess.run(["gcc", "-S", "-o", "-", *cbuild.flags_for(True, "amx", emulate=False),
                          "-I", str(cbuild.INCLUDE_DIR), str(src)],
                         capture_output=True, text=True, check=True).stdout
    body = asm.split("configure:")[1].split("ldtilecfg")[0]
    assert "$13" in body and "$44" in body, body
