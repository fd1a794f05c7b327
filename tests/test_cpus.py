"""harness_common.cpus: a CPU pair is held by one trial at a time, machine-wide.
A second claim waits, names the holder, and gives up with CpusBusy at its
deadline; a released (or dead) holder's pair can be claimed again. All locks
live in the test's own directory, never the machine's."""
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness_common import cpus

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    d = tmp_path / "locks"
    monkeypatch.setattr(cpus, "LOCK_DIR", d)
    monkeypatch.setenv("HARNESS_LOCK_DIR", str(d))       # for child processes
    return d


def test_a_claim_takes_the_highest_pair_and_writes_who_holds_it(lock_dir):
    said = []
    claim = cpus.claim("pq_l2", 1, said.append, cpus={0, 1})
    try:
        assert (claim.timing, claim.supervisor) == (1, 0)
        assert said == []
        for cpu in (0, 1):
            who = cpus.holder(cpu)
            assert who["target"] == "pq_l2" and who["pid"] == os.getpid()
            assert who["cwd"] == os.getcwd()
        assert sorted(p.name for p in lock_dir.iterdir()) == ["cpu0.lock", "cpu1.lock"]
    finally:
        claim.release()


def test_a_second_claim_on_a_held_pair_raises_cpus_busy_naming_the_holder(lock_dir):
    first = cpus.claim("pq_l2", 1, print, cpus={0, 1})
    said = []
    try:
        t = time.monotonic()
        with pytest.raises(cpus.CpusBusy) as info:
            cpus.claim("campq_encode", 0.6, said.append, cpus={0, 1})
        took = time.monotonic() - t
        assert 0.5 <= took < 3.0, "gives up at its deadline, not before and not much after"
        msg = str(info.value)
        assert "no free CPU pair" in msg and "--cpu-wait" in msg
        assert f"cpu 0: pq_l2 trial pid {os.getpid()}" in msg
        assert f"cpu 1: pq_l2 trial pid {os.getpid()}" in msg
        assert len(said) == 1, "the wait is announced once"
        assert said[0].startswith(f"waiting for a free CPU pair: cpu 1 is held by pq_l2 trial "
                                  f"pid {os.getpid()}")
        # the failed claim neither took a lock nor overwrote the holder
        assert cpus.holder(1)["target"] == "pq_l2"
    finally:
        first.release()


def test_a_released_pair_can_be_claimed_again(lock_dir):
    first = cpus.claim("pq_l2", 1, print, cpus={0, 1})
    first.release()
    first.release()                                       # releasing twice is harmless
    second = cpus.claim("campq_encode", 0, print, cpus={0, 1})
    try:
        assert (second.timing, second.supervisor) == (1, 0)
        assert cpus.holder(1)["target"] == "campq_encode"
    finally:
        second.release()


def test_a_half_free_pair_is_not_claimed(lock_dir):
    # Someone holds only the supervisor CPU of the pair: the claim must not take
    # the timing CPU alone (and must let go of it while it waits).
    other = cpus.claim("x", 0, print, cpus={0})
    try:
        with pytest.raises(cpus.CpusBusy):
            cpus.claim("pq_l2", 0.3, lambda _: None, cpus={0, 1})
        alone = cpus.claim("y", 0, print, cpus={1})       # cpu 1 was not kept
        alone.release()
    finally:
        other.release()


def test_pairs_are_disjoint_between_trials(lock_dir):
    a = cpus.claim("a", 0, print, cpus={0, 1, 2, 3})
    b = cpus.claim("b", 0, print, cpus={0, 1, 2, 3})
    try:
        assert {a.timing, a.supervisor} == {3, 2} and {b.timing, b.supervisor} == {1, 0}
        with pytest.raises(cpus.CpusBusy):
            cpus.claim("c", 0, lambda _: None, cpus={0, 1, 2, 3})
    finally:
        a.release()
        b.release()


def test_one_cpu_is_a_pair_with_itself(lock_dir):
    claim = cpus.claim("pq_l2", 0, print, cpus={5})
    try:
        assert (claim.timing, claim.supervisor) == (5, 5)
    finally:
        claim.release()


def test_a_claim_waits_for_another_process_and_succeeds_after_it_exits(lock_dir):
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""\
            import sys, time
            from harness_common import cpus
            claim = cpus.claim("childtarget", 0, print, cpus={0, 1})
            print("held", flush=True)
            time.sleep(1.0)
            """)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert child.stdout.readline().strip() == "held"
        said = []
        t = time.monotonic()
        claim = cpus.claim("pq_l2", 30, said.append, cpus={0, 1})
        took = time.monotonic() - t
        try:
            assert child.poll() is not None or child.wait(5) == 0
            assert child.returncode == 0
            assert 0.3 < took < 10
            assert len(said) == 1
            assert said[0].startswith(f"waiting for a free CPU pair: cpu 1 is held by childtarget "
                                      f"trial pid {child.pid} in {ROOT}")
            assert "(up to 30 s; --cpu-wait changes that)" in said[0]
            assert cpus.holder(1)["pid"] == os.getpid()
        finally:
            claim.release()
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdout.close()
