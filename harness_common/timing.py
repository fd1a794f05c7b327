"""Timing: the candidate against the best kept kernel, in the same run, on one CPU.

Both kernels run in their own worker process, both pinned to the same CPU
and driven in lockstep by the supervisor, so only one runs at a time and a
candidate can neither see nor slow down the best. Every round times each
kernel on the same two fresh inputs, in ABBA order on even rounds and BAAB
on odd ones (A = candidate, B = best): drift within a round cancels in the
round's ratio sum(A)/sum(B), and neither kernel owns the first or the warm
position. Outputs are re-checked after a combo's rounds, so the checking
work never sits between timed calls.

Every timed call gets new content (the combo's `fresh`), new buffers and
outputs pre-filled with one of two fills; its outputs are re-checked. The
worker's reported times are audited against the OS: the CPU time the kernel
accounts to the worker across each call, and the supervisor's wall clock.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from . import stats
from .integrity import IntegrityError
from .plan import Derived

# Two fills per dtype: an output slot the kernel never writes keeps a value
# that is wrong under at least one of them.
_FILLS = {"f": ("nan", -3.0e38), "u": (-1, -2), "i": (-1, 1 << 30)}
SMALL_INPUT_BYTES = 4 << 20      # inputs this small are verified after every call
VERIFY_FRACTION = 0.25           # larger ones after a random quarter of calls


class CheckFailure(RuntimeError):
    """A timed call's outputs failed the re-check."""

    def __init__(self, label, messages):
        super().__init__("; ".join(messages))
        self.label, self.messages = label, messages


def fill_value(dtype, which):
    kind = np.dtype(dtype).kind
    value = _FILLS[kind][which]
    if kind == "u":
        value = int(np.iinfo(dtype).max) + 1 + value
    return value


@dataclass
class Kernel:
    """A kernel hosted in a worker: `label` is candidate, best or scalar."""
    label: str
    worker: object
    name: str


def _trimmed_mean(values, keep=0.8):
    """Mean of the smallest `keep` share: one interrupt storm or page-fault burst in
    a single call must not read as hidden work, while work hidden on most calls does."""
    v = np.sort(np.asarray(values, dtype=float))
    return float(v[:max(1, int(np.ceil(keep * len(v))))].mean())


