"""Timing: the candidate against the best kept kernel, in the same run, on one CPU.

A trial times in blocks. Each block starts a fresh pair of workers, one per
kernel, with the same history (hosts.py), the candidate's first in a secret half
of the blocks and the best's first in the other (start_orders), and heap blocks of sizes drawn
from the secret source before every construction (worker.py), so whatever a
process's layout luck gives one kernel (heap offsets, page colouring) is new
in every block: variance that the interval sees, not a bias it hides. Within a block every
combo runs rounds in ABBA order on even rounds and BAAB on odd ones
(A = candidate, B = best), both kernels on the same two fresh samples, so
drift within a round cancels in its ratio sum(A)/sum(B).

A sample is one or more calls, each on fresh content at fresh addresses; its
figure is the worker's CPU time across the window, read by the supervisor
from the OS while the worker is stopped (process.py). The other worker is
stopped meanwhile, so nothing of the candidate's can run in the best's
window. Short calls are batched into samples of about SAMPLE_NS so the
window's fixed cost stays small. Outputs of every timed call are re-checked
after the combo's rounds; which ones are checked in full, and how many rounds
run, come from a secret source, not from the trial seed.
"""
import secrets
import time

import numpy as np

from . import hosts, stats
from .calls import Call, Placed
from .cpuaudit import CpuAudit
from .integrity import IntegrityError

SAMPLE_NS = 1_000_000        # short calls are batched up to about this much work per sample
MAX_CALLS_PER_SAMPLE = 64
MAX_SAMPLE_BYTES = 16 << 20  # batching stops here (one call may be larger)
VERIFY_BYTES = 4 << 20       # calls with inputs this small are verified after every call
VERIFY_FRACTION = 0.25       # larger ones after a secret quarter of calls
PAD_BLOCKS = 8               # random heap blocks before each construction, 16 B to 64 KB each


class CheckFailure(RuntimeError):
    """A timed call's outputs failed the re-check."""

    def __init__(self, label, messages):
        super().__init__("; ".join(messages))
        self.label, self.messages = label, messages


def scalar_version(combo, call):
    """The call cut to `combo.scalar_units` units, for the slow scalar yardstick."""
    if not combo.batched:
        return call                      # nothing to cut: the yardstick makes the same call
    n = combo.scalar_units
    args = {k: (v[:n] if k in combo.batched else v) for k, v in call.args.items()}
    outs = {k: (d, (n, *s[1:])) for k, (d, s) in call.outputs.items()}
    return Call(call.method, args, outs, call.returns)


