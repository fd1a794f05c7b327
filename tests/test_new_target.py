"""`python -m harness_common new-target NAME` writes a target that works as written.

Fast: the skeleton's files are all there, its config loads, its facts are
complete, its plain kernel builds and passes its own battery in-process, and
the generic suites find it. Slow (the README's recipe, end to end in a
committed copy of the project): new-target, commit, a --quick trial, a
baseline and an A/A trial; the commit touches nothing outside the new
target's folder and every other target's next trial is not `tamper`.
"""
import subprocess
import sys

import pytest
from conftest import seed_best
from targetfacts import TARGETS

from harness_common import config, scaffold

FILES = {"__init__.py", "program.md", "target.toml", "reference.py", "inputs.py", "baseline.c",
         "baseline.py", "kernels.c", "kernels.py", "run_experiment.py", "test_bench.py",
         "tests/__init__.py", "tests/facts.py"}

IN_PROCESS = """
from harness_common import config, inprocess
from targets.demo import run_experiment, kernels, baseline
from targets.demo.tests import facts
assert config.discover(".") == sorted(config.discover(".")) and "demo" in config.discover(".")
cases = run_experiment.battery(1)
for make in (facts.honest, lambda **i: kernels.DemoKernel(**i, isa="scalar"),
             lambda **i: baseline.DemoKernel(**i, isa="scalar")):
    assert inprocess.run_battery(cases, make) == {}, make
assert run_experiment.speed_combos(1, quick=True)
print("ok")
"""


def test_new_target_writes_a_target_that_loads_and_passes_its_battery(tmp_path):
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "__init__.py").write_text("")
    written = scaffold.write("demo", tmp_path)
    assert {str(p.relative_to("targets/demo")) for p in written} == FILES
    for path in written:
        assert "{{" not in (tmp_path / path).read_text(), path
    cfg = config.load(tmp_path / "targets/demo/target.toml")
    assert cfg.name == "demo" and cfg.kernel_class == "DemoKernel"
    assert scaffold.check_name("demo", tmp_path) and scaffold.check_name("Demo-1") \
        and scaffold.check_name("class") and scaffold.check_name("fresh_name", tmp_path) is None
    for name in ("harness_common",):        # the skeleton imports the real harness
        (tmp_path / name).symlink_to(scaffold.ROOT / name)
    proc = subprocess.run([sys.executable, "-c", IN_PROCESS], cwd=tmp_path, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.stdout.strip() == "ok", proc.stderr


def test_new_target_refuses_a_bad_or_taken_name(capsys):
    from harness_common.__main__ import main
    assert main(["new-target", TARGETS[0]]) == 1
    assert "already exists" in capsys.readouterr().out


@pytest.mark.slow
def test_the_recipe_end_to_end_leaves_other_targets_alone(workspace):
    ledgers = workspace.path.parent / "ledgers"         # outside the checkout: never committed
    for target in TARGETS:                              # ledgers anchored before the new target
        seed_best(workspace, target, ledgers / target)
    before = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workspace.path, capture_output=True,
                            text=True, check=True).stdout.strip()
    out = subprocess.run([sys.executable, "-m", "harness_common", "new-target", "demo"],
                         cwd=workspace.path, capture_output=True, text=True)
    assert out.returncode == 0 and "git add targets/demo" in out.stdout, out
    # the printed steps in the order the harness enforces: no trial before the commit
    assert out.stdout.index("git commit") < out.stdout.index("--quick"), out.stdout
    workspace.commit("demo: a new target")
    changed = subprocess.run(["git", "diff", "--name-only", before, "HEAD"], cwd=workspace.path,
                             capture_output=True, text=True, check=True).stdout.split()
    assert changed and all(p.startswith("targets/demo/") for p in changed), changed

    quick = workspace.run("demo", "--quick", results=ledgers / "demo")
    assert quick.code == 0 and quick.status == "discard", quick
    for target in TARGETS:                              # not tamper: nothing of theirs moved
        run = workspace.run(target, "--quick", results=ledgers / target)
        assert run.code == 0 and run.status == "discard", run

    results = ledgers / "demo-full"
    workspace.small_budget("demo")
    first = workspace.run("demo", "--description", "baseline", results=results)
    assert first.code == 0 and first.status == "baseline", first
    second = workspace.run("demo", "--description", "A/A", results=results)
    assert second.code == 0 and second.status in ("keep", "discard"), second
