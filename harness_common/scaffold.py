"""`python -m harness_common new-target NAME`: a trial-ready target to fill in.

Writes targets/NAME/ from harness_common/template/: every shared part done,
a toy kernel (the sum of squares of each row) that runs end to end, and each
place that is the target's own marked `TARGET:`. There is no optimized
kernel: kernels.c starts as plain C.
"""
import keyword
import re
from pathlib import Path

TEMPLATE = Path(__file__).with_name("template")
ROOT = Path(__file__).resolve().parent.parent


def class_name(name):
    """pq_l2 -> PqL2Kernel."""
    return "".join(part.capitalize() for part in name.split("_")) + "Kernel"


def check_name(name, root=ROOT):
    """A message saying what is wrong with `name` as a new target, or None."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        return (f"{name!r} is not a target name: use lowercase letters, digits and underscores, "
                f"starting with a letter (it is a Python package name)")
    if (Path(root) / "targets" / name).exists():
        return f"targets/{name} already exists; pick another name or remove it first"
    return None


def write(name, root=ROOT):
    """Write targets/<name>/ from the template; returns the written paths, relative to root."""
    dest, cls = Path(root) / "targets" / name, class_name(name)
    written = []
    for tmpl in sorted(TEMPLATE.rglob("*.tmpl")):
        rel = tmpl.relative_to(TEMPLATE).with_suffix("")          # kernels.py.tmpl -> kernels.py
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(tmpl.read_text().replace("{{name}}", name).replace("{{cls}}", cls))
        written.append(out.relative_to(root))
    return written


def next_steps(name, written):
    run = f"python -m targets.{name}.run_experiment"
    files = "\n".join(f"    {p}" for p in written)
    return f"""wrote targets/{name}/ ({len(written)} files):
{files}

It runs as is (a toy kernel: the sum of squares of each row). Next:
  1. fill in the places marked TARGET:   grep -rn "TARGET:" targets/{name}
     (reference, inputs, baseline.c/.py, the plain kernels.c/.py, run_experiment's _init,
     _call, _check and floor, target.toml's shapes and numbers, tests/facts.py, program.md)
  2. git add targets/{name} && git commit -m "{name}: a new target"
                    # every trial before the baseline refuses uncommitted target files
                    # (the ledger anchors to a commit); amend the commit as you go
  3. {run} --quick                   # builds, checks and times in seconds
  4. pytest -m "not slow" -k {name}                    # the generic suites on the new target
  5. size [budget] in target.toml from the --quick figures (README, "Adding a target"), commit
  6. {run} --description "baseline"   # records the baseline
"""


def new_target(name, root=ROOT, out=print):
    """The new-target command; returns an exit code."""
    problem = check_name(name, root)
    if problem:
        out(f"error: {problem}")
        return 1
    out(next_steps(name, write(name, root)))
    return 0
