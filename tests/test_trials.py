"""End-to-end trials for every target: every exit code, caused by a kernel made to cause it.

Each test breaks a committed copy of the workspace, runs a real trial there
(`python -m targets.<t>.run_experiment --quick`), and checks the exit code,
the ledger row and the message. Verdicts that depend on timing noise (keep
vs discard) are never asserted; their mechanics are. Per-target tests run
over every target under targets/ (tests/targetfacts.py); tests of the
harness's own mechanics run once, on ONE of them.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import targetfacts
from conftest import CACHE, TrialRun, seed_best
from targetfacts import CHEAPEST, TARGETS

from harness_common import isa

pytestmark = pytest.mark.slow           # every test here runs real trials
ONE = CHEAPEST                          # where the harness's own mechanics are tried


def kernels_py(target):
    return f"targets/{target}/kernels.py"


def wrap_timed_method(ws, target, body):
    targetfacts.wrap_timed_method(ws, targetfacts.facts(target), body)


def add_c_function(ws, target, name, c_body):
    targetfacts.add_c_function(ws, targetfacts.facts(target), name, c_body)


def assert_row(run, status, code):
    assert run.code == code, run
    assert run.status == status, run
    rows = run.rows()
    assert rows and rows[-1]["status"] == status, run
    assert run.reason, run


# ------------------------------------------------------------ exit 0

@pytest.mark.parametrize("target", TARGETS)
def test_quick_trial_completes_and_is_never_kept(workspace, target):
    run = workspace.run(target, "--quick", "--description", "smoke")
    assert run.code == 0, run
    assert run.status == "discard" and "never kept" in run.reason
    row = run.rows()[-1]
    assert row["mode"] == "quick" and row["description"] == "smoke"
    for key in ("correctness", "geomean_ns_per_" + targetfacts.facts(target).unit,
                "ratio_vs_best", "ratio_ci95", "speedup_vs_scalar", "peak_rss_mb",
                "build_seconds", "total_seconds", "isa", "seed", "sandbox", "cpu"):
        assert key in run.block, (key, run)
    assert run.block["sandbox"] == "on", run
    assert row["cpu"] == isa.cpu_model() and row["sandbox"] == "on", row
    assert not (run.results / "best").exists()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("level", isa.levels_up_to(isa.machine_level()))
def test_every_isa_level_up_to_the_machines_passes(workspace, target, level):
    run = workspace.run(target, "--quick", env={"HARNESS_ISA": level})
    assert run.code == 0, run
    assert run.block["isa"] == level
    assert run.block["correctness"].startswith("pass")


@pytest.mark.parametrize("target", TARGETS)
def test_seed_replays_a_failure_exactly(workspace, target):
    wrap_timed_method(workspace, target, targetfacts.facts(target).wrong)
    first = workspace.run(target, "--quick")
    assert first.code == 2, first
    seed = first.block["seed"]
    assert f"--seed {seed}" in first.reason
    again = workspace.run(target, "--quick", "--seed", seed)
    assert again.code == 2 and again.reason == first.reason


# ------------------------------------------------------------ exit 1

@pytest.mark.parametrize("target", TARGETS)
def test_bad_isa_cap_and_bad_option_exit_1_without_a_row(workspace, target):
    run = workspace.run(target, "--quick", env={"HARNESS_ISA": "sse9"})
    assert run.code == 1 and "HARNESS_ISA" in run.stderr, run
    run = workspace.run(target, "--no-such-option")
    assert run.code == 1 and "unrecognized arguments" in run.stderr, run
    assert run.rows() == []


# ------------------------------------------------------------ exit 2

@pytest.mark.parametrize("target", TARGETS)
def test_wrong_results_fail_with_exit_2(workspace, target):
    wrap_timed_method(workspace, target, targetfacts.facts(target).wrong)
    run = workspace.run(target, "--quick")
    assert_row(run, "fail", 2)
    assert "expected" in run.reason and "got" in run.reason


@pytest.mark.parametrize("target", TARGETS)
def test_wrong_only_when_timed_fails_with_exit_2(workspace, target):
    # Right on small correctness inputs, wrong on the full-size timed calls.
    f = targetfacts.facts(target)
    wrap_timed_method(workspace, target, f"if {f.speed_call}:\n    {f.wrong}")
    run = workspace.run(target, "--quick")
    assert_row(run, "fail", 2)
    assert "timed call" in run.reason


# ------------------------------------------------------------ exit 3

@pytest.mark.parametrize("target", TARGETS)
def test_compile_error_shows_the_compilers_lines(workspace, target):
    path = f"targets/{target}/kernels.c"
    workspace.write(path, workspace.file(path).read_text() + "\nthis is not C;\n")
    run = workspace.run(target, "--quick")
    assert_row(run, "build_fail", 3)
    assert f"targets/{target}/kernels.c:" in run.reason and "error:" in run.reason


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("breakage,expect", [
    ("raise_on_import", "ZeroDivisionError"),
    ("rename_class", "defines no class"),
    ("no_cdef", "CDEF"),
])
def test_a_kernels_py_that_does_not_load_is_a_build_failure(workspace, target, breakage, expect):
    path, cls = kernels_py(target), targetfacts.facts(target).cls
    if breakage == "raise_on_import":
        workspace.edit(path, "ffi, lib = load_kernel_lib(__file__, CDEF)\n",
                       "ffi, lib = load_kernel_lib(__file__, CDEF)\n_ = 1 / 0\n")
    elif breakage == "rename_class":
        workspace.edit(path, f"class {cls}:", f"class {cls}Renamed:")
    else:
        workspace.edit(path, 'CDEF = """', 'CDEF_TEXT = """')
        workspace.edit(path, "load_kernel_lib(__file__, CDEF)", "load_kernel_lib(__file__, CDEF_TEXT)")
    run = workspace.run(target, "--quick")
    assert_row(run, "build_fail", 3)
    assert expect in run.reason


@pytest.mark.parametrize("target", TARGETS)
def test_missing_method_is_a_build_failure(workspace, target):
    method = targetfacts.facts(target).timed
    workspace.edit(kernels_py(target), f"def {method}(", f"def {method}_renamed(")
    run = workspace.run(target, "--quick")
    assert_row(run, "build_fail", 3)
    assert f"lacks method(s) {method}" in run.reason


# ------------------------------------------------------------ exit 4

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("how,expect", [
    ("segfault", "SIGSEGV"),
    ("hang", "timeout"),
    ("exception", "RuntimeError: boom"),
])
def test_crashes_and_hangs_are_crash_rows(workspace, target, how, expect):
    if how == "segfault":
        add_c_function(workspace, target, "boom", "    if (n > 0) *(volatile int *)0 = 1;")
        wrap_timed_method(workspace, target, "lib.boom(1)")
    elif how == "hang":
        add_c_function(workspace, target, "boom", "    for (volatile long i = 0; i < n; i += 0) {}")
        wrap_timed_method(workspace, target, "lib.boom(1)")
    else:
        wrap_timed_method(workspace, target, 'raise RuntimeError("boom")')
    run = workspace.run(target, "--quick", "--timeout", "5")
    assert_row(run, "crash", 4)
    assert expect in run.reason


# ------------------------------------------------------------ exit 5

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("rel", ["reference.py", "target.toml", "run_experiment.py", "compare.py",
                                 "../../harness_common/stats.py"])
def test_edited_immutable_file_is_tamper(workspace, target, rel):
    seed_best(workspace, target)                  # a ledger anchored to the committed files
    path = f"targets/{target}/{rel}"
    workspace.write(path, workspace.file(path).read_text() + "\n# edited\n")
    run = workspace.run(target, "--quick")
    assert_row(run, "tamper", 5)
    assert rel.split("/")[-1] in run.reason


@pytest.mark.parametrize("target", TARGETS)
def test_forbidden_construct_is_tamper_naming_the_line(workspace, target):
    path = f"targets/{target}/kernels.c"
    text = workspace.file(path).read_text()
    workspace.write(path, text.replace("#include <stdint.h>", "#include <stdint.h>\n#include <pthread.h>"))
    run = workspace.run(target, "--quick")
    assert_row(run, "tamper", 5)
    assert "kernels.c:" in run.reason and "pthread.h" in run.reason


@pytest.mark.parametrize("target", TARGETS)
def test_corrupt_or_foreign_ledger_is_refused_and_left_untouched(workspace, target):
    first = workspace.run(target, "--quick")
    assert first.code == 0, first
    ledger = workspace.results / "results.tsv"
    ledger.write_text(ledger.read_text() + "half\ta row\n")
    before = ledger.read_bytes()
    run = workspace.run(target, "--quick")
    assert run.code == 1 and "nothing was written" in run.stderr, run
    assert ledger.read_bytes() == before
    for other in [t for t in TARGETS if t != target][:1]:
        run = workspace.run(other, "--quick")
        assert run.code == 1 and "ledger for something else" in run.stderr, run
    assert ledger.read_bytes() == before


# ------------------------------------------------------------ the ledger across trials

def test_baseline_then_unchanged_trial_against_it(workspace):
    """The first full trial is the baseline; an unchanged rerun is an A/A trial
    against it (kept or not by noise alone, so only its mechanics are checked)."""
    workspace.small_budget(ONE)
    first = workspace.run(ONE, "--description", "baseline")
    assert first.code == 0 and first.status == "baseline", first
    best = (workspace.results / "best").resolve()
    assert (best / "kernels.c").read_bytes() == workspace.file(f"targets/{ONE}/kernels.c").read_bytes()
    second = workspace.run(ONE, "--description", "A/A")
    assert second.code == 0 and second.status in ("keep", "discard"), second
    lo, hi = (float(x) for x in second.block["ratio_ci95"].strip("[]").split(","))
    assert lo <= float(second.block["ratio_vs_best"]) <= hi
    assert [r["status"] for r in second.rows()] == ["baseline", second.status]
    if second.status == "discard":
        assert (workspace.results / "best").resolve() == best


def _processes_under(path):
    """Pids whose command line names `path` (a trial's workers carry its root)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(path).encode() in f.read():
                    found.append(int(pid))
        except (OSError, ValueError):
            pass
    return found


def test_killed_supervisor_leaves_ledger_and_best_intact(workspace):
    first = workspace.run(ONE, "--quick")
    assert first.code == 0, first
    ledger = workspace.results / "results.tsv"
    before = ledger.read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", f"targets.{ONE}.run_experiment", "--quick",
                             "--results-dir", str(workspace.results)], cwd=workspace.path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, HARNESS_CACHE_DIR=str(CACHE)))
    deadline = time.monotonic() + 120
    for line in proc.stdout:                  # wait until the workers are timing
        if line.startswith("timing:") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ledger.read_bytes() == before      # no half row
    deadline = time.monotonic() + 10          # and no worker outlives its supervisor
    while _processes_under(workspace.path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_under(workspace.path) == []
    after = workspace.run(ONE, "--quick")
    assert after.code == 0, after
    assert len(after.rows()) == 2


# ------------------------------------------------------------ setup mistakes: exit 1, no row

@pytest.mark.parametrize("target", TARGETS)
def test_uncommitted_target_file_before_a_baseline_is_a_setup_mistake(workspace, target):
    path = f"targets/{target}/reference.py"
    workspace.write(path, workspace.file(path).read_text() + "\n# not committed\n")
    run = workspace.run(target, "--quick")
    assert run.code == 1, run
    assert "reference.py" in run.stderr and "commit them first" in run.stderr, run
    assert run.rows() == []


@pytest.mark.parametrize("target", TARGETS)
def test_a_broken_target_toml_is_one_line_and_exit_1(workspace, target):
    workspace.write(f"targets/{target}/target.toml", "name = [\n")
    run = workspace.run(target, "--quick")
    assert run.code == 1, run
    assert run.stderr.startswith("error: ") and "target.toml" in run.stderr, run
    assert "Traceback" not in run.stderr, run


def test_outside_a_git_checkout_is_a_setup_mistake(workspace):
    shutil.rmtree(workspace.path / ".git")
    run = workspace.run(ONE, "--quick")
    assert run.code == 1 and "not a git checkout" in run.stderr, run
    assert run.rows() == []


# ------------------------------------------------------------ the ISA cap and includes

AVX2_SNEAK = """
#include <immintrin.h>
__attribute__((target("avx2"))) float sneaky_avx2(const float *x, long n)
{
    __m256 acc = _mm256_setzero_ps();
    for (long i = 0; i + 8 <= n; i += 8)
        acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + i));
    float t[8];
    _mm256_storeu_ps(t, acc);
    return t[0] + t[7];
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_code_above_the_isa_cap_is_tamper(workspace, target):
    # An AVX2 function outside the harness's guards, run whatever the cap says:
    # the instruction check of the built module refuses it at HARNESS_ISA=scalar.
    path = f"targets/{target}/kernels.c"
    workspace.write(path, workspace.file(path).read_text() + AVX2_SNEAK)
    workspace.edit(kernels_py(target), 'CDEF = """\n', 'CDEF = """\nfloat sneaky_avx2(const float *x, long n);\n')
    run = workspace.run(target, "--quick", env={"HARNESS_ISA": "scalar"})
    assert_row(run, "tamper", 5)
    assert "capped at scalar" in run.reason and "sneaky_avx2" in run.reason, run
    run = workspace.run(target, "--quick")          # at the machine's own level it is allowed
    assert run.code == 0, run


@pytest.mark.parametrize("target", TARGETS)
def test_an_include_hidden_behind_a_macro_is_tamper(workspace, target):
    path = f"targets/{target}/kernels.c"
    text = workspace.file(path).read_text()
    workspace.write(path, text.replace("#include <stdint.h>",
                                       "#include <stdint.h>\n#define HDR <unistd.h>\n#include HDR", 1))
    run = workspace.run(target, "--quick")
    assert_row(run, "tamper", 5)
    assert "unistd.h" in run.reason, run


# ------------------------------------------------------------ a shared machine

def _busy(n):
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def test_first_trial_on_a_busy_machine_is_not_tamper(workspace):
    """Other processes on every CPU, no best kernel yet: honest work is never flagged
    (figures are the worker's own CPU time; waiting to run costs none)."""
    hogs = _busy(os.cpu_count() or 2)
    try:
        run = workspace.run(ONE, "--quick")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert run.code == 0 and run.status == "discard", run


def test_concurrent_trials_take_turns_on_the_cpus(workspace, tmp_path):
    """Two trials in two checkouts at once: the second waits for the first's CPU pair
    and names it; both complete."""
    other = tmp_path / "ws2"
    shutil.copytree(workspace.path, other)
    env = dict(os.environ, HARNESS_CACHE_DIR=str(CACHE), HARNESS_LOCK_DIR=str(tmp_path / "locks"))
    procs = [subprocess.Popen([sys.executable, "-m", f"targets.{ONE}.run_experiment", "--quick",
                               "--results-dir", str(ws / "test-results")], cwd=ws, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for ws in (workspace.path, other)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    waited = [i for i, out in enumerate(outs) if "waiting for a free CPU pair" in out]
    assert len(waited) == 1, outs
    assert f"pid {procs[1 - waited[0]].pid}" in outs[waited[0]], outs


def history_sensitive(f):
    """A timed method twice as slow in a process that ran the battery (small calls)."""
    return (f"\n\n_history = {{'battery': 0}}\n_plain = {f.cls}.{f.timed}\n\n\n"
            f"def _timed(self, {f.signature}):\n"
            f"    # The worker's history, not the kernel, decides its speed (like heap\n"
            f"    # offsets left by the battery).\n"
            f"    if not ({f.speed_call}):\n"
            f"        _history['battery'] += 1\n"
            f"    for _ in range(2 if _history['battery'] else 1):\n"
            f"        _result = _plain(self, {f.signature})\n"
            f"    return _result    # a count, where the method returns one\n\n\n"
            f"{f.cls}.{f.timed} = _timed\n")


def test_worker_history_does_not_bias_an_a_a_trial(workspace):
    """The battery runs in a process of its own and every timing worker is fresh, so
    a kernel whose speed depends on what its process did before reads the same in
    both workers: candidate == best gives a ratio near 1 (it would read 2.0 if the
    battery ran in the candidate's timing process)."""
    path = kernels_py(ONE)
    workspace.write(path, workspace.file(path).read_text() + history_sensitive(targetfacts.facts(ONE)))
    workspace.commit("history-sensitive kernel")
    seed_best(workspace, ONE)
    run = workspace.run(ONE, "--quick")
    assert run.code == 0, run
    assert 0.8 < float(run.block["ratio_vs_best"]) < 1.25, run


# ------------------------------------------------------------ re-anchoring a ledger

def test_reanchor_after_a_harness_change_keeps_the_ledger(workspace):
    workspace.small_budget(ONE)
    seed_best(workspace, ONE)
    path = "harness_common/stats.py"
    workspace.write(path, workspace.file(path).read_text() + "\n# a deliberate harness change\n")
    workspace.commit("harness change")
    run = workspace.run(ONE, "--quick")
    assert_row(run, "tamper", 5)
    assert "stats.py" in run.reason
    why = "stats.py: a deliberate harness change"
    proc = subprocess.run([sys.executable, "-m", "harness_common", "reanchor", ONE, "--why", why,
                           "--results-dir", str(workspace.results)], cwd=workspace.path,
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, HARNESS_CACHE_DIR=str(CACHE)))
    run = TrialRun(proc, workspace.results)         # the documented command: the trial's path
    assert run.code == 0 and run.status == "reanchor", run
    rows = run.rows()
    assert [r["status"] for r in rows] == ["baseline", "tamper", "reanchor"]
    assert rows[-1]["anchor"] == why and rows[-1]["geomean_ns"], rows[-1]
    run = workspace.run(ONE, "--quick")
    assert run.code == 0 and run.status == "discard", run


def test_a_best_kernel_that_fails_its_recheck_is_named_without_a_row(workspace):
    f = targetfacts.facts(ONE)
    wrap_timed_method(workspace, ONE, f"if {f.speed_call}:\n    {f.wrong}")
    workspace.commit("a kernel wrong on timed calls")
    seed_best(workspace, ONE)                     # as if it had been kept earlier
    workspace.run(ONE, "--quick")                 # its candidate copy fails; row written
    workspace.file(kernels_py(ONE)).write_text(
        subprocess.run(["git", "show", "HEAD~1:" + kernels_py(ONE)], cwd=workspace.path,
                       capture_output=True, text=True, check=True).stdout)
    run = workspace.run(ONE, "--quick")           # an honest candidate against that best
    assert run.code == 1, run
    assert "best kept kernel failed a re-check" in run.stderr, run
    assert [r["status"] for r in run.rows()] == ["baseline", "fail"], run
