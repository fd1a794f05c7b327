"""Machine-wide claims on CPUs, so two trials never time on the same one.

A trial needs a pair: one CPU its workers are pinned to and time on, and one
for the supervisor (so the supervisor's work never shares the timing CPU).
Each CPU has a lock file in a machine-wide directory; a trial holds both
locks of its pair for its whole life (flock: released by the OS if the trial
dies) and writes who it is into them, so a waiting trial can name the holder.
"""
import fcntl
import json
import os
import tempfile
import time
from pathlib import Path

LOCK_DIR = Path(os.environ.get("HARNESS_LOCK_DIR") or
                Path(tempfile.gettempdir()) / "kernel-harness-cpus")


class CpusBusy(RuntimeError):
    """No CPU pair came free within the allowed wait."""


def _pairs(cpus):
    """(timing CPU, supervisor CPU) pairs over the CPUs this process may use, last first."""
    cpus = sorted(cpus)
    if len(cpus) == 1:
        return [(cpus[0], cpus[0])]
    return [(cpus[i], cpus[i - 1]) for i in range(len(cpus) - 1, 0, -2)]


class Claim:
    """The CPUs a trial holds: `timing` for its workers, `supervisor` for itself."""

    def __init__(self, timing, supervisor, files):
        self.timing, self.supervisor, self._files = timing, supervisor, files

    def release(self):
        for f in self._files:
            try:
                f.close()
            except OSError:
                pass
        self._files = []


def _try(cpu, who):
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(LOCK_DIR, 0o1777)          # every user's trials share the machine
    except OSError:
        pass
    path = LOCK_DIR / f"cpu{cpu}.lock"
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    f.seek(0)
    f.truncate()
    f.write(json.dumps(who))
    f.flush()
    return f


def holder(cpu):
    """Who holds `cpu`, as written in its lock file ({} if unknown)."""
    try:
        return json.loads((LOCK_DIR / f"cpu{cpu}.lock").read_text() or "{}")
    except (OSError, ValueError):
        return {}


def describe(who):
    if not who:
        return "another trial"
    return (f"{who.get('target', '?')} trial pid {who.get('pid', '?')} in {who.get('cwd', '?')} "
            f"(since {who.get('since', '?')})")


def claim(target, wait_s, say=print, cpus=None):
    """Claim a free CPU pair, waiting up to `wait_s` seconds; raises CpusBusy."""
    cpus = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    who = {"target": target, "pid": os.getpid(), "cwd": os.getcwd(),
           "since": time.strftime("%H:%M:%S")}
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        for timing, sup in _pairs(cpus):
            first = _try(timing, who)
            if first is None:
                continue
            second = first if sup == timing else _try(sup, who)
            if second is not None:
                return Claim(timing, sup, [first] if second is first else [first, second])
            first.close()
        if time.monotonic() >= deadline:
            busy = "; ".join(f"cpu {c}: {describe(holder(c))}" for c in cpus)
            raise CpusBusy(f"no free CPU pair after {wait_s:.0f} s ({busy}); wait for that trial, "
                           f"or raise --cpu-wait")
        if not told:
            t, _ = _pairs(cpus)[0]
            say(f"waiting for a free CPU pair: cpu {t} is held by {describe(holder(t))} "
                f"(up to {wait_s:.0f} s; --cpu-wait changes that)")
            told = True
        time.sleep(0.2)
