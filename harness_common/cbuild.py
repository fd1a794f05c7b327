"""Build a kernel's C file through cffi API mode into a content-hashed cache.

Usage (from a target's kernels.py):

    from harness_common.cbuild import load_kernel_lib
    CDEF = "void my_kernel(const float *x, int n);"
    ffi, lib = load_kernel_lib(__file__, CDEF)     # builds kernels.c next to it

The compiled module's name hashes everything that changes the build (C
source, cdef, flags, harness headers, compiler, Python, cffi and SIMDe
versions), so a stale build can never load: a changed input is a different
file.

A level the CPU lacks is built emulated (flags_for): the same source,
compiled for the CPU's own level with -DHARNESS_ISA_NATIVE_MAX, the
higher level's intrinsics coming from SIMDe (the simde-py package) and the
harness's headers. Native or emulated is part of the flags, so of the name.
"""
import ast
import hashlib
import importlib.metadata
import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import cffi
from cffi import recompiler
import numpy as np

from . import isa

INCLUDE_DIR = Path(__file__).resolve().parent / "include"
ISA_LEVELS = ("scalar", "avx2", "avx512", "amx")       # = isa.LEVELS, the -DHARNESS_ISA_MAX values
TOOL_TIMEOUT = 600                                       # seconds one compiler step may take

# Harness-owned flags: the kernel chooses ISAs per function with the
# HARNESS_TARGET_* attributes, never through the command line.
KERNEL_FLAGS = ("-O3", "-std=gnu11", "-fPIC", "-Wall", "-Wno-unused-function",
                "-Werror=implicit-function-declaration", "-Werror=return-type")
# The scalar yardstick must stay scalar, or "speedup vs scalar" means nothing.
SCALAR_FLAGS = KERNEL_FLAGS + ("-fno-tree-vectorize", "-fno-tree-slp-vectorize")

_CACHE_DIR = None        # set by the supervisor; else derived
_PREBUILT = None         # in a worker: {kernels.py path: (open .so fd, module name)}


class BuildError(RuntimeError):
    """The kernel did not compile, or the toolchain is missing or too slow."""


def use_prebuilt(modules):
    """In a worker: load_kernel_lib serves the modules the trial built, opened
    before the worker lost access to files; nothing is compiled or looked up."""
    global _PREBUILT
    _PREBUILT = dict(modules)


def configure(cache_dir=None):
    """Point in-process builds (tests, benchmarks, compare) at a cache directory."""
    global _CACHE_DIR
    if cache_dir is not None:
        _CACHE_DIR = Path(cache_dir)


def cache_dir():
    """Where in-process builds are cached: configured, $HARNESS_CACHE_DIR, or the workspace's."""
    if _CACHE_DIR is not None:
        return _CACHE_DIR
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / ".harness-cache"


def _compiler():
    return (sysconfig.get_config_var("CC") or "gcc").split()[0]


_COMPILER_ID = None


def compiler_id():
    global _COMPILER_ID
    if _COMPILER_ID is None:
        try:
            out = subprocess.run([_compiler(), "--version"], capture_output=True,
                                 text=True, timeout=30).stdout
            _COMPILER_ID = out.splitlines()[0] if out else _compiler()
        except (OSError, subprocess.SubprocessError):
            _COMPILER_ID = _compiler()
    return _COMPILER_ID


def simde_include():
    """SIMDe's header directory (from the simde-py package), for emulated builds."""
    try:
        import simde_py
    except ImportError:
        raise BuildError("building a level this CPU lacks needs SIMDe headers: "
                         "pip install simde-py (or pip install -e .)") from None
    return simde_py.get_include()


def _simde_version():
    try:
        return importlib.metadata.version("simde-py")
    except importlib.metadata.PackageNotFoundError:
        return ""


def flags_for(vectorize, isa_level, emulate=None):
    """Compiler flags for a build capped at `isa_level` (code above it is compiled out).

    Above this CPU's level (`emulate` None: decided from the CPU) the build
    is emulated: compiled for the CPU's level, the rest from SIMDe and the
    harness's emulation headers (harness_isa.h)."""
    base = KERNEL_FLAGS if vectorize else SCALAR_FLAGS
    if emulate is None:
        emulate = isa.emulated(isa_level)
    emu = ()
    if emulate and isa_level != "scalar":
        native = isa.native_level(isa_level)
        if native == isa_level:          # forced on a CPU that has the level: one below
            native = ISA_LEVELS[ISA_LEVELS.index(isa_level) - 1]
        # -Wno-psabi: 64-byte vectors without AVX-512 draw an ABI note per function.
        emu = ("-Wno-psabi", f"-I{simde_include()}",
               f"-DHARNESS_ISA_NATIVE_MAX={ISA_LEVELS.index(native)}")
    return base + emu + (f"-DHARNESS_ISA_MAX={ISA_LEVELS.index(isa_level)}",)