@dataclass
class ClockAudit:
    """The candidate's reported call times against the OS's CPU accounting and
    the supervisor's wall clock. Each call's unreported CPU (protocol cost,
    output sending, cache misses after the call) is compared, combo by combo,
    with the best kernel's on the same combo, which went through the identical
    path, or with the protocol cost measured before any kernel loaded. The
    comparison uses trimmed means, not sums: a host hiccup in one call is noise,
    work hidden from the timer shows in most calls. A CPU shared with other work
    (preemption) lowers CPU against wall time for both kernels alike, so the
    idle check compares shares too."""
    overhead_ns: float = 20_000.0     # honest per-call protocol cost, from null calls
    calls: int = 0
    reported: int = 0
    cpu: int = 0
    hidden: list = field(default_factory=list)   # (where, ns per call beyond honest)
    expected_cpu: float = 0.0         # the candidate's reported time at the best's CPU share
    ahead: list = field(default_factory=list)
    parallel: list = field(default_factory=list)

    def add_combo(self, name, cand, best):
        """cand, best: this combo's CallResults of the candidate and of the best (may be empty)."""
        for res in cand:
            self.calls += 1
            self.reported += res.t_ns
            if res.t_ns > res.wall_ns + 50_000:
                self.ahead.append(f"{name} (candidate)")
            if res.cpu_ns is not None and res.cpu_ns > res.wall_ns * 1.05 + 200_000:
                self.parallel.append(f"{name} (candidate)")
        cand = [r for r in cand if r.cpu_ns is not None]
        best = [r for r in best if r.cpu_ns is not None]
        if not cand:
            return
        self.cpu += sum(r.cpu_ns for r in cand)
        share = 1.0
        if best:
            share = min(1.0, sum(r.cpu_ns for r in best) / max(1, sum(r.t_ns for r in best)))
        self.expected_cpu += share * sum(r.t_ns for r in cand)
        excess = _trimmed_mean([r.cpu_ns - r.t_ns for r in cand])
        honest = self.overhead_ns
        if best:
            honest = max(honest, _trimmed_mean([r.cpu_ns - r.t_ns for r in best]))
        # Tolerance: protocol jitter, plus a few percent of the call for cache and
        # TLB refills the reported window cannot include (they differ by kernel).
        typical_cpu = float(np.median([r.cpu_ns for r in cand]))
        allowed = 2 * honest + 50_000 + 0.03 * typical_cpu
        if not best:
            # Null calls send no outputs and touch no data, so they understate an
            # honest call's overhead (measured: about 4x); widen for that.
            allowed = 4 * honest + 100_000 + 0.05 * typical_cpu
        if excess > allowed:
            self.hidden.append((name, excess - honest, float(np.median([r.t_ns for r in cand]))))

    def problems(self):
        out = []
        if self.ahead:
            out.append(f"the worker reported calls longer than the supervisor's wall clock "
                       f"({len(self.ahead)} calls, first in {self.ahead[0]}): its clock was tampered with")
        if self.parallel:
            out.append(f"the worker used more CPU time than wall time ({len(self.parallel)} calls, "
                       f"first in {self.parallel[0]}): work ran on more than one CPU")
        if self.hidden:
            name, extra, t = max(self.hidden, key=lambda h: h[1] / max(h[2], 1.0))
            out.append(f"reported kernel time is below the OS's CPU accounting for the worker "
                       f"beyond honest overheads in {len(self.hidden)} combo(s): in {name} each "
                       f"call used {extra / 1e3:.0f} us of CPU more than the best kernel's calls "
                       f"did (or the null calls, with no best kernel), against {t / 1e3:.0f} us reported: the timer was patched or work "
                       f"escaped it")
        if self.cpu and self.cpu < 0.5 * self.expected_cpu:
            out.append(f"the worker used {self.cpu / 1e6:.1f} ms of CPU in timed calls it reported "
                       f"as {self.reported / 1e6:.1f} ms: it idled through the timer while the work "
                       f"ran elsewhere")
        return out


def calibrate(worker, samples=30, timeout=30.0):
    """Honest protocol cost inside the CPU window, from null calls made before
    any kernel code is loaded (so no kernel can inflate it)."""
    costs = []
    for _ in range(samples):
        res = worker.call({"cmd": "prep", "null": True, "args": {}, "outputs": {}}, timeout=timeout)
        if res.cpu_ns is not None:
            costs.append(res.cpu_ns - res.t_ns)
    return float(np.median(costs)) if costs else 20_000.0


# ------------------------------------------------------------ one call

def _prep(combo_id, combo, kernel, fresh, w, which, limit=None):
    args, arrays = {}, {}
    for key in combo.workloads[w]:
        args[key] = {"base": f"w{w}.{key}"}
    for key, val in fresh.items():
        if isinstance(val, Derived):
            args[key] = {"base": f"w{w}.{val.base}", "perm": key + ".perm", "signs": key + ".signs"}
            arrays[key + ".perm"], arrays[key + ".signs"] = val.perm, val.signs
        else:
            args[key] = {"array": key}
            arrays[key] = val
    for key, val in combo.fixed.items():
        args[key] = {"value": val}
    if limit is not None:
        for key in combo.batched:
            args[key]["limit"] = limit
    outputs = {}
    for key, (dtype, shape) in combo.outputs.items():
        shape = [limit if limit is not None else shape[0], *shape[1:]]
        outputs[key] = [dtype, shape, fill_value(dtype, which)]
    head = {"cmd": "prep", "kernel": kernel.name, "combo": combo_id, "method": combo.method,
            "args": args, "outputs": outputs}
    return head, arrays


