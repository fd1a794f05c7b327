"""Emulation catches what it is for, shown on pq_l2: a kernel whose bug is only
in its avx512 path, and one whose bug is only in its amx path (tile
intrinsics), fail the battery and an emulated trial; with the bug fixed they
pass; their builds hold no instruction above the CPU's own level.

The fixtures in emulation/ are spliced into a frozen copy of pq_l2's plain
kernel (emulation/plain/), not into targets/pq_l2/kernels.c, which changes
with every kept trial.
"""
from pathlib import Path

import pytest

from harness_common import cbuild, isa, machinecode
from harness_common.inprocess import run_battery
from tests.conftest import workspace  # noqa: F401  (the fixture: a committed copy of the project)
from tests.test_emulation import battery, load_kernels

FIXTURES = Path(__file__).resolve().parent / "emulation"
PLAIN = FIXTURES / "plain"


# ------------------------------------------------------------ bug only in one level's path

DISPATCH = "    (void)isa;\n    tables_portable("
DISPATCH_FIXTURE = """#ifdef FIXTURE_TABLES
    if (isa >= FIXTURE_TABLES_ISA) {
        FIXTURE_TABLES(codebook, dim, num_sub_vectors, num_centroids, queries, nq, out);
        return;
    }
#endif
    tables_portable("""
SPLICE_BEFORE = "/* ------------------------------------------------------------ dispatch */"


def patched_kernel(fixture, bug):
    """The plain pq_l2 kernel with the fixture's path spliced in before the dispatch."""
    source = (PLAIN / "kernels.c").read_text()
    assert DISPATCH in source and SPLICE_BEFORE in source, "the plain kernel changed shape"
    snippet = f"#define FIXTURE_BUG {int(bug)}\n" + (FIXTURES / fixture).read_text() + "\n"
    source = source.replace(SPLICE_BEFORE, snippet + SPLICE_BEFORE, 1)
    return source.replace(DISPATCH, DISPATCH_FIXTURE, 1)


def install(dest_dir, fixture, bug):
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / "kernels.py").write_text((PLAIN / "kernels.py").read_text())
    (dest_dir / "kernels.c").write_text(patched_kernel(fixture, bug))
    return dest_dir / "kernels.py"


BUGGY = [("pq_l2_avx512_tables.c", "avx512"), ("pq_l2_amx_tables.c", "amx")]


@pytest.mark.slow
@pytest.mark.parametrize("fixture, level", BUGGY, ids=["avx512", "amx"])
def test_fixed_path_passes_and_bug_stays_invisible_below_its_level(fixture, level, tmp_path,
                                                                   monkeypatch):
    cases = battery("pq_l2")
    fixed = load_kernels(install(tmp_path / "fixed", fixture, False), level, monkeypatch)
    assert run_battery(cases, lambda **init: fixed.PqKernel(**init, isa=level)) == {}
    # The buggy kernel is right on every lower level: only `level` can see the bug.
    buggy = load_kernels(install(tmp_path / "buggy", fixture, True), level, monkeypatch)
    below = isa.LEVELS[isa.LEVELS.index(level) - 1]
    assert run_battery(cases, lambda **init: buggy.PqKernel(**init, isa=below)) == {}
    fails = run_battery(cases, lambda **init: buggy.PqKernel(**init, isa=level))
    assert fails and all("distance_tables" in " ".join(m) for m in fails.values()), fails


@pytest.mark.slow
@pytest.mark.parametrize("fixture, level", BUGGY, ids=["avx512", "amx"])
def test_bug_only_in_one_levels_path_fails_the_trial(workspace, fixture, level):
    install(workspace.path / "targets" / "pq_l2", fixture, True)
    run = workspace.run("pq_l2", "--quick", env={"HARNESS_ISA": level})
    assert run.code == 2 and run.status == "fail", run
    assert "distance_tables" in run.reason, run
    assert run.block["isa"] == isa.describe(level)
    assert run.rows()[-1]["isa"] == isa.describe(level)


@pytest.mark.parametrize("fixture, level", BUGGY, ids=["avx512", "amx"])
def test_build_holds_nothing_above_the_cpus_level(fixture, level, tmp_path):
    py = install(tmp_path, fixture, False)
    so = cbuild.build(py.with_suffix(".c"), cbuild.read_cdef(py), True, level)
    assert machinecode.above_cap(so, isa.native_level(level)) == []