def emulated_flags(flags):
    """The CPU level an emulated build's flags compile for, or None for a native build."""
    for f in flags:
        if f.startswith("-DHARNESS_ISA_NATIVE_MAX="):
            return ISA_LEVELS[int(f.split("=", 1)[1])]
    return None


def module_name(source, cdef, flags):
    """The content hash that names a build: any input change gives a new name."""
    h = hashlib.sha256()
    headers = b"".join(p.name.encode() + b"\0" + p.read_bytes()
                       for p in sorted(INCLUDE_DIR.glob("*.h")))
    for part in (source, cdef.encode(), " ".join(flags).encode(), headers,
                 compiler_id().encode(), sys.version.encode(),
                 (sysconfig.get_config_var("EXT_SUFFIX") or "").encode(),
                 cffi.__version__.encode(), _simde_version().encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return "_kernel_" + h.hexdigest()[:20]


def _so_path(name):
    return cache_dir() / (name + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))


def _symbols_path(so_path):
    return Path(so_path).with_name(Path(so_path).name.split(".")[0] + ".symbols")


def _run(cmd, c_path, build):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except FileNotFoundError:
        raise BuildError(f"building {c_path.name} needs `{cmd[0]}`, which is not installed "
                         f"(install gcc and binutils, e.g. apt-get install build-essential)")
    except subprocess.TimeoutExpired:
        raise BuildError(f"`{cmd[0]}` took more than {TOOL_TIMEOUT} s on {c_path.name}; "
                         f"simplify the kernel (huge unrolled loops or tables slow the compiler)")
    if proc.returncode != 0:
        if cmd[0] == "nm":
            raise BuildError(f"cannot list the library calls of {c_path.name}: nm failed: "
                             f"{proc.stderr.strip()}")
        # Show the compiler's own lines, with the copied path mapped back.
        text = (proc.stderr + proc.stdout).replace(str(build / c_path.name), str(c_path))
        text = text.replace(str(build) + os.sep, "")
        raise BuildError(f"{c_path} does not compile:\n{text.rstrip()}{_emulation_hint(cmd, text)}")
    return proc.stdout


def _emulation_hint(cmd, text):
    """In an emulated build, name the intrinsics nothing emulates (GCC's own
    message for them is a bare "target specific option mismatch")."""
    native = emulated_flags(cmd)
    if native is None or "target specific option mismatch" not in text:
        return ""
    names = sorted(set(re.findall(r"always_inline[’'] [‘'](_\w+)[’']", text)))
    what = ", ".join(names) or "an intrinsic"
    return (f"\nnote: this build emulates the levels above {native} (this CPU has no more); "
            f"{what} has no emulation in SIMDe {_simde_version() or '?'} or "
            f"harness_common/include/harness_simde_shims.h: use an equivalent intrinsic, or "
            f"add a shim there (it is proven correct here, timed only on real hardware)")


def _compile(c_path, source, cdef, flags, name, out_path):
    """Compile the kernel alone (so its own library calls can be listed), then
    cffi's wrapper from the CDEF declarations, and link the two."""
    build = Path(tempfile.mkdtemp(prefix="build-", dir=out_path.parent))
    try:
        (build / c_path.name).write_bytes(source)
        ffi = cffi.FFI()
        try:
            ffi.cdef(cdef)
        except cffi.CDefError as exc:
            raise BuildError(f"{c_path.with_suffix('.py').name}: CDEF does not parse: {exc}")
        wrapper = build / f"{name}.c"
        # make_c_source, not emit_c_code: the latter prints, and builds run in threads
        # (redirecting stdout there is process-wide and would swallow the trial's output).
        recompiler.make_c_source(ffi, name, "#include <stddef.h>\n#include <stdint.h>\n" + cdef,
                                 str(wrapper), verbose=False)
        cc, inc = _compiler(), ["-I", str(INCLUDE_DIR), "-I", str(build)]
        _run([cc, "-c", *flags, *inc, str(build / c_path.name), "-o", str(build / "kernel.o")],
             c_path, build)
        symbols = _run(["nm", "--undefined-only", "--format=posix", str(build / "kernel.o")],
                       c_path, build)
        _run([cc, "-c", *flags, "-w", "-I", sysconfig.get_paths()["include"], *inc, str(wrapper),
              "-o", str(build / "wrapper.o")], c_path, build)
        tmp_out = build / out_path.name
        _run([cc, "-shared", str(build / "wrapper.o"), str(build / "kernel.o"), "-o", str(tmp_out)],
             c_path, build)
        _symbols_path(out_path).write_text(
            "\n".join(sorted({line.split()[0] for line in symbols.splitlines() if line.strip()})) + "\n")
        os.replace(tmp_out, out_path)   # atomic: a reader sees no half-written module
    finally:
        shutil.rmtree(build, ignore_errors=True)