def _input_bytes(combo, fresh):
    """Bytes of one call's inputs (a Derived argument is as large as its base)."""
    total = sum(a.nbytes for a in combo.workloads[0].values())
    return total + sum(v.nbytes for v in fresh.values() if not isinstance(v, Derived))


# ------------------------------------------------------------ a combo

@dataclass
class ComboRun:
    result: stats.ComboResult
    ctor_ns: int                  # the candidate's constructor
    ratios: np.ndarray | None     # per-round candidate/best ratios


class Timer:
    """Runs the speed combos of a trial; see the module docstring."""

    def __init__(self, candidate, best, scalar, rng, budget_s, min_rounds, max_rounds,
                 timeout, overheads, progress=print):
        self.cand, self.best, self.scalar = candidate, best, scalar
        self.kernels = [k for k in (candidate, best, scalar) if k is not None]
        self.workers = list(dict.fromkeys(k.worker for k in self.kernels))
        self.rng, self.timeout, self.progress = rng, timeout, progress
        self.budget_s, self.min_rounds, self.max_rounds = budget_s, min_rounds, max_rounds
        # Only the candidate can cheat; the best kernel and the scalar baseline are trusted.
        self.audit = ClockAudit(overhead_ns=overheads.get(candidate.worker, 20_000.0))
        self.calls = []              # this combo's (kernel label, CallResult, where)
        self.started = None

    def _timed(self, combo_id, combo, kernel, fresh, w, which, verify_rng, limit=None):
        head, arrays = _prep(combo_id, combo, kernel, fresh, w, which, limit)
        small = _input_bytes(combo, fresh) <= SMALL_INPUT_BYTES
        verify = small or verify_rng.random() < VERIFY_FRACTION
        kernel.worker.phase = f"timing {combo.name} ({kernel.label})"
        res = kernel.worker.call(head, arrays, verify=verify, timeout=self.timeout)
        where = f"{combo.name} ({kernel.label})"
        self.calls.append((kernel.label, res, where))
        if res.inputs_modified:
            raise IntegrityError(f"the {kernel.label} kernel wrote to its input(s) "
                                 f"{', '.join(res.inputs_modified)} during a timed call in {where}")
        if res.threads > 1:
            raise IntegrityError(f"the {kernel.label} kernel left {res.threads - 1} extra thread(s) "
                                 f"running after a call in {where}")
        if res.oracle:
            raise IntegrityError(f"{res.oracle}, during a timed call in {where}")
        return res

    def _setup(self, combo_id, combo):
        arrays = {f"w{w}.{k}": a for w, wl in enumerate(combo.workloads) for k, a in wl.items()}
        for worker in self.workers:
            worker.request({"cmd": "workload", "combo": combo_id}, arrays,
                           timeout=self.timeout, phase=f"setup {combo.name}")
        ctor = {}
        for kernel in self.kernels:
            worker = kernel.worker
            scalars = {k: v for k, v in combo.init.items() if not isinstance(v, np.ndarray)}
            arrays = {k: v for k, v in combo.init.items() if isinstance(v, np.ndarray)}
            reply, _ = worker.request({"cmd": "construct", "kernel": kernel.name, "combo": combo_id,
                                       "init": scalars}, arrays, timeout=self.timeout,
                                      phase=f"constructing {combo.name} ({kernel.label})")
            ctor[kernel.label] = reply["ctor_ns"]
        return ctor

    def _round(self, combo_id, combo, r, verify_rng, record, pending):
        """One round on two fresh inputs, ABBA on even rounds and BAAB on odd ones
        (so neither kernel always runs first after the supervisor was busy)."""
        nw = len(combo.workloads)
        slots = [(2 * r) % nw, (2 * r + 1) % nw]
        fresh = [combo.fresh(self.rng, w) for w in slots]
        a, b = (self.cand, self.best) if r % 2 == 0 else (self.best, self.cand)
        order = [(a, 0), (b, 0), (b, 1), (a, 1)]
        times, outs = {}, {}
        for i, (kernel, s) in enumerate(order):
            if kernel is None:
                continue
            res = self._timed(combo_id, combo, kernel, fresh[s], slots[s], (r + i) % 2, verify_rng)
            times[(kernel.label, s)] = res.t_ns
            outs[(kernel.label, s)] = res.outputs
        for s in (0, 1):
            pending.append((fresh[s], slots[s], {k: outs[(k, s)] for k in
                                                 [x.label for x in (self.cand, self.best) if x]}))
        if record is not None:
            record.append(times)
        return times

    def _recheck(self, combo, pending):
        """Re-check every timed call's outputs (after the rounds, off the timed path)."""
        for fresh, slot, outs in pending:
            memo = {}
            for label, outputs in outs.items():
                msgs = combo.check(fresh, slot, outputs, self.rng, memo)
                if msgs:
                    raise CheckFailure(label, [f"timed call, {m}" for m in msgs])

    def _scalar_call(self, combo_id, combo, verify_rng):
        fresh = combo.fresh(self.rng, 0)
        res = self._timed(combo_id, combo, self.scalar, fresh, 0, 0, verify_rng,
                          limit=combo.scalar_units)
        return res.t_ns / combo.scalar_units

    def run(self, combos):
        """ComboRun per combo, in order; raises CheckFailure, IntegrityError, WorkerCrash."""
        self.started = time.monotonic()
        verify_rng = np.random.default_rng(self.rng.integers(1 << 63))
        runs = []
        for ci, combo in enumerate(combos):
            ctor = self._setup(ci, combo)
            pending = []
            warm = self._round(ci, combo, 0, verify_rng, None, pending)
            round_s = sum(warm.values()) / 1e9 + 4 * 200e-6
            left = self.budget_s - (time.monotonic() - self.started)
            rounds = int(np.clip(left / (len(combos) - ci) / round_s, self.min_rounds, self.max_rounds))
            rounds += rounds % 2                      # as many ABBA as BAAB rounds
            record = []
            for r in range(1, rounds + 1):
                self._round(ci, combo, r, verify_rng, record, pending)
            scalar_ns = [self._scalar_call(ci, combo, verify_rng) for _ in range(3)] \
                if self.scalar else None
            self._recheck(combo, pending)
            self._audit_combo(combo.name)
            a = [[t[("candidate", 0)], t[("candidate", 1)]] for t in record]
            b = [[t[("best", 0)], t[("best", 1)]] for t in record] if self.best else None
            result = stats.summarize_combo(combo.name, a, b, combo.units, self.rng, scalar_ns)
            for worker in self.workers:
                worker.request({"cmd": "drop", "combo": ci}, timeout=self.timeout)
            ratios = stats.round_ratios(a, b) if b is not None else None
            runs.append(ComboRun(result, ctor["candidate"], ratios))
            self.progress(_progress_line(result, rounds))
        return runs

    def _audit_combo(self, name):
        """Feed this combo's candidate calls to the audit, next to the best's."""
        by = {"candidate": [], "best": []}
        for label, res, _ in self.calls:
            by.setdefault(label, []).append(res)
        self.audit.add_combo(name, by["candidate"], by["best"])
        self.calls = []

    def clock_problems(self):
        return self.audit.problems()


def _progress_line(res, rounds):
    line = f"  {res.name:<32} {res.ns_per_unit:>12.1f} ns/unit"
    if res.ratio is not None:
        line += f"  ratio {res.ratio:.4f} [{res.ci_low:.4f}, {res.ci_high:.4f}]"
    return line + f"  ({rounds} rounds, spread {100 * res.spread:.1f}%)"
