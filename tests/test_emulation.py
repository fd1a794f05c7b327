"""Every ISA level is proven on every machine: levels the CPU lacks run emulated.

* both targets' full correctness batteries pass at every level, native
  where this CPU has the level and emulated where it does not (no skips);
* the emulation catches what it is for: see targets/pq_l2/tests/
  test_emulation_paths.py (a bug only in an avx512 or only in an amx path);
* an emulated trial is correctness only: `isa: <level> (emulated)`, status
  `emulated`, no timing, nothing kept, quick within 60 s; a full one runs
  the whole battery and ends the same way;
* emulated modules hold no instruction above the CPU's own level;
* every target's kernel builds emulated at every level above AVX2 even on a
  CPU that has the level, so an intrinsic without emulation is caught on the
  machine that kept it, not later on one that lacks the level.

The batteries run in this process (the trial's own cases and checks, one
build per target and level, cached); end-to-end trials only where the
trial itself is what is tested. Levels above this CPU's are emulated, so
on an AVX-512 or AMX machine the same tests run those levels natively.
"""
import importlib
import importlib.util
import time
from pathlib import Path

import pytest

from harness_common import cbuild, config, isa
from harness_common.inprocess import run_battery
from targetfacts import TARGETS

ROOT = Path(__file__).resolve().parent.parent
KERNEL_CLASS = {t: config.load(ROOT / "targets" / t / "target.toml").kernel_class for t in TARGETS}
SEED = 4242


def level_id(level):
    return f"{level}-{'emulated' if isa.emulated(level) else 'native'}"


def load_kernels(py_path, level, monkeypatch):
    """A kernels.py imported afresh with its C built at `level` (cached build)."""
    monkeypatch.setenv("HARNESS_ISA", level)
    name = f"_kernels_{Path(py_path).parent.name}_{level}_{abs(hash(str(py_path)))}"
    spec = importlib.util.spec_from_file_location(name, py_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def battery(target, quick=False):
    rx = importlib.import_module(f"targets.{target}.run_experiment")
    return rx.battery(SEED, quick)


# ------------------------------------------------------------ every level, full battery

@pytest.mark.slow
@pytest.mark.parametrize("level", isa.LEVELS, ids=level_id)
@pytest.mark.parametrize("target", TARGETS)
def test_full_battery_passes_at_every_level(target, level, monkeypatch):
    mod = load_kernels(ROOT / "targets" / target / "kernels.py", level, monkeypatch)
    cls = getattr(mod, KERNEL_CLASS[target])
    fails = run_battery(battery(target), lambda **init: cls(**init, isa=level))
    assert fails == {}, fails


# ------------------------------------------------------------ the emulated trial

LACKING = [lv for lv in isa.LEVELS if isa.emulated(lv)]


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_emulated_quick_trial_is_correctness_only_and_fast(workspace, target):
    if not LACKING:
        pytest.skip("this CPU has every level; the emulated trial path is not reachable")
    level = LACKING[-1]
    t = time.monotonic()
    run = workspace.run(target, "--quick", env={"HARNESS_ISA": level})
    took = time.monotonic() - t
    assert run.code == 0 and run.status == "emulated", run
    assert run.block["isa"] == f"{level} (emulated)"
    assert run.block["correctness"].startswith("pass")
    assert run.block["ratio_vs_best"] == "n/a" and "not timed, never kept" in run.reason
    assert "timing:" not in run.stdout
    row = run.rows()[-1]
    assert row["status"] == "emulated" and row["isa"] == f"{level} (emulated)"
    assert row["geomean_ns"] == "" and not (run.results / "best").exists()
    # Within 60 s once the target's input data is cached (it is the same at every level).
    inputs = float(run.block["inputs_seconds"])
    assert took - inputs < 60, (took, inputs)


@pytest.mark.slow
def test_full_emulated_trial_runs_the_whole_battery_and_ends_correctness_only(workspace):
    if not LACKING:
        pytest.skip("this CPU has every level; the emulated trial path is not reachable")
    level = LACKING[0]
    target = TARGETS[0]
    run = workspace.run(target, env={"HARNESS_ISA": level})
    assert run.code == 0 and run.status == "emulated", run
    assert "full battery passed" in run.reason and "correctness only" in run.reason
    n = len(battery(target, quick=False))
    assert run.block["correctness"].startswith(f"pass ({n} cases")
    assert run.rows()[-1]["mode"] == "full"


# ------------------------------------------------------------ machine code and build keys

def test_build_key_separates_native_from_emulated():
    native = cbuild.flags_for(True, "avx512", emulate=False)
    emulated = cbuild.flags_for(True, "avx512", emulate=True)
    assert native != emulated and native[-1] == emulated[-1] == "-DHARNESS_ISA_MAX=2"
    assert cbuild.emulated_flags(native) is None and cbuild.emulated_flags(emulated) is not None
    src, cdef = b"int f(void) { return 0; }", "int f(void);"
    assert cbuild.module_name(src, cdef, native) != cbuild.module_name(src, cdef, emulated)
    assert (cbuild.emulated_flags(cbuild.flags_for(True, "amx")) is None) == (not isa.emulated("amx"))


@pytest.mark.parametrize("level", [lv for lv in isa.LEVELS if lv not in ("scalar", "avx2")])
@pytest.mark.parametrize("target", TARGETS)
def test_every_target_builds_emulated_even_where_the_cpu_has_the_level(target, level):
    # A kernel kept on an AVX-512 machine must still build on an AVX2 one, where
    # its upper levels are emulated: an intrinsic with no emulation breaks the
    # battery there, so it is caught here on every machine.
    py = ROOT / "targets" / target / "kernels.py"
    cbuild.build(py.with_suffix(".c"), cbuild.read_cdef(py), True, level, emulate=True)


def test_unemulated_intrinsic_is_named_with_the_fix(tmp_path):
    c = tmp_path / "k.c"
    c.write_text('#include <immintrin.h>\n#include "harness_isa.h"\n'
                 "HARNESS_TARGET_AVX512 int f(const float *x) {\n"
                 "    return _mm512_cvtps_epu32(_mm512_loadu_ps(x))[0];\n}\n")
    with pytest.raises(cbuild.BuildError) as err:     # emulated even on an AVX-512 CPU
        cbuild._compile(c, c.read_bytes(), "int f(const float *x);",
                        cbuild.flags_for(True, "avx512", emulate=True), "_kernel_probe",
                        tmp_path / "probe.so")
    assert "_mm512_cvtps_epu32" in str(err.value) and "harness_simde_shims.h" in str(err.value)


def test_tile_numbers_must_be_constants(tmp_path):
    c = tmp_path / "k.c"
    c.write_text('#include <immintrin.h>\n#include "harness_isa.h"\n'
                 "HARNESS_TARGET_AMX void f(int t) { _tile_zero(t); }\n")
    with pytest.raises(cbuild.BuildError, match="compile-time constants 0..7"):
        cbuild._compile(c, c.read_bytes(), "void f(int t);", cbuild.flags_for(True, "amx", True),
                        "_kernel_probe2", tmp_path / "probe2.so")