def kernel_symbols(so_path):
    """The library symbols the kernel's own code (not cffi's wrapper) refers to."""
    try:
        return set(_symbols_path(so_path).read_text().split())
    except OSError as exc:
        raise BuildError(f"the symbol list of {Path(so_path).name} cannot be read "
                         f"({exc.strerror}); the kernel cannot be checked, so it is not run")


def build(c_path, cdef, vectorize=True, isa_level="amx", out_dir=None, emulate=None):
    """Compile `c_path` with `cdef`; returns the .so path.

    With `out_dir` (a trial) the module is always compiled afresh there: nothing
    a trial times comes from a cache the agent could have written. Without it
    (tests, benchmarks, compare) an identical cached build is reused. `emulate`
    True builds `isa_level` emulated even where the CPU has it (tests that hold
    the emulator against the hardware)."""
    c_path = Path(c_path).resolve()
    try:
        source = c_path.read_bytes()
    except OSError as exc:
        raise BuildError(f"cannot read {c_path}: {exc.strerror}")
    flags = flags_for(vectorize, isa_level, emulate)
    name = module_name(source, cdef, flags)
    if out_dir is not None:
        out = Path(out_dir) / (name + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
        _compile(c_path, source, cdef, flags, name, out)
        return out
    out = _so_path(name)
    if out.exists() and _symbols_path(out).exists():
        return out
    cache_dir().mkdir(parents=True, exist_ok=True)
    _compile(c_path, source, cdef, flags, name, out)
    return out


def read_cdef(py_path):
    """The module-level CDEF string literal of a kernels.py, read without running it."""
    py_path = Path(py_path)
    try:
        tree = ast.parse(py_path.read_text(errors="replace"))
    except SyntaxError as exc:
        raise BuildError(f"{py_path.name}:{exc.lineno}: syntax error: {exc.msg}")
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CDEF"
                                                for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    raise BuildError(f"{py_path.name} must define CDEF as a string literal at module level "
                     f"(the harness builds the C file with it before any kernel code runs)")


def load_module(so_path, name=None):
    """Import a built extension from its path (once per process)."""
    name = name or Path(so_path).name.split(".")[0]
    if name in sys.modules:
        return sys.modules[name]
    loader = importlib.machinery.ExtensionFileLoader(name, str(so_path))
    spec = importlib.util.spec_from_file_location(name, str(so_path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[name] = module
    return module


_AMX_ASKED = False


def _amx_permission(level):
    """In-process (tests, benchmarks): Linux's per-process AMX permission,
    asked once, where AMX runs natively. Trial workers ask in their setup."""
    global _AMX_ASKED
    if level == "amx" and not _AMX_ASKED and not isa.emulated("amx"):
        _AMX_ASKED = True
        isa.request_amx_permission()


def load_kernel_lib(py_file, cdef, vectorize=True):
    """(ffi, lib) for the C file beside `py_file` (kernels.py -> kernels.c)."""
    if _PREBUILT is not None:
        if str(py_file) not in _PREBUILT:
            raise BuildError(f"{py_file} was not built by this trial; kernels.py must call "
                             f"load_kernel_lib(__file__, CDEF)")
        fd, name = _PREBUILT[str(py_file)]
        module = load_module(f"/proc/self/fd/{fd}", name)
    else:
        level = os.environ.get("HARNESS_ISA") or "amx"
        level = level if level in ISA_LEVELS else "amx"
        _amx_permission(level)
        module = load_module(build(Path(py_file).with_suffix(".c"), cdef, vectorize, level))
    return module.ffi, module.lib


_CTYPES = {"float32": "float", "float64": "double", "uint8": "uint8_t",
           "uint16": "uint16_t", "uint32": "uint32_t", "int32": "int32_t", "int64": "int64_t"}
_DTYPES = {name: np.dtype(name) for name in _CTYPES}
_POINTER_TYPES = {name: c + " *" for name, c in _CTYPES.items()}


def pointer(ffi, array, dtype, shape, name):
    """A typed C pointer into `array` after checking type, dtype, shape and layout.

    `shape` may hold None for a free dimension. Errors name the argument, so a
    caller passing the wrong thing learns which and what was expected. Kernels
    call this on every call, and single-query calls are tens of microseconds,
    so the checks avoid building objects (dtype from its name, flags views).
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.dtype != _DTYPES[dtype]:
        raise TypeError(f"{name} must have dtype {dtype}, got {array.dtype}")
    got = array.shape
    fits = len(got) == len(shape)
    for want_n, got_n in zip(shape, got):
        fits = fits and (want_n is None or want_n == got_n)
    if not fits:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    return ffi.cast(_POINTER_TYPES[dtype], ffi.from_buffer(array))
