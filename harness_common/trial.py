"""One trial of a target, from integrity check to ledger row.

`main()` is what every target's run_experiment.py calls. A trial:
  1. takes the ledger's lock, repairs best/ after an earlier crash, and checks
     immutable files against the ledger's anchor commit (ledger.py, immutable.py);
  2. claims a CPU pair machine-wide: one to time on, one for itself (cpus.py);
  3. copies the candidate's sources, scans them, and builds them, the best kept
     kernel and the scalar baseline afresh in its private directory, at the
     ISA cap, checking includes, library calls and machine code (cbuild.py,
     integrity.py, machinecode.py);
  4. makes this trial's cases and combos from the seed (the target's plan.py data);
  5. runs the correctness battery on the candidate in a worker of its own
     (battery.py, hosts.py);
  6. times candidate vs best in fresh worker pairs, re-checking timed outputs
     and auditing the workers' CPU (timing.py, process.py, cpuaudit.py, stats.py);
  7. decides the verdict, appends one ledger row, swaps best/ if kept, and
     prints the result block (verdict.py, ledger.py, result.py).
At a level the CPU lacks (HARNESS_ISA=avx512 or amx) the candidate is built
emulated (isa.py, cbuild.flags_for) and the trial stops after step 5 with
status `emulated`: correctness only, never timed, never kept.
What each way of stopping early means (row or not, status, exit code) is one
table, OUTCOMES, below.
"""
import datetime
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import (battery, cbuild, config, cpus, immutable, integrity, isa, ledger, machinecode,
               sandbox, timing, verdict)
from .cli import (EXIT_BUILD, EXIT_CORRECTNESS, EXIT_CRASH, EXIT_INTERNAL, EXIT_OK,
                  EXIT_POLICY, parse_args)
from .hosts import HostFactory
from .integrity import IntegrityError
from .process import KernelError, SandboxError, WorkerCrash
from .result import ResultBlock, fmt
from .timing import CheckFailure

# Fresh worker pairs per full / quick trial. Eight, not four: the interval is a
# t interval over the pairs, and with pq_l2's single-query calls four pairs gave
# A/A intervals of about +-2%, eight about +-1.3% (same total rounds).
BLOCKS, QUICK_BLOCKS = 8, 1


class Stop(Exception):
    """Ends a trial early: `status` None writes no row (a setup mistake, with its fix)."""

    def __init__(self, status, code, reason):
        super().__init__(reason)
        self.status, self.code, self.reason = status, code, reason


class ReferenceBroken(RuntimeError):
    """The best kept kernel or the scalar baseline failed: nothing to judge against."""


def _kernel_stop(exc):
    kind = {"import": ("build_fail", EXIT_BUILD), "api": ("build_fail", EXIT_BUILD),
            "policy": ("tamper", EXIT_POLICY)}.get(exc.kind, ("crash", EXIT_CRASH))
    return Stop(*kind, exc.message)


# What stops a trial, and how: one place. Setup mistakes and a broken reference
# write no row (the candidate was not judged); everything a kernel causes does.
OUTCOMES = [
    (Stop, lambda e: e),
    ((config.ConfigError, ledger.LedgerError, ledger.LedgerBusy, cpus.CpusBusy, ReferenceBroken,
      machinecode.MachineCodeError), lambda e: Stop(None, EXIT_INTERNAL, str(e))),
    (SandboxError, lambda e: Stop(None, EXIT_INTERNAL, f"{e} (where the OS cannot confine "
                                  f"workers, --no-sandbox runs anyway and the row says so)")),
    (cbuild.BuildError, lambda e: Stop("build_fail", EXIT_BUILD, str(e))),
    (integrity.PreprocessorError, lambda e: Stop("build_fail", EXIT_BUILD, str(e))),
    (KernelError, _kernel_stop),
    (WorkerCrash, lambda e: Stop("tamper" if e.policy else "crash",
                                 EXIT_POLICY if e.policy else EXIT_CRASH, e.reason)),
    (IntegrityError, lambda e: Stop("tamper", EXIT_POLICY, str(e))),
    (CheckFailure, lambda e: Stop("fail", EXIT_CORRECTNESS, "; ".join(e.messages))),
]


