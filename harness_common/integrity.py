"""Rules a trial enforces on kernel code before any of it runs.

1. kernels.c uses only allowed headers (as the preprocessor resolves them,
   not only as written) and no forbidden construct (inline asm, load-time
   constructors, Python's C API, /proc paths, ...), and its
   built module calls no library function outside an allowlist: threads,
   processes, clocks, files and dynamic loading all need such a call.
2. kernels.py imports only allowed modules and does not reach for the
   interpreter's internals (eval, frames, gc, monkeypatching modules).

Each violation names the file, the line and the rule. The other half of a
trial's integrity, immutable files against the ledger's anchor, is immutable.py.
"""
import ast
import re
import subprocess
from pathlib import Path


class IntegrityError(RuntimeError):
    """A rule was broken; the message names the file and what to do."""


# ------------------------------------------------------------ kernels.c

ALLOWED_INCLUDES = {"immintrin.h", "x86intrin.h", "stdint.h", "stddef.h", "stdbool.h",
                    "string.h", "math.h", "float.h", "limits.h", "stdlib.h", "assert.h",
                    "harness_isa.h"}

_C_RULES = [
    (re.compile(r"\b(asm|__asm__|__asm)\b"), "inline assembly"),
    (re.compile(r"\b(constructor|destructor|ifunc|section|naked|alias|weakref|init_priority)\b"),
     "load-time or placement attributes (constructor, destructor, ifunc, section, alias)"),
    (re.compile(r"\b_?Py[A-Z_]\w*"), "Python's C API"),
    (re.compile(r"##|%:"), "token pasting and the %: digraph (they hide identifiers from review)"),
    (re.compile(r"\b(pthread_\w+|thrd_create|fork|vfork|clone|clone3|execv\w*|execl\w*|system|"
                r"popen|posix_spawn\w*|dlopen|dlsym|dlmopen|syscall|mmap|mprotect|mremap|"
                r"sigaction|signal|setitimer|alarm|timer_create|clock_gettime|gettimeofday|"
                r"clock_settime|fopen|open|openat|ptrace|prctl|arch_prctl|setrlimit|"
                r"sched_setaffinity|getenv|environ|atexit)\b"),
     "a system facility (threads, processes, clocks, files, signals, dynamic loading)"),
]
_STRING_RULE = re.compile(r"/proc|/dev/|/sys/|clear_refs")


def _splice(text):
    """Join backslash-continued lines as the preprocessor does (so a forbidden
    word split across lines is still seen), keeping every line's number."""
    out, pending = [], []
    for line in text.split("\n"):
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        out.append("".join(pending) + line)
        out += [""] * len(pending)
        pending = []
    if pending:
        out.append("".join(pending))
    return "\n".join(out)


def _strip_c(text):
    """Comments blanked (line numbers kept); string literals returned separately."""
    out, strings, i, n = [], [], 0, len(text)
    while i < n:
        two = text[i:i + 2]
        if two == "//":
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif two == "/*":
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text[i] in "\"'":
            q, j = text[i], i + 1
            while j < n and text[j] != q and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            strings.append((text.count("\n", 0, i) + 1, text[i:j]))
            out.append(q + " " * (j - i - 2) + q if j - i >= 2 else text[i:j])
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out), strings


def scan_c(path):
    """Violations in a kernel C file, as 'file:line: rule (text)' strings."""
    path = Path(path)
    text = path.read_text(errors="replace")
    text = _splice(text)
    code, strings = _strip_c(text)
    raw = text.splitlines()
    found = []
    for lineno, line in enumerate(code.splitlines(), 1):
        # Blanked strings hide "header" names, so read those from the raw line.
        inc = re.match(r'\s*#\s*include\s*[<"]([^>"]+)[>"]', raw[lineno - 1]) \
            if re.match(r"\s*#\s*include", line) else None
        if inc:
            if inc.group(1) not in ALLOWED_INCLUDES:
                found.append(f"{path.name}:{lineno}: #include <{inc.group(1)}> is not allowed "
                             f"(allowed: {', '.join(sorted(ALLOWED_INCLUDES))})")
            continue
        for rule, what in _C_RULES:
            m = rule.search(line)
            if m:
                found.append(f"{path.name}:{lineno}: {what} is not allowed ({m.group(0)!r})")
    for lineno, s in strings:
        if _STRING_RULE.search(s):
            found.append(f"{path.name}:{lineno}: paths under /proc, /dev or /sys are not allowed ({s})")
    return found


