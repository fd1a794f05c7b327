"""harness_common.integrity: the static scans of kernels.c / kernels.py flag
every forbidden construct with its line (and nothing in comments), the
project's own kernels pass them, the symbol check sees a forbidden library
call (immutable files: test_immutable.py)."""
import textwrap
from pathlib import Path

import pytest

from harness_common import cbuild, integrity

ROOT = Path(__file__).resolve().parent.parent
TARGETS = sorted(p for p in (ROOT / "targets").iterdir() if (p / "target.toml").exists())


def _c(tmp_path, body, name="kernels.c"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def _py(tmp_path, body, name="kernels.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def _lines(found):
    return [int(f.split(":")[1]) for f in found]


# ------------------------------------------------------------ scan_c

FORBIDDEN_C = [
    ("inline_asm", '    __asm__ volatile("nop");', "inline assembly"),
    ("plain_asm", '    asm("pause");', "inline assembly"),
    ("constructor", "__attribute__((constructor)) static void early(void) {}", "load-time"),
    ("destructor", "__attribute__((destructor)) static void late(void) {}", "load-time"),
    ("py_identifier", "    PyObject *obj = 0;", "Python's C API"),
    ("py_private", "    _Py_Dealloc(0);", "Python's C API"),
    ("token_pasting", "#define CAT(a, b) a##b", "token pasting"),
    ("pthread_create", "    pthread_create(0, 0, 0, 0);", "system facility"),
    ("syscall", "    syscall(39);", "system facility"),
    ("mmap", "    void *p = mmap(0, 4096, 3, 34, -1, 0);", "system facility"),
    ("clock_gettime", "    clock_gettime(1, 0);", "system facility"),
    ("fopen", '    void *f = fopen(name, mode);', "system facility"),
    ("getenv", "    char *e = getenv(name);", "system facility"),
    ("include_pthread", "#include <pthread.h>", "#include <pthread.h> is not allowed"),
    ("include_python", '#include "Python.h"', "#include <Python.h> is not allowed"),
    ("include_unistd", "#include <unistd.h>", "#include <unistd.h> is not allowed"),
    ("proc_string", '    const char *p = "/proc/self/clear_refs";', "/proc"),
    ("dev_string", '    const char *p = "/dev/mem";', "/proc"),
]


@pytest.mark.parametrize("line, rule", [(l, r) for _, l, r in FORBIDDEN_C],
                         ids=[i for i, _, _ in FORBIDDEN_C])
def test_scan_c_flags_forbidden_construct_with_line(tmp_path, line, rule):
    path = _c(tmp_path, "#include <stdint.h>\n\n/* a kernel */\n" + line + "\n\nint ok(void) { return 0; }\n")
    found = integrity.scan_c(path)
    assert len(found) == 1, found
    assert found[0].startswith("kernels.c:4: ")
    assert rule in found[0]


def test_scan_c_reports_each_violation_on_its_own_line(tmp_path):
    path = _c(tmp_path, """\
        #include <stdint.h>
        #include <pthread.h>
        int f(int x) {
            __asm__("nop");
            return x;
        }
        static const char *p = "/proc/self/clear_refs";
        """)
    assert _lines(integrity.scan_c(path)) == [2, 4, 7]


def test_scan_c_ignores_words_in_comments(tmp_path):
    path = _c(tmp_path, """\
        #include <stdint.h>
        #include "harness_isa.h"
        // no asm, no pthread_create, no syscall, no mmap, no fopen, no PyObject here
        /* __attribute__((constructor)) and a##b and clock_gettime are
           forbidden; #include <pthread.h> too; see "/proc/self/clear_refs" */
        int f(int x) { return x; /* asm */ }  // fopen
        """)
    assert integrity.scan_c(path) == []


def test_scan_c_keeps_line_numbers_after_block_comment(tmp_path):
    path = _c(tmp_path, "/*\n\n\n*/\nint f(void) { return 0; }\nint g(void) { asm(\"nop\"); return 0; }\n")
    assert _lines(integrity.scan_c(path)) == [6]


def test_scan_c_ignores_forbidden_words_inside_plain_strings(tmp_path):
    path = _c(tmp_path, 'static const char *msg = "do not fopen or asm";\n')
    assert integrity.scan_c(path) == []


def test_scan_c_allows_the_intrinsics_headers(tmp_path):
    path = _c(tmp_path, "".join(f"#include <{h}>\n" for h in sorted(integrity.ALLOWED_INCLUDES)))
    assert integrity.scan_c(path) == []


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
@pytest.mark.parametrize("name", ["kernels.c", "baseline.c"])
def test_project_c_files_pass_scan_c(target, name):
    assert integrity.scan_c(target / name) == []


# Backslash-newline splices lines before C tokenization, and %:%: is the digraph
# spelling of ##: both could hide an identifier from a line-by-line regex scan,
# while gcc still compiles the inline asm or Python C-API call.
SPLICED_C = [
    ("spliced_asm", "int f(int x) {\n    __as\\\nm__ volatile(\"\" : \"+r\"(x));\n    return x;\n}\n"),
    ("spliced_py_api", "int Py\\\nRun_SimpleString(const char *);\n"
                       "int g(void) { return Py\\\nRun_SimpleString(\"pass\"); }\n"),
    ("digraph_pasting", "#define CAT(a, b) a %:%: b\nint h(int x) { CAT(__as, m__) volatile(\"\" : \"+r\"(x)); "
                        "return x; }\n"),
]


@pytest.mark.parametrize("source", [s for _, s in SPLICED_C], ids=[i for i, _ in SPLICED_C])
def test_scan_c_sees_through_line_splices_and_digraphs(tmp_path, source):
    assert integrity.scan_c(_c(tmp_path, source)) != []


# ------------------------------------------------------------ scan_python

@pytest.mark.parametrize("module", ["threading", "ctypes", "os", "sys", "importlib", "subprocess",
                                    "importlib.util", "gc"])
def test_scan_python_flags_forbidden_import(tmp_path, module):
    found = integrity.scan_python(_py(tmp_path, f"import numpy as np\nimport {module}\n"))
    assert any(f.startswith("kernels.py:2: ") and f"import of {module!r} is not allowed" in f
               for f in found), found


def test_scan_python_flags_forbidden_from_import(tmp_path):
    found = integrity.scan_python(_py(tmp_path, "from os import path\n"))
    assert found and "kernels.py:1: import from 'os'" in found[0]


@pytest.mark.parametrize("code, name", [
    ("eval('1')", "eval"), ("exec('x = 1')", "exec"), ("f = open('x')", "open"),
    ("m = __import__('os')", "__import__"), ("g = globals()", "globals"),
    ("setattr(np, 'x', 1)", "setattr"),
])
def test_scan_python_flags_forbidden_name(tmp_path, code, name):
    found = integrity.scan_python(_py(tmp_path, f"import numpy as np\n\n{code}\n"))
    assert f"kernels.py:3: use of {name!r} is not allowed" in found


@pytest.mark.parametrize("code, attr", [
    ("d = np.__dict__", "__dict__"), ("s = object.__subclasses__()", "__subclasses__"),
    ("def f(fr):\n    return fr.f_back", "f_back"), ("c = np.ctypeslib", "ctypeslib"),
    ("def f(lib):\n    return lib.dlopen", "dlopen"),
])
def test_scan_python_flags_forbidden_attribute(tmp_path, code, attr):
    found = integrity.scan_python(_py(tmp_path, f"import numpy as np\n{code}\n"))
    assert any(f"attribute {attr!r} is not allowed" in f for f in found), found


@pytest.mark.parametrize("code", ["from . import reference", "from .inputs import gaussian",
                                  "from ..pq_l2 import reference"])
def test_scan_python_flags_relative_import(tmp_path, code):
    found = integrity.scan_python(_py(tmp_path, f"import numpy as np\n{code}\n"))
    assert found == ["kernels.py:2: relative imports are not allowed"]


@pytest.mark.parametrize("code, what", [("np.foo = 1", "np.foo"), ("math.pi = 3", "math.pi"),
                                        ("np.dot += 1", "np.dot"), ("del math.sqrt", "math.sqrt")])
def test_scan_python_flags_module_attribute_assignment(tmp_path, code, what):
    found = integrity.scan_python(_py(tmp_path, f"import math\nimport numpy as np\n\n{code}\n"))
    assert found == [f"kernels.py:4: assigning to module attribute {what} is not allowed "
                     f"(no monkeypatching)"]


def test_scan_python_allows_attribute_assignment_on_objects(tmp_path):
    path = _py(tmp_path, """\
        import numpy as np


        class K:
            def __init__(self, n):
                self.n = n
                self.buf = np.zeros(n)
        """)
    assert integrity.scan_python(path) == []


def test_scan_python_reports_syntax_error_with_line(tmp_path):
    found = integrity.scan_python(_py(tmp_path, "import numpy as np\n\ndef f(:\n    pass\n"))
    assert len(found) == 1
    assert found[0].startswith("kernels.py:3: syntax error")


def test_scan_python_results_are_sorted_by_line(tmp_path):
    found = integrity.scan_python(_py(tmp_path, "import numpy as np\nx = eval('1')\nimport os\n"))
    assert _lines(found) == sorted(_lines(found)) and set(_lines(found)) == {2, 3}


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_project_kernels_py_pass_scan_python(target):
    assert integrity.scan_python(target / "kernels.py") == []


INDIRECT_PY = [
    ("typing_sys", "import typing\nmods = typing.sys.modules\n"),
    ("getattr_ctypeslib", "import numpy as np\nc = getattr(np, 'ctypeslib')\n"),
    ("from_numpy_import_ctypeslib", "from numpy import ctypeslib\n"),
    ("cbuild_subprocess", "from harness_common.cbuild import subprocess\n"),
]


@pytest.mark.parametrize("source", [s for _, s in INDIRECT_PY], ids=[i for i, _ in INDIRECT_PY])
def test_scan_python_flags_indirect_routes_to_forbidden_modules(tmp_path, source):
    assert integrity.scan_python(_py(tmp_path, source)) != []


# ------------------------------------------------------------ check_symbols

@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(cbuild, "_CACHE_DIR", cbuild._CACHE_DIR)
    cbuild.configure(cache_dir=tmp_path / "cache")


@pytest.fixture
def out_dir(tmp_path):
    """A trial's private build directory: a fresh compile, as the trial checks it."""
    d = tmp_path / "so"
    d.mkdir()
    return d


def test_check_symbols_reports_pthread_create(cache, out_dir, tmp_path):
    c = _c(tmp_path, """\
        int pthread_create(void *thread, const void *attr, void *(*start)(void *), void *arg);
        static void *spin(void *arg) { return arg; }
        int go(void) { char t[64]; return pthread_create(t, 0, spin, 0); }
        """, "threads.c")
    so = cbuild.build(c, "int go(void);", out_dir=out_dir)       # as a trial builds it
    found = integrity.check_symbols(cbuild.kernel_symbols(so), "threads.c")
    assert len(found) == 1
    assert found[0].startswith("threads.c: ") and "pthread_create" in found[0]


def test_check_symbols_allows_memory_and_math(cache, tmp_path):
    c = _c(tmp_path, """\
        #include <math.h>
        #include <stdlib.h>
        #include <string.h>
        double clean(const double *x, int n) {
            double *tmp = malloc(sizeof(double) * (size_t)n);
            if (!tmp) return -1.0;
            memcpy(tmp, x, sizeof(double) * (size_t)n);
            double s = 0.0;
            for (int i = 0; i < n; i++) s += exp(tmp[i]) + pow(tmp[i], 0.3);
            free(tmp);
            return s;
        }
        """, "clean.c")
    so = cbuild.build(c, "double clean(const double *x, int n);")
    assert integrity.check_symbols(cbuild.kernel_symbols(so), "clean.c") == []


def test_check_symbols_sees_python_c_api_calls_from_kernel_code(cache, tmp_path):
    # cffi's wrapper calls the C API; the kernel's own object must not.
    c = _c(tmp_path, """\
        int PyRun_SimpleString(const char *);
        int go(void) { return PyRun_SimpleString("pass"); }
        """, "pyapi.c")
    so = cbuild.build(c, "int go(void);")
    found = integrity.check_symbols(cbuild.kernel_symbols(so), "pyapi.c")
    assert found and "PyRun_SimpleString" in found[0]
