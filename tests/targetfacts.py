"""Every target under targets/, with what the generic suites need to know about it.

Nothing in tests/ names a target: the suites run over `TARGETS` (found, not
listed) and read each target's own targets/<t>/tests/facts.py, so adding or
removing a target changes no file another target holds immutable. The
helpers below are the edits suites make to a target's kernel: they wrap a
method or add a C function, so they work on any kernel with the target's API.
"""
import importlib
from dataclasses import dataclass
from pathlib import Path

from harness_common import config

ROOT = Path(__file__).resolve().parent.parent
TARGETS = config.discover(ROOT)
# Where tests of the harness's own mechanics run (rows, anchors, locks, best/): the
# target whose full trial is budgeted shortest, so those tests stay quick as targets come.
CHEAPEST = min(TARGETS, key=lambda t: (config.load(ROOT / 'targets' / t / 'target.toml')
                                       .budget.trial_seconds, t))
REQUIRED = ("TIMED", "SIGNATURE", "INPUT", "OUTPUTS", "SPEED_CALL", "SPEED_SHAPE",
            "BIGGEST_COMBO", "WRONG", "honest")


@dataclass(frozen=True)
class Facts:
    target: str
    cls: str                  # target.toml kernel_class
    methods: tuple            # target.toml kernel_methods
    unit: str
    guard_mb: float           # target.toml [budget] memory_guard_mb
    timed: str                # facts.TIMED ... facts.WRONG: see targets/<t>/tests/facts.py
    signature: str
    input: str
    outputs: str
    speed_call: str
    speed_shape: str
    biggest_combo: str
    wrong: str
    module: object            # targets/<t>/tests/facts.py
    module_exploits: object   # targets/<t>/tests/exploits.py (its own cheats), or None

    @property
    def kernels_py(self):
        return f"targets/{self.target}/kernels.py"

    @property
    def kernels_c(self):
        return f"targets/{self.target}/kernels.c"


def facts(target, root=ROOT):
    mod = importlib.import_module(f"targets.{target}.tests.facts")
    missing = [n for n in REQUIRED if not hasattr(mod, n)]
    assert not missing, f"targets/{target}/tests/facts.py lacks {', '.join(missing)}"
    try:
        own = importlib.import_module(f"targets.{target}.tests.exploits")
    except ModuleNotFoundError:
        own = None
    cfg = config.load(Path(root) / "targets" / target / "target.toml")
    return Facts(target, cfg.kernel_class, cfg.kernel_methods, cfg.unit, cfg.budget.memory_guard_mb,
                 mod.TIMED, mod.SIGNATURE, mod.INPUT, mod.OUTPUTS, mod.SPEED_CALL, mod.SPEED_SHAPE,
                 mod.BIGGEST_COMBO, mod.WRONG, mod, own)


# ------------------------------------------------------------ kernel edits

def indent(body, by="    "):
    return "".join(f"{by}{line}\n" if line.strip() else "\n" for line in body.splitlines())


def wrapper(f, body, method=None, signature=None, name="_wrapped"):
    """Python source that replaces `cls.method` by a function running `body`; the body may
    call `_original(self, <signature>)`. The method defaults to the timed one."""
    method = method or f.timed
    sig = signature if signature is not None else f.signature if method == f.timed else "**kw"
    return (f"\n\n{name}_original = {f.cls}.{method}\n\n\n"
            f"def {name}(self, {sig}):\n{indent(body.replace('_original(', f'{name}_original('))}"
            f"\n\n{f.cls}.{method} = {name}\n")


def wrap_timed_method(ws, f, body):
    """Replace the timed method by a wrapper around the original; `body` runs after it, and
    the wrapper returns what the original returned."""
    text = ws.file(f.kernels_py).read_text()
    ws.write(f.kernels_py, text + wrapper(f, f"_result = _original(self, {f.signature})\n{body}\n"
                                               f"return _result"))


def add_c_function(ws, f, name, c_body):
    """Append `void name(long n) {...}` to kernels.c and declare it in CDEF."""
    ws.write(f.kernels_c, ws.file(f.kernels_c).read_text() + f"\nvoid {name}(long n)\n{{\n{c_body}\n}}\n")
    ws.edit(f.kernels_py, 'CDEF = """\n', f'CDEF = """\nvoid {name}(long n);\n')
