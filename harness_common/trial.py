"""One trial of a target, from integrity check to ledger row.

`main()` is what every target's run_experiment.py calls. A trial:
  1. reads and checks the ledger, repairs best/ after an earlier crash;
  2. checks immutable files against the ledger's baseline commit;
  3. snapshots the candidate's sources, scans them, builds them (and the
     best kept kernel and the scalar baseline, usually from cache);
  4. starts two sandboxed workers pinned to one CPU: the candidate alone,
     and the best kernel with the scalar baseline;
  5. runs the correctness battery on the candidate (fresh seed);
  6. times candidate vs best in ABBA rounds, re-checking timed outputs and
     auditing the reported times against the OS;
  7. decides the verdict, appends one ledger row, swaps best/ if kept, and
     prints the result block.
Every early stop still writes a row (fail, build_fail, crash, tamper), except
when the ledger itself cannot be trusted or the harness has a bug.
"""
import argparse
import datetime
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from . import battery, cbuild, config, integrity, isa, ledger, verdict
from .integrity import IntegrityError
from .manager import KernelError, Worker, WorkerCrash
from .result import ResultBlock, combo_line
from .timing import CheckFailure, Kernel, Timer, calibrate

EXIT_OK, EXIT_INTERNAL, EXIT_CORRECTNESS, EXIT_BUILD, EXIT_CRASH, EXIT_POLICY = range(6)


class Stop(Exception):
    """Ends a trial early with a ledger status, an exit code and a reason."""

    def __init__(self, status, code, reason):
        super().__init__(reason)
        self.status, self.code, self.reason = status, code, reason


