"""Build a kernel's C file through cffi API mode into a content-hashed cache.

Usage (from a target's kernels.py):

    from harness_common.cbuild import load_kernel_lib
    CDEF = "void my_kernel(const float *x, int n);"
    ffi, lib = load_kernel_lib(__file__, CDEF)     # builds kernels.c next to it

The compiled module's name hashes everything that changes the build (C
source, cdef, flags, harness header, compiler, Python and cffi versions), so
a stale build can never load: a changed input is a different file.
"""
import ast
import contextlib
import hashlib
import io
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import cffi
import numpy as np

INCLUDE_DIR = Path(__file__).resolve().parent / "include"

# Harness-owned flags: the kernel chooses ISAs per function with the
# HARNESS_TARGET_* attributes, never through the command line.
KERNEL_FLAGS = ("-O3", "-std=gnu11", "-fPIC", "-Wall", "-Wno-unused-function",
                "-Werror=implicit-function-declaration", "-Werror=return-type")
# The scalar yardstick must stay scalar, or "speedup vs scalar" means nothing.
SCALAR_FLAGS = KERNEL_FLAGS + ("-fno-tree-vectorize", "-fno-tree-slp-vectorize")

_OFFLINE = False         # set in the worker: load prebuilt modules only
_CACHE_DIR = None        # set by the supervisor and the worker; else derived


class BuildError(RuntimeError):
    """The kernel did not compile, or its prebuilt module is missing."""


def configure(cache_dir=None, offline=None, compiler_id=None):
    """Point builds at a cache directory; offline=True forbids compiling.

    The worker cannot run the compiler (no processes), so it is handed the
    supervisor's compiler id to compute identical module names.
    """
    global _CACHE_DIR, _OFFLINE, _COMPILER_ID
    if cache_dir is not None:
        _CACHE_DIR = Path(cache_dir)
    if offline is not None:
        _OFFLINE = offline
    if compiler_id is not None:
        _COMPILER_ID = compiler_id


def cache_dir():
    """Where compiled modules live: configured, $HARNESS_CACHE_DIR, or the workspace's."""
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


def module_name(source, cdef, flags):
    """The content hash that names a build: any input change gives a new name."""
    h = hashlib.sha256()
    header = (INCLUDE_DIR / "harness_isa.h").read_bytes()
    for part in (source, cdef.encode(), " ".join(flags).encode(), header,
                 compiler_id().encode(), sys.version.encode(),
                 (sysconfig.get_config_var("EXT_SUFFIX") or "").encode(),
                 cffi.__version__.encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return "_kernel_" + h.hexdigest()[:20]


def _so_path(name):
    return cache_dir() / (name + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))


def _symbols_path(so_path):
    return Path(so_path).with_name(Path(so_path).name.split(".")[0] + ".symbols")


def _run(cmd, c_path, build):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        # Show the compiler's own lines, with the copied path mapped back.
        text = (proc.stderr + proc.stdout).replace(str(build / c_path.name), str(c_path))
        text = text.replace(str(build) + os.sep, "")
        raise BuildError(f"{c_path} does not compile:\n{text.rstrip()}")
    return proc.stdout


def _compile(c_path, source, cdef, flags, name, out_path):
    """Compile the kernel alone (so its own library calls can be listed), then
    cffi's wrapper from the CDEF declarations, and link the two."""
    build = Path(tempfile.mkdtemp(prefix="build-", dir=cache_dir()))
    try:
        (build / c_path.name).write_bytes(source)
        ffi = cffi.FFI()
        try:
            ffi.cdef(cdef)
        except cffi.CDefError as exc:
            raise BuildError(f"{c_path.with_suffix('.py').name}: CDEF does not parse: {exc}")
        ffi.set_source(name, "#include <stddef.h>\n#include <stdint.h>\n" + cdef)
        wrapper = build / f"{name}.c"
        with contextlib.redirect_stdout(io.StringIO()):   # cffi announces the file
            ffi.emit_c_code(str(wrapper))
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
            "\n".join(sorted({line.split()[0] for line in symbols.splitlines() if line.strip()})))
        os.replace(tmp_out, out_path)   # atomic: a reader sees no half-written module
    finally:
        shutil.rmtree(build, ignore_errors=True)


def kernel_symbols(so_path):
    """The library symbols the kernel's own code (not cffi's wrapper) refers to."""
    path = _symbols_path(so_path)
    return set(path.read_text().split()) if path.exists() else None


def build(c_path, cdef, vectorize=True):
    """Compile `c_path` with `cdef` unless an identical build is cached; returns the .so path."""
    c_path = Path(c_path).resolve()
    try:
        source = c_path.read_bytes()
    except OSError as exc:
        raise BuildError(f"cannot read {c_path}: {exc.strerror}")
    flags = KERNEL_FLAGS if vectorize else SCALAR_FLAGS
    name = module_name(source, cdef, flags)
    out = _so_path(name)
    if out.exists() and (_OFFLINE or _symbols_path(out).exists()):
        return out
    if _OFFLINE:
        raise BuildError(f"{c_path.name} with this CDEF was not prebuilt; kernels.py must pass "
                         f"its module-level CDEF string literal unchanged to load_kernel_lib")
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


def load_module(so_path):
    """Import a built extension from its path (once per process)."""
    name = Path(so_path).name.split(".")[0]
    if name in sys.modules:
        return sys.modules[name]
    loader = importlib.machinery.ExtensionFileLoader(name, str(so_path))
    spec = importlib.util.spec_from_file_location(name, str(so_path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[name] = module
    return module


def load_kernel_lib(py_file, cdef, vectorize=True):
    """(ffi, lib) for the C file beside `py_file` (kernels.py -> kernels.c)."""
    module = load_module(build(Path(py_file).with_suffix(".c"), cdef, vectorize))
    return module.ffi, module.lib


_CTYPES = {"float32": "float", "float64": "double", "uint8": "uint8_t",
           "uint16": "uint16_t", "uint32": "uint32_t", "int32": "int32_t", "int64": "int64_t"}


def pointer(ffi, array, dtype, shape, name):
    """A typed C pointer into `array` after checking type, dtype, shape and layout.

    `shape` may hold None for a free dimension. Errors name the argument, so a
    caller passing the wrong thing learns which and what was expected.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {dtype}, got {array.dtype}")
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    return ffi.cast(_CTYPES[dtype] + " *", ffi.from_buffer(array))