class PreprocessorError(RuntimeError):
    """The compiler could not be run, so the include check has no answer."""


def _system_include_dirs(cc):
    """The compiler's own <...> search directories, as `cc -E -v` lists them."""
    try:
        proc = subprocess.run([cc, "-E", "-v", "-x", "c", "/dev/null", "-o", "/dev/null"],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PreprocessorError(f"cannot run {cc} to check kernel includes: {exc}")
    dirs, listing = [], False
    for line in proc.stderr.splitlines():
        if line.startswith("#include ") and line.endswith("search starts here:"):
            listing = True
        elif line.startswith("End of search list"):
            listing = False
        elif listing and line.startswith(" "):
            dirs.append(line.strip())
    if proc.returncode != 0 or not dirs:
        raise PreprocessorError(f"{cc} -E -v did not list its include directories "
                                f"(exit status {proc.returncode}); kernel includes unchecked")
    return dirs


def check_includes(c_path, include_dirs, allowed=ALLOWED_INCLUDES, flags=(), cc="gcc"):
    """Headers the preprocessor actually includes from the kernel file, checked.

    scan_c reads #include lines as text; a macro (#include HDR) or a path
    ("/tmp/x/stdint.h") gets past it, so this asks the compiler (-H) which
    files the kernel itself included. Each must have an allowed name and sit
    directly in a system include directory or one of `include_dirs`. `flags`
    should be the build's own (its -D values decide which #if branches, and
    so which includes, exist). Raises PreprocessorError if cc cannot run.
    """
    c_path = Path(c_path).resolve()
    trusted = {Path(d).resolve() for d in [*_system_include_dirs(cc), *include_dirs]}
    cmd = [cc, "-E", "-H", *flags, *[f"-I{Path(d).resolve()}" for d in include_dirs],
           str(c_path), "-o", "/dev/null"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PreprocessorError(f"cannot run {cc} to check kernel includes: {exc}")
    found = []
    for line in proc.stderr.splitlines():
        # "<dots> <path>": one dot per level; depth 1 is the kernel's own #include.
        m = re.match(r"^(\.+) (.+)$", line)
        if not m or len(m.group(1)) != 1:
            continue
        shown = m.group(2)
        name, real = Path(shown).name, Path(c_path.parent, shown).resolve()
        if name not in allowed:
            found.append(f"{c_path.name}: includes <{name}> ({shown}), which is not allowed "
                         f"(allowed: {', '.join(sorted(allowed))})")
        elif real.parent not in trusted:
            found.append(f"{c_path.name}: includes <{name}> from {shown}, which is not the "
                         f"system or harness header of that name (headers must come from: "
                         f"{', '.join(sorted(map(str, trusted)))})")
    if proc.returncode != 0:
        # Some includes may never have been reached: the check cannot pass.
        errors = [l for l in proc.stderr.splitlines() if "error" in l] or [f"exit {proc.returncode}"]
        found.append(f"{c_path.name}: does not preprocess, so its includes cannot be "
                     f"checked: {errors[0].replace(str(c_path), c_path.name)}")
    return found


# Library functions a kernel's compiled module may call (version suffixes stripped).
_ALLOWED_SYMBOLS = {"memcpy", "memmove", "memset", "memcmp", "malloc", "calloc", "realloc",
                    "free", "posix_memalign", "aligned_alloc", "qsort", "abort",
                    "__stack_chk_fail", "__assert_fail", "__memcpy_chk", "__memset_chk",
                    "__memmove_chk", "__cxa_finalize", "_GLOBAL_OFFSET_TABLE_",
                    "_ITM_deregisterTMCloneTable",
                    "_ITM_registerTMCloneTable", "__gmon_start__"}
_MATH_SYMBOL = re.compile(r"^(sqrt|exp|exp2|expm1|log|log2|log1p|pow|fabs|floor|ceil|round|lround|"
                          r"lrint|llrint|rint|nearbyint|fma|fmin|fmax|trunc|cbrt|sin|cos|tan|"
                          r"tanh|erf|hypot|ldexp|frexp|copysign)[fl]?$")


def check_symbols(symbols, source_name):
    """Library functions the kernel's own object refers to beyond the allowlist.

    `symbols` comes from compiling kernels.c alone (cbuild.kernel_symbols), so
    cffi's wrapper and its Python C-API calls are not in it: anything else
    the kernel calls is named here."""
    extra = sorted(s.split("@")[0] for s in symbols
                   if s.split("@")[0] not in _ALLOWED_SYMBOLS and not _MATH_SYMBOL.match(s.split("@")[0]))
    if extra:
        return [f"{source_name}: calls library function(s) {', '.join(extra)}; kernels may call "
                f"only memory, math and string helpers"]
    return []


# ------------------------------------------------------------ kernels.py

ALLOWED_IMPORTS = {"numpy", "math", "functools", "itertools", "collections", "dataclasses",
                   "typing", "enum", "harness_common.cbuild"}
CBUILD_NAMES = {"load_kernel_lib", "pointer"}
# Reaching these from kernel code means reaching past the API into the process.
_FORBIDDEN_NAMES = {"__import__", "eval", "exec", "compile", "open", "globals", "locals", "vars",
                    "setattr", "delattr", "breakpoint", "input", "__builtins__", "sys", "os",
                    "gc", "inspect", "ctypes", "threading", "builtins", "importlib", "subprocess",
                    "multiprocessing", "signal", "modules"}
_FORBIDDEN_ATTRS = _FORBIDDEN_NAMES | {
    "__dict__", "__class__", "__subclasses__", "__globals__", "__code__", "__closure__",
    "__bases__", "__mro__", "__getattribute__", "f_back", "f_globals", "f_locals", "gi_frame",
    "tb_frame", "ctypeslib", "dlopen", "__self__", "__func__", "__module__", "__loader__", "__spec__"}


def scan_python(path):
    """Violations in a kernel's Python face, as 'file:line: rule' strings.

    A static net for the common ways out of the API (imports, eval, frames,
    monkeypatching); the worker's sandbox and the supervisor's checks hold
    without it, this names the line first."""
    path = Path(path)
    try:
        tree = ast.parse(path.read_text(errors="replace"), filename=path.name)
    except SyntaxError as exc:
        return [f"{path.name}:{exc.lineno}: syntax error: {exc.msg}"]
    found, modules = [], set()

    def bad(node, text):
        found.append(f"{path.name}:{node.lineno}: {text}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names}
            for a in node.names:
                if a.name not in ALLOWED_IMPORTS and a.name.split(".")[0] != "numpy":
                    bad(node, f"import of {a.name!r} is not allowed "
                              f"(allowed: {', '.join(sorted(ALLOWED_IMPORTS))})")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {a.name for a in node.names}
            if node.level:
                bad(node, "relative imports are not allowed")
            elif module in ("harness_common", "harness_common.cbuild"):
                allowed = {"cbuild"} if module == "harness_common" else CBUILD_NAMES
                for name in sorted(names - allowed):
                    bad(node, f"from {module} import {name} is not allowed (allowed: "
                              f"{', '.join(sorted(allowed))})")
            elif module not in ALLOWED_IMPORTS and module.split(".")[0] != "numpy":
                bad(node, f"import from {module!r} is not allowed "
                          f"(allowed: {', '.join(sorted(ALLOWED_IMPORTS))})")
            for name in sorted(names & _FORBIDDEN_ATTRS):
                bad(node, f"importing {name!r} is not allowed")
        elif isinstance(node, ast.Name) and node.id in _FORBIDDEN_NAMES:
            bad(node, f"use of {node.id!r} is not allowed")
        elif isinstance(node, ast.Attribute) and node.attr in _FORBIDDEN_ATTRS:
            bad(node, f"attribute {node.attr!r} is not allowed")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value in _FORBIDDEN_ATTRS:
            bad(node, f"the string {node.value!r} is not allowed (getattr by name is still access)")
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in modules:
                bad(t, f"assigning to module attribute {t.value.id}.{t.attr} is not allowed "
                       f"(no monkeypatching)")
    return sorted(set(found), key=lambda v: int(v.split(":")[1]))