def calls_per_sample(call_ns, call_bytes):
    """How many calls one sample holds: about SAMPLE_NS of work, within the byte bound."""
    by_time = SAMPLE_NS // max(int(call_ns), 1)
    return int(max(1, min(by_time, MAX_CALLS_PER_SAMPLE, MAX_SAMPLE_BYTES // max(call_bytes, 1))))


def sample_bytes_bound(call_bytes):
    """The most arena one sample of such calls can need."""
    return call_bytes * calls_per_sample(1, call_bytes)


def start_orders(blocks, rng):
    """Per block, the order its two workers are started in: each order in half the
    blocks, which half drawn from `rng` (the secret source). Of two identical workers
    the one started first ran pq_l2 about 0.7% faster (A/A on Sapphire Rapids: 0.993
    with the candidate started first in every block, 1.007 with the best first), so a
    fixed order is a bias no interval sees; balanced, it cancels and the t interval
    over the blocks carries what is left."""
    flips = rng.permutation([i % 2 for i in range(blocks)])
    return [(lambda labels: labels[::-1]) if f else (lambda labels: list(labels)) for f in flips]


class Timer:
    """Runs the speed combos of a trial; see the module docstring."""

    def __init__(self, factory, combos, have_best, have_scalar, budget_s, min_rounds,
                 max_rounds, blocks, seed, timeout, progress=print, best_scale=1.0):
        self.factory, self.combos = factory, combos
        self.labels = ["candidate"] + (["best"] if have_best else [])
        self.have_scalar = have_scalar
        self.budget_s, self.min_rounds, self.max_rounds = budget_s, min_rounds, max_rounds
        self.blocks, self.timeout, self.progress = blocks, timeout, progress
        self.content = np.random.default_rng([seed, 7])           # replayable inputs
        self.secret = np.random.default_rng(secrets.randbits(128))  # checks, layout, rounds
        self.audit = CpuAudit()
        self.peaks = {}
        self.best_scale = best_scale    # != 1 only in `calibrate`: a known slowdown of the best
        self.first = start_orders(blocks, self.secret)

    # ------------------------------------------------------------ one sample

    def _sample(self, host, ci, combo, calls, which):
        """Time one sample on `host`; returns (cpu ns, outputs per call)."""
        w = host.worker
        w.phase = f"timing {combo.name} ({host.label})"
        placed = Placed(w.arena, calls, which, self.secret)
        _, _, prep = w.request({"cmd": "prep", "kernel": host.label, "combo": ci,
                                "calls": placed.specs}, timeout=self.timeout)
        span = w.window(self.timeout)
        self.audit.sample(combo.name, host, sum(map(len, placed.inputs + placed.outputs)), prep, span)
        small = sum(c.nbytes() for c in calls) <= VERIFY_BYTES * len(calls)
        placed.check_policy(w.threads(), f"the {host.label} kernel", f"a timed call in {combo.name}",
                            inputs=small or self.secret.random() < VERIFY_FRACTION)
        cpu = span.cpu_ns * self.best_scale if host.label == "best" else span.cpu_ns
        return cpu, placed.results()

    def _round(self, pair, ci, combo, r, per_sample, pending):
        """One round on two fresh samples, ABBA on even rounds and BAAB on odd ones."""
        samples = [[combo.call(self.content) for _ in range(per_sample)] for _ in (0, 1)]
        a, b = (pair[0], pair[-1]) if r % 2 == 0 else (pair[-1], pair[0])
        order = [(a, 0), (b, 0), (b, 1), (a, 1)] if len(pair) > 1 else [(a, 0), (a, 1)]
        times, outs = {}, {}
        for i, (host, s) in enumerate(order):
            times[(host.label, s)], outs[(host.label, s)] = self._sample(
                host, ci, combo, samples[s], (r + i) % 2)
        for s in (0, 1):
            for j, call in enumerate(samples[s]):
                pending.append((call, {h.label: outs[(h.label, s)][j] for h in pair}))
        return times

    def _recheck(self, combo, pending):
        """Re-check every timed call's outputs, off the timed path."""
        for call, outs in pending:
            memo = {}
            for label, outputs in outs.items():
                msgs = combo.check(call, outputs, self.secret, memo)
                if msgs:
                    raise CheckFailure(label, [f"timed call, {m}" for m in msgs])

    def _scalar(self, host, ci, combo):
        cpu = [self._sample(host, ci, combo, [scalar_version(combo, combo.call(self.content))], 0)[0]
               for _ in range(3)]
        return [c / combo.scalar_units for c in cpu]

    # ------------------------------------------------------------ a block

    def _construct(self, host, ci, combo):
        scalars = {k: v for k, v in combo.init.items() if not isinstance(v, np.ndarray)}
        arrays = {k: v for k, v in combo.init.items() if isinstance(v, np.ndarray)}
        _, _, span = host.worker.request(
            {"cmd": "construct", "kernel": host.label, "combo": ci, "init": scalars,
             "pad": (16 * self.secret.integers(1, 4096, PAD_BLOCKS)).tolist()},   # worker.py
            arrays,
            timeout=self.timeout, phase=f"constructing {combo.name} ({host.label})")
        host.ctor_ns[ci] = span.cpu_ns

    def _plan_rounds(self, ci, round_s):
        """Rounds per block for a combo, from its warm-up round's wall time (the
        supervisor's writes and re-checks included) and the time left."""
        # The later pairs' start-up and their warm-up round per combo come out of the
        # same budget, so they are reserved before the rounds are shared out.
        later = self.blocks - 1
        left = self.budget_s - (time.monotonic() - self.started) - later * self.pair_start_s
        total = left / (len(self.combos) - ci) / (round_s * 1.5) - later
        total = int(np.clip(total, self.min_rounds, self.max_rounds))
        total -= int(self.secret.integers(0, 3))        # not predictable from the seed
        per_block = max(2, total // self.blocks)
        return per_block + per_block % 2                # as many ABBA as BAAB rounds

    def _block(self, b, record):
        self.progress(f"  worker pair {b + 1} of {self.blocks}")
        t = time.monotonic()
        hosts_by_label = {label: self.factory.start(label) for label in self.first[b](self.labels)}
        pair = [hosts_by_label[label] for label in self.labels]
        if b == 0:
            self.pair_start_s = time.monotonic() - t
        scalar = self.factory.start("scalar") if self.have_scalar and b == 0 else None
        started = pair + ([scalar] if scalar else [])
        try:
            for ci, combo in enumerate(self.combos):
                for host in started:
                    self._construct(host, ci, combo)
                rec = record[ci]
                if b == 0:
                    warm = self._round(pair, ci, combo, 0, 1, [])
                    rec["per_sample"] = calls_per_sample(max(warm.values()),
                                                         combo.call(self.content).nbytes())
                    t, pending = time.monotonic(), []
                    self._round(pair, ci, combo, 1, rec["per_sample"], pending)
                    self._recheck(combo, pending)
                    rec["rounds"] = self._plan_rounds(ci, time.monotonic() - t)
                else:
                    self._round(pair, ci, combo, 1, rec["per_sample"], [])     # warm this process
                pending, times = [], []
                for r in range(rec["rounds"]):
                    times.append(self._round(pair, ci, combo, r, rec["per_sample"], pending))
                if scalar is not None:
                    rec["scalar"] = self._scalar(scalar, ci, combo)
                self._recheck(combo, pending)
                for host in started:
                    host.check_oracle(f"the {host.label} kernel, in {combo.name}", self.timeout)
                rec["blocks"].append(times)
                for host in started:
                    host.worker.request({"cmd": "drop", "combo": ci}, timeout=self.timeout)
                rec["ctor"] = max(rec.get("ctor", 0), pair[0].ctor_ns[ci])
                if b == self.blocks - 1:
                    self.progress(_progress_line(self._result(combo, rec), rec))
        finally:
            for label, peak in hosts.stop_all(started).items():
                self.peaks[label] = max(self.peaks.get(label, 0.0), peak)

    # ------------------------------------------------------------ the trial's timing

    def _result(self, combo, rec):
        units = combo.units * rec["per_sample"]
        a = [[[t[("candidate", 0)], t[("candidate", 1)]] for t in blk] for blk in rec["blocks"]]
        b = [[[t[("best", 0)], t[("best", 1)]] for t in blk] for blk in rec["blocks"]] \
            if "best" in self.labels else None
        return stats.summarize_combo(combo.name, a, b, units, self.secret, rec.get("scalar"),
                                     rec.get("ctor", 0))

    def run(self):
        """stats.ComboResult per combo, in order; raises CheckFailure, IntegrityError, WorkerCrash."""
        self.started = time.monotonic()
        record = [{"blocks": []} for _ in self.combos]
        for b in range(self.blocks):
            self._block(b, record)
        problems = self.audit.problems()
        if problems:
            raise IntegrityError("; ".join(problems))
        return [self._result(combo, rec) for combo, rec in zip(self.combos, record)]


def _progress_line(res, rec):
    line = f"  {res.name:<32} {res.ns_per_unit:>12.1f} ns/unit"
    if res.ratio is not None:
        line += f"  ratio {res.ratio:.4f} [{res.ci_low:.4f}, {res.ci_high:.4f}]"
    return line + (f"  ({res.rounds} rounds in {len(rec['blocks'])} worker pairs, "
                   f"{rec['per_sample']} call(s) per sample, cv {100 * res.cv:.1f}%)")
