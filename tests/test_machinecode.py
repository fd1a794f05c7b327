"""The ISA cap on machine code and the include check on the preprocessor.

machinecode.above_cap flags VEX, EVEX and AMX instructions above each level
(naming the function), and refuses to answer without objdump;
integrity.check_includes catches headers that a text scan cannot see; the
project's kernels pass both at the scalar cap, and an unguarded
HARNESS_TARGET_AVX2 stops a scalar-capped build with a readable error.
"""
import subprocess
import sysconfig
import textwrap
from pathlib import Path

import cffi
import pytest

from harness_common import cbuild, integrity, machinecode
from harness_common.isa import LEVELS

ROOT = Path(__file__).resolve().parent.parent
TARGETS = sorted(p for p in (ROOT / "targets").iterdir() if (p / "target.toml").exists())

# One function per instruction class, each with the lowest level allowed to hold it.
SOURCES = {
    "scalar": """
        #include <math.h>
        #include <string.h>
        void plain(float *x, int n) { for (int i = 0; i < n; i++) x[i] = sqrtf(x[i]) + 1.0f; }
        void copy(char *a, const char *b, int n) { memcpy(a, b, n); }
    """,
    "avx2": """
        #include <immintrin.h>
        __attribute__((target("avx2,fma"))) void scan256(float *x, int n) {
            for (int i = 0; i + 8 <= n; i += 8)
                _mm256_storeu_ps(x + i, _mm256_fmadd_ps(_mm256_loadu_ps(x + i),
                                                        _mm256_set1_ps(2.0f), _mm256_set1_ps(1.0f)));
        }
    """,
    "avx512": """
        #include <immintrin.h>
        __attribute__((target("avx512f"))) void scan512(float *x, int n) {
            for (int i = 0; i + 16 <= n; i += 16)
                _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_set1_ps(1.0f)));
        }
    """,
    "amx": """
        #include <immintrin.h>
        __attribute__((target("amx-tile"))) void tiles(void) { _tile_zero(0); _tile_release(); }
    """,
}
FUNCTION = {"avx2": "scan256", "avx512": "scan512", "amx": "tiles"}
WORD = {"avx2": "VEX-encoded", "avx512": "AVX-512 (EVEX)", "amx": "AMX tile"}


def _build_all(jobs):
    """Compile (output, sources, flags) jobs in parallel: the tests stay a few seconds."""
    procs = [subprocess.Popen(["gcc", "-O3", "-fPIC", "-shared", *flags, *map(str, srcs),
                               "-o", str(out)],
                              stderr=subprocess.PIPE, text=True) for out, srcs, flags in jobs]
    for p in procs:
        assert p.wait() == 0, p.stderr.read()


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """scalar.so has no vector code; isa.so has one function per class."""
    d = tmp_path_factory.mktemp("isa")
    (d / "scalar.c").write_text(textwrap.dedent(SOURCES["scalar"]))
    (d / "isa.c").write_text("".join(textwrap.dedent(SOURCES[k]) for k in FUNCTION))
    _build_all([(d / "scalar.so", [d / "scalar.c"], ()), (d / "isa.so", [d / "isa.c"], ())])
    return {"scalar": d / "scalar.so", **{k: d / "isa.so" for k in FUNCTION}}


@pytest.fixture(scope="module")
def project_modules(tmp_path_factory):
    """Each target's kernels.c built with the harness flags at the scalar cap."""
    d = tmp_path_factory.mktemp("targets")
    jobs = {(t.name, cap): (d / f"{t.name}-{cap}.so", [t / "kernels.c"],
                            (*cbuild.KERNEL_FLAGS, f"-DHARNESS_ISA_MAX={cap}",
                             "-I", str(cbuild.INCLUDE_DIR)))
            for t in TARGETS for cap in (0,)}
    _build_all(jobs.values())
    return {key: job[0] for key, job in jobs.items()}


# ------------------------------------------------------------ above_cap

@pytest.mark.parametrize("kind", ["avx2", "avx512", "amx"])
@pytest.mark.parametrize("cap", LEVELS)
def test_above_cap_flags_exactly_the_levels_above(modules, kind, cap):
    found = [f for f in machinecode.above_cap(modules[kind], cap) if WORD[kind] in f]
    if LEVELS.index(kind) <= LEVELS.index(cap):
        assert found == []
    else:
        assert len(found) == 1
        assert found[0].startswith("kernels.c: ")
        assert f"in <{FUNCTION[kind]}>" in found[0] and f"capped at {cap}" in found[0]
        assert f"HARNESS_ISA_LEVEL_{kind.upper()}" in found[0]


def test_baseline_build_is_clean_at_scalar(modules):
    assert machinecode.above_cap(modules["scalar"], "scalar") == []


