"""Shared fixtures: a throwaway git workspace per test and a trial runner.

Trials always run in a copy of the workspace (so a test can break a kernel
or an immutable file without touching the checkout) with --results-dir in
the test's own folder (so no test ever writes the real ledger). Compiled
modules and trained codebooks are shared through one cache directory.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("HARNESS_CACHE_DIR", ROOT / ".harness-cache"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The suite runs in two processes (pytest-xdist, `-n 2` in pyproject.toml). A
# trial holds a CPU pair machine-wide; where the machine has fewer than a pair per
# test process, trials of the two would only wait for each other, so each test
# process claims CPUs in a lock directory of its own. Their trials may then share
# a CPU, which no test here can notice: tests assert verdicts, never speed, and a
# trial's figures are CPU time, not wall time. (Where pairs are plentiful the
# machine-wide claims stand and each trial gets a pair of its own.) The tests of the
# claims themselves (test_cpus.py, the concurrent-trial test) make their own.
if os.environ.get("PYTEST_XDIST_WORKER") and len(os.sched_getaffinity(0)) < 4:
    os.environ["HARNESS_LOCK_DIR"] = str(Path(tempfile.gettempdir()) /
                                         f"kernel-harness-cpus-test-{os.environ['PYTEST_XDIST_WORKER']}")


def _git(cwd, *args):
    """Run git in `cwd` as a test identity; returns its output, stripped."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=dict(os.environ, GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@localhost",
                                   GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@localhost")).stdout.strip()


def _source_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    return [f for f in out if not f.startswith("results/") and (ROOT / f).is_file()]


class Workspace:
    """A committed copy of the project where trials run."""

    def __init__(self, path):
        self.path = Path(path)
        self.results = self.path / "test-results"

    def file(self, rel):
        return self.path / rel

    def write(self, rel, text):
        self.file(rel).write_text(text)

    def edit(self, rel, old, new, count=1):
        """Replace `old` by `new` in a file; fails loudly if `old` is absent."""
        text = self.file(rel).read_text()
        assert old in text, f"{old!r} not in {rel}"
        self.file(rel).write_text(text.replace(old, new, count))

    def small_budget(self, target, timing_seconds=4):
        """Give `target`'s full trials a test-sized timing budget, committed: what such
        a test checks (rows, anchors, best/) does not depend on how long the rounds run."""
        rel = f"targets/{target}/target.toml"
        text, n = re.subn(r"(?m)^timing_seconds\s*=\s*[0-9.]+", f"timing_seconds = {timing_seconds}",
                          self.file(rel).read_text())
        assert n == 1, f"no timing_seconds in {rel}"
        self.write(rel, text)
        self.commit(f"test-sized timing budget for {target}")

    def commit(self, message="test change"):
        _git(self.path, "add", "-A")
        _git(self.path, "commit", "-q", "-m", message)

    def run(self, target, *args, env=None, timeout=600, results=None):
        """Run one trial; returns a TrialRun (exit code, output, result block, ledger rows)."""
        results = Path(results or self.results)
        cmd = [sys.executable, "-m", f"targets.{target}.run_experiment",
               "--results-dir", str(results), *args]
        full_env = dict(os.environ, HARNESS_CACHE_DIR=str(CACHE))
        full_env.update(env or {})
        proc = subprocess.run(cmd, cwd=self.path, capture_output=True, text=True,
                              timeout=timeout, env=full_env)
        return TrialRun(proc, results)


class TrialRun:
    def __init__(self, proc, results):
        self.code, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        self.results = results
        self.block = parse_block(proc.stdout)

    @property
    def status(self):
        return self.block.get("status")

    @property
    def reason(self):
        return self.block.get("reason", "")

    def rows(self):
        return self.rows_of(self.results)

    @staticmethod
    def rows_of(results):
        """The ledger's rows as dicts (header names as keys)."""
        path = Path(results) / "results.tsv"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        header = lines[1].split("\t")
        return [dict(zip(header, line.split("\t"))) for line in lines[2:]]

    def __repr__(self):
        return f"TrialRun(code={self.code}, status={self.status}, reason={self.reason!r})\n" \
               f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


def parse_block(stdout):
    """The key: value lines after the last '---' (repeated keys keep the first)."""
    block = {}
    if "\n---\n" not in "\n" + stdout:
        return block
    for line in stdout.split("---\n")[-1].splitlines():
        key, _, value = line.partition(":")
        if _:
            block.setdefault(key.strip(), value.strip())
    return block


def seed_best(ws, target, results=None):
    """Record the workspace's current kernel as the baseline without a full trial
    (what a baseline trial would leave), so a --quick trial has a best to time against."""
    from harness_common import isa, ledger
    led = ledger.Ledger(results or ws.results, target)
    sources = {n: ws.file(f"targets/{target}/{n}").read_bytes() for n in ledger.SOURCES}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ws.path, capture_output=True,
                            text=True, check=True).stdout.strip()
    with led.locked():
        kept = led.save_kept(sources, ledger.kernel_sha256(sources))
        led.append({"timestamp": "2026-01-01T00:00:00+00:00", "commit": commit[:12],
                    "status": "baseline", "kernel_sha256": ledger.kernel_sha256(sources),
                    "mode": "full", "isa": isa.machine_level(), "sandbox": "on",
                    "cpu": isa.cpu_model(), "description": "seeded by the test"})
        led.point_best(kept)


@pytest.fixture
def workspace(tmp_path):
    """A fresh committed copy of the project."""
    ws = tmp_path / "ws"
    for rel in _source_files():
        dst = ws / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst)
    _git(ws, "init", "-q")
    ws_obj = Workspace(ws)
    ws_obj.commit("workspace")
    return ws_obj