@dataclass
class State:
    """What a trial has learned so far; every field has a value from the start."""
    seed: int = 0
    isa: str = "scalar"
    cpu: int | None = None
    sources: dict = field(default_factory=dict)
    sha: str = ""
    kernels: dict = field(default_factory=dict)     # label -> what a worker needs to load it
    build_seconds: float | None = None
    inputs_seconds: float = 0.0
    waited: float = 0.0                             # for another trial's CPU pair
    cases: list = field(default_factory=list)
    combos: list = field(default_factory=list)
    peak_mb: float | None = None
    sandbox: str = "on"
    amx: str = "not requested"
    emulated: bool = False                          # the level runs emulated: correctness only


class Trial:
    def __init__(self, cfg, target_dir, args, battery_fn, combos_fn, best_scale=1.0):
        """`best_scale` != 1 only from `calibrate`: a best made slower by a known amount."""
        self.cfg, self.args, self.best_scale = cfg, args, best_scale
        self.status, self.reasons, self.figures, self.total_seconds = None, [], None, 0.0
        self.target_dir = target_dir
        self.root = target_dir.parent.parent
        self.battery_fn, self.combos_fn = battery_fn, combos_fn
        results = Path(args.results_dir) if args.results_dir else self.root / "results" / cfg.name
        self.ledger = ledger.Ledger(results, cfg.name)
        self.block = ResultBlock(cfg.unit)
        self.started = time.monotonic()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"trial-{cfg.name}-"))
        self.s = State()
        self.row = {"mode": "quick" if args.quick else "full", "description": args.description,
                    "cpu": isa.cpu_model(), "sandbox": "on"}
        self.claim = None

    def say(self, text):
        print(text, flush=True)

    # ------------------------------------------------------------ 1. ledger and files

    def prepare(self):
        rows = self.ledger.rows()
        note = self.ledger.repair_best(rows)
        self.ledger.discard_stale_tmp()
        self.fingerprint = self.ledger.fingerprint()
        if note:
            self.say(f"note: {note}")
        self.best_row = self.ledger.best(rows)
        anchor = self.ledger.anchor(rows)
        commit, dirty = immutable.head_commit(self.root)
        if commit is None:
            raise Stop(None, EXIT_INTERNAL, f"{self.root} is not a git checkout with a commit; the "
                       f"ledger anchors immutable files to one (git init && git add -A && git commit)")
        self.row["commit"] = commit[:12] + ("+dirty" if dirty else "")
        s = self.s
        s.seed = self.args.seed if self.args.seed is not None else secrets.randbits(31)
        self.row["seed"] = s.seed
        self.say(f"{self.cfg.name}: seed {s.seed} ({'replay' if self.args.seed is not None else 'fresh'})")
        try:
            s.isa = isa.resolve(os.environ.get("HARNESS_ISA"))
        except isa.IsaError as exc:
            raise Stop(None, EXIT_INTERNAL, str(exc))
        s.emulated = isa.emulated(s.isa)
        self.row["isa"] = isa.describe(s.isa)
        if s.emulated:
            self.say(f"isa: {s.isa} is emulated (this CPU's level is {isa.machine_level()}): "
                     f"the battery runs on the emulated build; no timing, never kept")
            if self.args.reanchor is not None:
                raise Stop(None, EXIT_INTERNAL, f"--reanchor re-measures the best kernel, which "
                           f"cannot be timed at {s.isa} on this CPU (emulated); unset HARNESS_ISA "
                           f"or run it on a CPU with {s.isa}")
        if self.args.reanchor is not None:
            self._prepare_reanchor(anchor)
        elif anchor is None:
            self._require_committed("before the baseline trial")
        else:
            immutable.check_immutable(self.root, self.target_dir, anchor["commit"])

    def _require_committed(self, when):
        changed = immutable.changed_immutable(self.root, self.target_dir, "HEAD")
        if changed:
            raise Stop(None, EXIT_INTERNAL, f"immutable file(s) differ from HEAD {when}: "
                       f"{', '.join(changed)}; commit them first (the ledger anchors to a commit)")

    def _prepare_reanchor(self, anchor):
        if not self.args.reanchor.strip():
            raise Stop(None, EXIT_INTERNAL, "--reanchor needs a reason: --reanchor \"what changed and why\"")
        if self.best_row is None or anchor is None:
            raise Stop(None, EXIT_INTERNAL, f"{self.ledger.path} has no kept kernel to re-anchor; "
                       f"run a normal trial to record a baseline")
        if self.args.quick:
            raise Stop(None, EXIT_INTERNAL, "--reanchor re-measures the reference: it cannot be --quick")
        self._require_committed("when re-anchoring")
        self.row["anchor"] = self.args.reanchor
        self.row["description"] = self.row["description"] or f"reanchor: {self.args.reanchor}"

    # ------------------------------------------------------------ 3. builds

    def _copy(self, label, sources):
        d = self.tmp / label
        d.mkdir()
        for name, data in sources.items():
            (d / name).write_bytes(data)
        return d

    def _build(self, label, py_path, c_path, vectorize=True):
        so = cbuild.build(c_path, cbuild.read_cdef(py_path), vectorize, self.s.isa, self.tmp / "so")
        self.s.kernels[label] = {"py": str(py_path), "so": str(so), "module": so.name.split(".")[0],
                                 "class": self.cfg.kernel_class, "methods": list(self.cfg.kernel_methods)}
        return so

    def build(self):
        s = self.s
        (self.tmp / "so").mkdir()
        self.tmp.chmod(0o755)
        if self.args.reanchor is not None:
            sources = self.ledger.best_sources()
        else:
            sources = {}
            for name in ledger.SOURCES:
                try:
                    sources[name] = (self.target_dir / name).read_bytes()
                except OSError as exc:
                    raise Stop("build_fail", EXIT_BUILD, f"cannot read {self.target_dir / name}: {exc.strerror}")
        s.sources = sources
        s.sha = self.row["kernel_sha256"] = ledger.kernel_sha256(sources)
        cand = self._copy("candidate", sources)
        c_path = cand / "kernels.c"
        found = integrity.scan_c(c_path) + integrity.scan_python(cand / "kernels.py")
        if found:
            raise IntegrityError("forbidden construct(s): " + "; ".join(found))
        t = time.monotonic()
        found = integrity.check_includes(c_path, [cbuild.INCLUDE_DIR],
                                         flags=cbuild.flags_for(True, s.isa))
        if found:
            raise IntegrityError("; ".join(found))
        refs = [("scalar", self.target_dir / "baseline.py", self.target_dir / "baseline.c", False)]
        if s.emulated:
            refs = []                   # best and scalar are timing references: not needed
        elif self.best_row is not None and self.args.reanchor is None:
            best = self._copy("best", self.ledger.best_sources())
            refs.append(("best", best / "kernels.py", best / "kernels.c", True))
        with ThreadPoolExecutor(max(1, len(refs))) as pool:   # the compilers run in parallel
            ref_builds = [pool.submit(self._build, *r) for r in refs]
            so = self._build("candidate", cand / "kernels.py", c_path)
            try:
                for b in ref_builds:
                    b.result()
            except cbuild.BuildError as exc:
                raise ReferenceBroken(f"the best kept kernel or the scalar baseline does not build "
                                      f"at isa {s.isa}: {exc}")
        found = integrity.check_symbols(cbuild.kernel_symbols(so), "kernels.c")
        # An emulated build must hold nothing above the CPU's own level.
        found += machinecode.above_cap(so, isa.native_level(s.isa))
        if found:
            raise IntegrityError("; ".join(found) + f" (HARNESS_ISA cap: {isa.describe(s.isa)})")
        s.build_seconds = time.monotonic() - t
        self.say(f"build: {s.build_seconds:.1f} s (isa {isa.describe(s.isa)}; "
                 + ("candidate only: an emulated trial is not timed)" if s.emulated else
                    "candidate, best and scalar compiled by this trial)"))

    # ------------------------------------------------------------ 4-6. plan, battery, timing

    def plan(self):
        """This trial's cases and combos; cached data made on a cold cache is not
        held against the trial budget."""
        t = time.monotonic()
        self.s.cases = self.battery_fn(self.s.seed, self.args.quick)
        if not self.s.emulated:         # combos are timing workloads
            self.s.combos = self.combos_fn(self.s.seed, self.args.quick)
        self.s.inputs_seconds = time.monotonic() - t
        self.say(f"inputs: {self.s.inputs_seconds:.1f} s")

    def _factory(self):
        probe = np.random.default_rng(0)
        biggest = max([timing.sample_bytes_bound(c.call(probe).nbytes()) for c in self.s.combos] +
                      [call.nbytes() for case in self.s.cases for call in case.calls])
        b = self.cfg.budget
        # Kernel code may import none of the target's own modules but itself (the
        # reference, the inputs, the checks, the FAISS comparison...).
        own = sorted(p.stem for p in self.target_dir.glob("*.py") if p.stem != "kernels")
        blocked = ["targets"] + [f"targets.{self.cfg.name}.{m}" for m in own] + own
        return HostFactory(self.tmp, self.s.isa, self.s.cpu, blocked, str(self.root),
                           self.s.kernels, 2 * biggest + (1 << 20), b.worker_memory_mb,
                           int(b.trial_seconds * 10), require_sandbox=not self.args.no_sandbox)

    def correctness(self, factory):
        host = factory.start("candidate")
        try:
            fails = battery.run(self.s.cases, host, self.args.timeout, self.say)
        finally:
            self.s.peak_mb = host.worker.close()
            host.worker.arena.close()
        self.s.sandbox, self.s.amx = host.sandbox, host.amx
        self.block.set("correctness", "FAIL" if fails else
                       f"pass ({len(self.s.cases)} cases, seed {self.s.seed})")
        if fails:
            raise Stop("fail", EXIT_CORRECTNESS, "correctness: " + " | ".join(fails))

    def timing(self, factory):
        b, quick = self.cfg.budget, self.args.quick
        have_best = "best" in self.s.kernels
        timer = timing.Timer(factory, self.s.combos, have_best, True,
                             b.quick_timing_seconds if quick else b.timing_seconds,
                             b.quick_rounds if quick else b.min_rounds,
                             b.quick_rounds if quick else b.max_rounds,
                             QUICK_BLOCKS if quick else BLOCKS, self.s.seed, self.args.timeout, self.say,
                             best_scale=self.best_scale)
        self.say(f"timing: {len(self.s.combos)} combos, candidate vs "
                 f"{'best' if have_best else 'itself'} on cpu {self.s.cpu}, figures from the OS's "
                 f"CPU time of each worker")
        try:
            runs = timer.run()
        except CheckFailure as exc:
            if exc.label != "candidate":
                raise ReferenceBroken(f"the best kept kernel failed a re-check of its timed outputs "
                                      f"on this trial's inputs ({'; '.join(exc.messages)}); it cannot "
                                      f"be the reference: fix best/ by re-anchoring or restart the ledger")
            raise
        self.s.peak_mb = max(self.s.peak_mb or 0.0, timer.peaks.get("candidate", 0.0))
        for combo, run in zip(self.s.combos, runs):
            if run.ns_per_unit < combo.floor_ns:
                raise IntegrityError(f"implausible speed on {combo.name}: {run.ns_per_unit:.1f} "
                                     f"ns per {self.cfg.unit} is below the physical floor {combo.floor_ns:.1f}")
        return runs

    # ------------------------------------------------------------ 7. verdict and ledger

    def verdict(self, runs):
        s = self.s
        fig = verdict.figures(runs, np.random.default_rng([s.seed, 11]), [c.mode for c in s.combos])
        elapsed = time.monotonic() - self.started - s.inputs_seconds - s.waited
        status, reasons = verdict.decide(fig, self.cfg.budget, s.peak_mb, elapsed, self.args.quick)
        if self.args.reanchor is not None:
            status, reasons = "reanchor", []
        self.figures, self.reasons = fig, reasons
        self.row.update(geomean_ns=fig.geomean_ns, worst_combo=fig.worst.name,
                        worst_ns=fig.worst.ns_per_unit, peak_rss_mb=s.peak_mb, ratio_vs_best=fig.ratio,
                        ratio_ci_low=fig.ci_low, ratio_ci_high=fig.ci_high)
        self.block.add_figures(fig)
        return status, "; ".join(reasons)

    def _emulated_reason(self):
        battery = "quick battery" if self.args.quick else "full battery"
        return (f"correctness only: isa {self.s.isa} is emulated on this CPU "
                f"({self.row['cpu'] or 'unknown model'}), which lacks it; the {battery} passed on the "
                f"emulated build; not timed, never kept: time it on a CPU with {self.s.isa}")

    def record(self, status, reason):
        s = self.s
        total = self.total_seconds = time.monotonic() - self.started
        self.status = status
        self.row.update(status=status, total_seconds=total, sandbox=s.sandbox.split(":")[0],
                        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        self.row.setdefault("peak_rss_mb", s.peak_mb)
        if self.ledger.fingerprint() != self.fingerprint:
            raise ledger.LedgerError(f"{self.ledger.path} changed during the trial, written by "
                                     f"something other than this harness; nothing was added")
        kept_dir = self.ledger.save_kept(s.sources, s.sha) if status in ledger.KEPT else None
        self.ledger.append(self.row)
        if kept_dir is not None:
            self.ledger.point_best(kept_dir)
        blk = self.block
        for key, value in (("status", status), ("reason", reason or None),
                           ("peak_rss_mb", fmt(self.row["peak_rss_mb"], "mb")),
                           ("build_seconds", fmt(s.build_seconds, "s")),
                           ("inputs_seconds", fmt(s.inputs_seconds, "s")),
                           ("total_seconds", fmt(total, "s")), ("isa", isa.describe(s.isa)),
                           ("sandbox", s.sandbox),
                           ("amx_permission", "not needed (emulated)" if s.emulated and s.isa == "amx"
                            else s.amx), ("cpu", self.row["cpu"]), ("seed", s.seed),
                           ("kernel_sha256", s.sha[:16] or None), ("ledger", self.ledger.path)):
            blk.set(key, value)

    # ------------------------------------------------------------ driver

    def steps(self):
        with self.ledger.locked(wait=False):
            try:
                self.prepare()
                self.affinity = os.sched_getaffinity(0)
                t = time.monotonic()
                self.claim = cpus.claim(self.cfg.name, self.args.cpu_wait, self.say, self.affinity)
                self.s.waited = time.monotonic() - t       # another trial's time, not this one's
                self.s.cpu = self.claim.timing
                # The compilers may use both claimed CPUs (nothing is timed yet); from
                # then on the supervisor never runs on the timing CPU.
                os.sched_setaffinity(0, {self.claim.timing, self.claim.supervisor})
                self.build()
                os.sched_setaffinity(0, {self.claim.supervisor})
                self.plan()
                factory = self._factory()
                self.correctness(factory)
                if self.s.emulated:
                    self.record("emulated", self._emulated_reason())
                else:
                    runs = self.timing(factory)
                    status, reason = self.verdict(runs)
                    self.record(status, reason)
            except Exception as exc:  # noqa: BLE001 - mapped by OUTCOMES, or re-raised
                stop = _outcome(exc)
                if stop is None:
                    raise
                self.stop(stop)
                return stop.code
        _emit(self.block.render())
        return EXIT_OK

    def stop(self, stop):
        """Record an early stop (unless it is a setup mistake) and print why."""
        stop.reason = stop.reason.replace(str(self.tmp / "candidate"),
                                          str(self.target_dir.relative_to(self.root)))
        if stop.status == "fail" and "--seed" not in stop.reason:
            stop.reason += f" (replay: --seed {self.s.seed})"
        if "\n" in stop.reason:         # the whole text above the block, one line inside it
            self.say(stop.reason)
            stop.reason = " | ".join(line.strip() for line in stop.reason.splitlines() if line.strip())
        if stop.status is None:
            print(f"error: {stop.reason}", file=sys.stderr, flush=True)
            return
        self.record(stop.status, stop.reason)
        _emit(self.block.render())

    def run(self):
        signal.signal(signal.SIGTERM, _interrupt)
        sandbox.make_supervisor_private()
        try:
            return self.steps()
        except KeyboardInterrupt:
            print("interrupted: no ledger row written", file=sys.stderr, flush=True)
            return 130
        except Exception as exc:  # noqa: BLE001
            stop = _outcome(exc)
            if stop is not None and stop.status is None:   # before the trial could record
                print(f"error: {stop.reason}", file=sys.stderr, flush=True)
                return stop.code
            import traceback
            traceback.print_exc()
            print("harness error: no ledger row written (this is a bug in the harness)",
                  file=sys.stderr, flush=True)
            return EXIT_INTERNAL
        finally:
            if self.claim is not None:
                self.claim.release()
                os.sched_setaffinity(0, self.affinity)
            shutil.rmtree(self.tmp, ignore_errors=True)


def _outcome(exc):
    for kind, make in OUTCOMES:
        if isinstance(exc, kind):
            return make(exc)
    return None


def _emit(text):
    """Print the result block; a reader that went away (`| head`) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        sys.stdout = None


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(run_file, battery_fn, combos_fn, argv=None):
    """Entry point for targets/<name>/run_experiment.py."""
    target_dir = Path(run_file).resolve().parent
    try:
        cfg = config.load(target_dir / "target.toml")
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    args = parse_args(cfg, argv)
    return Trial(cfg, target_dir, args, battery_fn, combos_fn).run()