def parse_args(cfg, argv):
    mod = f"targets.{cfg.name}.run_experiment"
    parser = argparse.ArgumentParser(
        prog=f"python -m {mod}",
        description=f"Run one trial of the {cfg.name} kernel: build, correctness, speed vs "
                    f"the best kept kernel, verdict, one ledger row.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"""examples:
  python -m {mod} --description "unroll the scan by 4"
  python -m {mod} --quick                      # smoke run in seconds, never kept
  python -m {mod} --seed 1234                  # replay a failing correctness seed
  HARNESS_ISA=scalar python -m {mod} --quick   # force the scalar code path
  python -m {mod} --results-dir /tmp/scratch   # keep the real ledger untouched

exit codes: 0 trial completed (kept or not), 1 harness error or bad option,
2 correctness failure, 3 build failure, 4 crash/timeout/limit, 5 integrity or policy violation""")
    parser.add_argument("--description", default="", help="what this trial tries (goes in the ledger)")
    parser.add_argument("--seed", type=int, default=None, help="correctness and input seed (default: fresh)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run; never kept")
    parser.add_argument("--results-dir", default=None, help=f"ledger directory (default: results/{cfg.name})")
    parser.add_argument("--timeout", type=float, default=cfg.budget.call_timeout_seconds,
                        help="seconds one kernel call may take before it counts as a hang")
    parser.error = lambda msg: (parser.print_usage(sys.stderr),
                                print(f"error: {msg}", file=sys.stderr), sys.exit(EXIT_INTERNAL))
    return parser.parse_args(argv)


class Trial:
    def __init__(self, cfg, target_dir, args, battery_fn, combos_fn):
        self.cfg, self.args = cfg, args
        self.target_dir = target_dir
        self.root = target_dir.parent.parent
        self.battery_fn, self.combos_fn = battery_fn, combos_fn
        results = Path(args.results_dir) if args.results_dir else self.root / "results" / cfg.name
        self.ledger = ledger.Ledger(results, cfg.name)
        self.block = ResultBlock(cfg.unit)
        self.started = time.monotonic()
        self.workers = []
        self.tmp = None
        self.row = {"mode": "quick" if args.quick else "full", "description": args.description}

    # ------------------------------------------------------------ steps

    def say(self, text):
        print(text, flush=True)

    def prepare(self):
        self._lock = self.ledger.locked(wait=False)
        self._lock.__enter__()                    # held until the trial ends (see run)
        rows = self.ledger.rows()
        note = self.ledger.repair_best(rows)
        self.ledger.discard_stale_tmp()
        self.fingerprint = self.ledger.fingerprint()
        if note:
            self.say(f"note: {note}")
        self.best_row = self.ledger.best(rows)
        base = self.ledger.baseline(rows)
        commit, dirty = integrity.head_commit(self.root)
        if commit is None:
            raise Stop(None, EXIT_INTERNAL, f"{self.root} is not a git checkout with a commit; the "
                       f"ledger anchors immutable files to one (git init && git add -A && git commit)")
        self.row["commit"] = commit[:12] + ("+dirty" if dirty else "")
        self.row["seed"] = self.seed = self.args.seed if self.args.seed is not None else secrets.randbits(31)
        self.say(f"{self.cfg.name}: seed {self.seed} ({'replay' if self.args.seed is not None else 'fresh'})")
        try:
            self.row["isa"] = self.isa = isa.resolve(os.environ.get("HARNESS_ISA"))
        except isa.IsaError as exc:
            raise Stop(None, EXIT_INTERNAL, str(exc))
        self.baseline_commit = base["commit"].split("+")[0] if base else None
        try:
            if self.baseline_commit:
                full = integrity._git(self.root, "rev-parse", self.baseline_commit).strip()
                integrity.check_immutable(self.root, self.target_dir, full)
            else:
                integrity.check_immutable(self.root, self.target_dir, None)
        except IntegrityError as exc:
            raise Stop("tamper", EXIT_POLICY, str(exc))

    def build(self):
        cbuild.cache_dir().mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="trial-", dir=cbuild.cache_dir()))
        sources = {}
        for name in ledger.SOURCES:
            try:
                sources[name] = (self.target_dir / name).read_bytes()
            except OSError as exc:
                raise Stop("build_fail", EXIT_BUILD, f"cannot read {self.target_dir / name}: {exc.strerror}")
        self.sources = sources
        self.row["kernel_sha256"] = self.sha = ledger.kernel_sha256(sources)
        cand_dir = self.tmp / "candidate"
        cand_dir.mkdir()
        for name, data in sources.items():
            (cand_dir / name).write_bytes(data)
        found = integrity.scan_c(cand_dir / "kernels.c") + integrity.scan_python(cand_dir / "kernels.py")
        if found:
            raise Stop("tamper", EXIT_POLICY, "forbidden construct(s): " + "; ".join(found))
        t = time.monotonic()
        try:
            so = cbuild.build(cand_dir / "kernels.c", cbuild.read_cdef(cand_dir / "kernels.py"))
            self.kernel_paths = {"candidate": cand_dir / "kernels.py",
                                 "scalar": self.target_dir / "baseline.py"}
            cbuild.build(self.target_dir / "baseline.c", cbuild.read_cdef(self.target_dir / "baseline.py"),
                         vectorize=False)
            best = self.ledger.best_sources() if self.best_row else None
            if best is not None:
                best_dir = self.tmp / "best"
                best_dir.mkdir()
                for name, data in best.items():
                    (best_dir / name).write_bytes(data)
                cbuild.build(best_dir / "kernels.c", cbuild.read_cdef(best_dir / "kernels.py"))
                self.kernel_paths["best"] = best_dir / "kernels.py"
        except cbuild.BuildError as exc:
            raise Stop("build_fail", EXIT_BUILD, str(exc))
        found = integrity.check_symbols(cbuild.kernel_symbols(so) or (), "kernels.c")
        if found:
            raise Stop("tamper", EXIT_POLICY, "; ".join(found))
        self.build_seconds = time.monotonic() - t
        self.say(f"build: {self.build_seconds:.1f} s (isa {self.isa})")

    def start_workers(self):
        cpus = sorted(os.sched_getaffinity(0))
        self.cpu = cpus[-1]
        if len(cpus) > 1:
            os.sched_setaffinity(0, set(cpus[:-1]))     # the supervisor keeps off the timing CPU
        b = self.cfg.budget
        blocked = [f"targets.{self.cfg.name}.{m}" for m in ("reference", "inputs", "run_experiment")]
        blocked += ["reference", "inputs", "run_experiment"]
        setup = {"cmd": "setup", "isa": self.isa, "cpu": self.cpu, "compiler_id": cbuild.compiler_id(),
                 "cache_dir": str(cbuild.cache_dir()), "blocked": blocked, "root": str(self.root)}
        hosted = {"candidate": ["candidate"], "reference": [k for k in ("best", "scalar")
                                                            if k in self.kernel_paths]}
        self.kernels, self.overheads = {}, {}
        for role, names in hosted.items():
            w = Worker(role, self.tmp / f"{role}.log", b.worker_memory_mb,
                       int(b.trial_seconds * 10))
            self.workers.append(w)
            reply, _ = w.request(setup, timeout=60, phase="startup")
            self.amx = reply["amx"]
            self.overheads[w] = calibrate(w)
            spec = {n: {"path": str(self.kernel_paths[n]), "class": self.cfg.kernel_class,
                        "methods": list(self.cfg.kernel_methods)} for n in names}
            w.request({"cmd": "load", "kernels": spec}, timeout=120, phase=f"loading {role} kernels")
            for n in names:
                self.kernels[n] = Kernel(n, w, n)

    def plan(self):
        """The cases and combos of this trial (from the seed; before any pinning).

        Cached data (trained codebooks, encoded pools) is made here on a cold
        cache; that time is reported but not held against the trial budget."""
        t = time.monotonic()
        self.cases = self.battery_fn(self.seed, self.args.quick)
        self.combos = self.combos_fn(self.seed, self.args.quick)
        self.inputs_seconds = time.monotonic() - t
        self.say(f"inputs: {self.inputs_seconds:.1f} s")

    def correctness(self):
        cases = self.cases
        fails = battery.run(cases, self.kernels["candidate"], self.args.timeout, self.say)
        self.block.set("correctness", "FAIL" if fails else f"pass ({len(cases)} cases, seed {self.seed})")
        if fails:
            raise Stop("fail", EXIT_CORRECTNESS,
                       "correctness: " + " | ".join(fails) + f" (replay: --seed {self.seed})")

    def timing(self):
        b = self.cfg.budget
        combos = self.combos
        quick = self.args.quick
        timer = Timer(self.kernels["candidate"], self.kernels.get("best"), self.kernels.get("scalar"),
                      np.random.default_rng([self.seed, 7]),
                      b.quick_timing_seconds if quick else b.timing_seconds,
                      b.quick_rounds if quick else b.min_rounds,
                      b.quick_rounds if quick else b.max_rounds, self.args.timeout, self.overheads,
                      self.say)
        self.say(f"timing: {len(combos)} combos, candidate vs {'best' if 'best' in self.kernels else 'itself'}"
                 f" on cpu {self.cpu}")
        try:
            runs = timer.run(combos)
        except CheckFailure as exc:
            if exc.label != "candidate":
                raise RuntimeError(f"the {exc.label} kernel failed a re-check: {exc}")
            raise Stop("fail", EXIT_CORRECTNESS, "; ".join(exc.messages) + f" (replay: --seed {self.seed})")
        problems = timer.clock_problems()
        if problems:
            raise Stop("tamper", EXIT_POLICY, "; ".join(problems))
        for combo, run in zip(combos, runs):
            if run.result.ns_per_unit < combo.floor_ns:
                raise Stop("tamper", EXIT_POLICY,
                           f"implausible speed on {combo.name}: {run.result.ns_per_unit:.1f} ns per "
                           f"{self.cfg.unit} is below the physical floor {combo.floor_ns:.1f}")
        return runs

    # ------------------------------------------------------------ verdict

    def verdict(self, runs, peak_mb):
        fig = verdict.figures(runs, np.random.default_rng([self.seed, 11]))
        elapsed = time.monotonic() - self.started - self.inputs_seconds
        status, reasons = verdict.decide(fig, self.cfg.budget, peak_mb, elapsed, self.args.quick)
        unit, worst, fastest = self.cfg.unit, fig.worst, fig.fastest
        self.row.update(geomean_ns=f"{fig.geomean_ns:.1f}", worst_combo=worst.name,
                        worst_ns=f"{worst.ns_per_unit:.1f}", peak_rss_mb=f"{peak_mb:.1f}")
        if fig.ratio is not None:
            self.row.update(ratio_vs_best=f"{fig.ratio:.4f}", ratio_ci_low=f"{fig.ci_low:.4f}",
                            ratio_ci_high=f"{fig.ci_high:.4f}")
        blk = self.block
        blk.set(f"geomean_ns_per_{unit}", f"{fig.geomean_ns:.1f}")
        blk.set("ratio_vs_best", None if fig.ratio is None else f"{fig.ratio:.4f}")
        blk.set("ratio_ci95", None if fig.ratio is None else f"[{fig.ci_low:.4f}, {fig.ci_high:.4f}]")
        blk.set(f"worst_ns_per_{unit}", f"{worst.ns_per_unit:.1f} ({worst.name})")
        blk.set(f"best_ns_per_{unit}", f"{fastest.ns_per_unit:.1f} ({fastest.name})")
        blk.combos = [combo_line(r, unit) for r in fig.results]
        blk.set("speedup_vs_scalar", None if fig.speedup_vs_scalar is None
                else f"{fig.speedup_vs_scalar:.2f}")
        blk.set("constructor_ms", f"{fig.ctor_ms:.1f}")
        if fig.noisy:
            blk.set("warning", f"unstable timings (spread >= 10%) on {', '.join(fig.noisy)}: "
                               f"the machine is noisy; a verdict may flip on rerun")
        return status, "; ".join(reasons)

    # ------------------------------------------------------------ ledger

    def record(self, status, reason):
        total = time.monotonic() - self.started
        self.row.update(status=status, total_seconds=f"{total:.1f}",
                        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        if self.ledger.fingerprint() != self.fingerprint:
            raise ledger.LedgerError(f"{self.ledger.path} changed during the trial, written by "
                                     f"something other than this harness; nothing was added")
        kept_dir = None
        if status in ledger.KEPT:
            kept_dir = self.ledger.save_kept(self.sources, self.sha)
        self.ledger.append(self.row)
        if kept_dir is not None:
            self.ledger.point_best(kept_dir)
        blk = self.block
        blk.set("status", status)
        blk.set("reason", reason or None)
        blk.set("peak_rss_mb", self.row.get("peak_rss_mb"))
        build = getattr(self, "build_seconds", None)
        blk.set("build_seconds", None if build is None else f"{build:.1f}")
        inputs_s = getattr(self, "inputs_seconds", None)
        blk.set("inputs_seconds", None if inputs_s is None else f"{inputs_s:.1f}")
        blk.set("total_seconds", f"{total:.1f}")
        blk.set("isa", self.row.get("isa"))
        blk.set("amx_permission", getattr(self, "amx", "not requested"))
        blk.set("seed", self.row.get("seed"))
        blk.set("kernel_sha256", self.row.get("kernel_sha256", "")[:16] or None)
        blk.set("ledger", self.ledger.path)

    # ------------------------------------------------------------ driver

    def run(self):
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            return self._run_and_record()
        except config.ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return EXIT_INTERNAL
        except ledger.LedgerError as exc:
            print(f"ledger: {exc}", file=sys.stderr, flush=True)
            return EXIT_POLICY
        except ledger.LedgerBusy as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return EXIT_INTERNAL
        except KeyboardInterrupt:
            print("interrupted: no ledger row written", file=sys.stderr, flush=True)
            return 130
        except Exception:  # noqa: BLE001 - a harness bug: say so, write nothing
            traceback.print_exc()
            print("harness error: no ledger row written (this is a bug in the harness)",
                  file=sys.stderr, flush=True)
            return EXIT_INTERNAL
        finally:
            for w in self.workers:
                w.kill()
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
            if getattr(self, "_lock", None) is not None:
                self._lock.__exit__(None, None, None)

    def _run_and_record(self):
        """The trial's steps; every outcome a kernel can cause ends in a ledger row."""
        try:
            self.prepare()
            self.build()
            self.plan()
            self.start_workers()
            self.correctness()
            runs = self.timing()
            peak = self.workers[0].close()
            for w in self.workers[1:]:
                w.close()
            status, reason = self.verdict(runs, peak)
            self.record(status, reason)
            _emit(self.block.render())
            return EXIT_OK
        except Stop as stop:
            return self.stop(stop)
        except KernelError as exc:
            code = {"import": (EXIT_BUILD, "build_fail"), "api": (EXIT_BUILD, "build_fail"),
                    "policy": (EXIT_POLICY, "tamper")}.get(exc.kind, (EXIT_CRASH, "crash"))
            return self.stop(Stop(code[1], code[0], exc.message))
        except WorkerCrash as exc:
            return self.stop(Stop("tamper" if exc.policy else "crash",
                                  EXIT_POLICY if exc.policy else EXIT_CRASH, exc.reason))
        except IntegrityError as exc:
            return self.stop(Stop("tamper", EXIT_POLICY, str(exc)))

    def stop(self, stop):
        if self.tmp is not None:      # name the agent's files, not the trial's private copies
            rel = self.target_dir.relative_to(self.root)
            stop.reason = stop.reason.replace(str(self.tmp / "candidate"), str(rel))
        if "\n" in stop.reason:         # the whole text above the block, one line inside it
            self.say(stop.reason)
            stop.reason = " | ".join(line.strip() for line in stop.reason.splitlines() if line.strip())
        if stop.status is None:
            print(f"error: {stop.reason}", file=sys.stderr, flush=True)
            return stop.code
        for w in self.workers:
            w.kill()
        if self.workers:
            self.row["peak_rss_mb"] = f"{self.workers[0].peak_kb / 1024:.1f}"
        self.record(stop.status, stop.reason)
        _emit(self.block.render())
        return stop.code


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
