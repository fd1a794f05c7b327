"""Fresh, sandboxed worker processes that each host one kernel.

Every worker goes through the same steps in the same order (spawn, setup and
confinement, null samples, load one kernel), so two workers of a pair have
the same history and only their kernel differs. (Its path and module name
differ too, and that alone moves where the kernel's arrays land: the worker
also starts each construction at a random heap offset, worker.construct.) The null samples, made
before any kernel code exists in the process, measure what the harness's
own per-sample work costs there: the yardstick for the CPU a kernel's worker
may use outside its measured windows (cpuaudit.py). No kernel ever sets it.
"""
from dataclasses import dataclass, field

import numpy as np

from .calls import Arena, Call, Placed
from .integrity import IntegrityError
from .process import SandboxError, WorkerCrash, WorkerProcess

NULL_SAMPLES = 12
NULL_VIEWS = (1, 16)         # views per null sample: the two points of a linear cost model


@dataclass
class Host:
    """A kernel (`label`: candidate, best or scalar) in its own worker."""
    label: str
    worker: WorkerProcess
    prep_cost: tuple = (0.0, 0.0)   # (ns per sample, ns per view) of the harness's own prep
    sandbox: str = "on"
    amx: str = "not requested"
    ctor_ns: dict = field(default_factory=dict)

    def expected_prep_ns(self, views):
        a, b = self.prep_cost
        return a + b * views

    def check_oracle(self, where, timeout):
        """Raise IntegrityError if kernel code reached for the oracle (the blocker's record)."""
        reply, _, _ = self.worker.request({"cmd": "status"}, timeout=timeout)
        if reply.get("oracle"):
            raise IntegrityError(f"{reply['oracle']} ({where})")


@dataclass
class HostFactory:
    """What every worker of a trial shares: where it runs, its limits, its kernels."""
    tmp: object                 # the trial's private directory (logs)
    isa: str
    cpu: int | None
    blocked: list
    root: str
    kernels: dict               # label -> {"py", "so", "module", "class", "methods"}
    arena_bytes: int
    memory_mb: int
    cpu_seconds: int
    require_sandbox: bool = True
    started: int = 0

    def start(self, label, timeout=120):
        """A new worker hosting the `label` kernel, confined, calibrated and loaded."""
        self.started += 1
        arena = Arena(self.arena_bytes)
        worker = WorkerProcess(label, self.tmp / f"{label}-{self.started}.log", arena,
                               self.memory_mb, self.cpu_seconds)
        host = Host(label, worker)
        try:
            reply, _, _ = worker.request(
                {"cmd": "setup", "isa": self.isa, "cpu": self.cpu, "blocked": self.blocked,
                 "root": self.root, "arena_size": arena.size, "uid": worker.uid,
                 "require_sandbox": self.require_sandbox, "kernels": {label: self.kernels[label]}},
                timeout=60, phase="startup")
        except SandboxError as exc:
            worker.kill()
            worker.close()
            arena.close()
            raise SandboxError(f"the {label} worker could not be confined, so no kernel code ran: "
                               f"{exc}")
        host.sandbox, host.amx = reply["sandbox"], reply["amx"]
        host.prep_cost = _null_prep_cost(worker, timeout)
        worker.request({"cmd": "load"}, timeout=timeout, phase=f"loading the {label} kernel")
        return host


def _null_prep_cost(worker, timeout):
    """(per sample, per view) CPU of prep + go with no kernel, by least squares."""
    rng = np.random.default_rng()
    xs, ys = [], []
    for views in NULL_VIEWS:
        call = Call("null", {f"a{i}": np.zeros(16, np.float32) for i in range(views)}, {})
        for _ in range(NULL_SAMPLES):
            placed = Placed(worker.arena, [call], 0, rng)
            _, _, span = worker.request({"cmd": "prep", "null": True, "calls": placed.specs},
                                        timeout=timeout, phase="null samples")
            xs.append(views)
            ys.append(span.cpu_ns)
            worker.window(timeout)
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    lo = [np.median(ys[xs == v]) for v in NULL_VIEWS]
    per_view = max(0.0, (lo[1] - lo[0]) / (NULL_VIEWS[1] - NULL_VIEWS[0]))
    return lo[0] - per_view * NULL_VIEWS[0], per_view


def stop_all(hosts):
    """Close every host's worker; returns the peak RSS in MB per label (the largest)."""
    peaks = {}
    for h in hosts:
        try:
            peak = h.worker.close()
        except WorkerCrash:
            peak = h.worker.peak_kb / 1024
        peaks[h.label] = max(peaks.get(h.label, 0.0), peak)
        h.worker.arena.close()
    return peaks