def test_cffi_wrapper_is_clean_at_scalar(tmp_path):
    """cffi's generated wrapper, built and linked as cbuild does, adds no vector code."""
    cdef = "void plain(float *x, int n);"
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    ffi.set_source("_kernel_mc", "#include <stddef.h>\n#include <stdint.h>\n" + cdef)
    ffi.emit_c_code(str(tmp_path / "wrapper.c"))
    (tmp_path / "kernels.c").write_text(textwrap.dedent(SOURCES["scalar"]))
    _build_all([(tmp_path / "k.so", [tmp_path / "wrapper.c", tmp_path / "kernels.c"],
                 (*cbuild.KERNEL_FLAGS, "-w", "-I", sysconfig.get_paths()["include"]))])
    assert machinecode.above_cap(tmp_path / "k.so", "scalar") == []


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: p.name)
def test_project_kernels_build_clean_at_scalar_cap(project_modules, target):
    assert machinecode.above_cap(project_modules[target.name, 0], "scalar") == []


def test_unguarded_target_attribute_fails_below_cap(tmp_path):
    c = tmp_path / "k.c"
    c.write_text('#include "harness_isa.h"\n'
                 'HARNESS_TARGET_AVX2 static int f(int x) { return x + 1; }\n'
                 'int g(int x) { return f(x); }\n')
    proc = subprocess.run(["gcc", "-c", *cbuild.KERNEL_FLAGS, "-DHARNESS_ISA_MAX=0",
                           "-I", str(cbuild.INCLUDE_DIR), str(c), "-o", str(tmp_path / "k.o")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "k.c:2:" in proc.stderr
    assert "#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2" in proc.stderr
    found = integrity.check_includes(c, [cbuild.INCLUDE_DIR], flags=("-DHARNESS_ISA_MAX=0",))
    assert len(found) == 1 and "does not preprocess" in found[0] and "k.c:2:" in found[0]


def test_wrapped_instruction_bytes_are_joined(monkeypatch):
    listing = ("\nx.so:     file format elf64-x86-64\n\n\n"
               "Disassembly of section .text:\n\n"
               "0000000000001140 <scan512>:\n"
               "    1145:\t62 f2 7d 48 18 0d b1 \tvbroadcastss 0xeb1(%rip),%zmm1\n"
               "    114c:\t0e 00 00 \n"
               "    1150:\tc3                   \tret\n")
    monkeypatch.setattr(machinecode, "_disassemble", lambda path: listing)
    insns = machinecode.instructions("x.so")
    assert [(f, len(b)) for f, b, _ in insns] == [("scan512", 10), ("scan512", 1)]
    assert "in <scan512>" in machinecode.above_cap("x.so", "avx2")[0]


def test_missing_objdump_raises(modules, monkeypatch):
    monkeypatch.setattr(machinecode, "OBJDUMP", "objdump-not-installed")
    with pytest.raises(machinecode.MachineCodeError, match="cannot run objdump-not-installed"):
        machinecode.above_cap(modules["avx2"], "scalar")


def test_unreadable_module_raises(tmp_path):
    bad = tmp_path / "bad.so"
    bad.write_text("not an object")
    with pytest.raises(machinecode.MachineCodeError):
        machinecode.above_cap(bad, "scalar")
    with pytest.raises(ValueError):
        machinecode.above_cap(bad, "sse4")


# ------------------------------------------------------------ check_includes

def _c(tmp_path, body):
    path = tmp_path / "kernels.c"
    path.write_text(textwrap.dedent(body))
    return path


def _check(path):
    return integrity.check_includes(path, [cbuild.INCLUDE_DIR], flags=cbuild.KERNEL_FLAGS)


def test_check_includes_catches_macro_include(tmp_path):
    found = _check(_c(tmp_path, """
        #include <stdint.h>
        #define HDR <unistd.h>
        #include HDR
    """))
    assert len(found) == 1
    assert found[0].startswith("kernels.c: includes <unistd.h> (/usr/include/unistd.h), "
                               "which is not allowed")


def test_check_includes_catches_header_by_path(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "stdint.h").write_text("typedef int fake_t;\n")
    found = _check(_c(tmp_path, f"""
        #include "{tmp_path}/x/stdint.h"
        #include "x/stdint.h"
        #include <linux/stddef.h>
    """))
    assert len(found) == 3, found
    assert all("which is not the system or harness header" in f for f in found)
    assert f"{tmp_path}/x/stdint.h" in found[0]


def test_check_includes_catches_disallowed_header(tmp_path):
    found = _check(_c(tmp_path, """
        #include <math.h>
        #include <stdio.h>
    """))
    assert len(found) == 1 and "<stdio.h>" in found[0]


def test_check_includes_refuses_without_compiler(tmp_path):
    with pytest.raises(integrity.PreprocessorError, match="cannot run"):
        integrity.check_includes(_c(tmp_path, "#include <math.h>\n"), [], cc="no-such-cc")


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: p.name)
@pytest.mark.parametrize("cap", [0, 1])
def test_project_kernels_pass_check_includes(target, cap):
    assert integrity.check_includes(target / "kernels.c", [cbuild.INCLUDE_DIR],
                                    flags=cbuild.KERNEL_FLAGS + (f"-DHARNESS_ISA_MAX={cap}",)) == []
