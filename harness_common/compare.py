"""Ours vs the rivals vs the scalar baseline vs a roofline estimate, measured in one run.

    python -m harness_common compare pq_l2
    python -m harness_common compare campq_encode --kernel best --rounds 30
    python -m harness_common compare posting_intersect

Each target's `compare.py` says what to compare (its combos), who the rivals
are and how they do the same work on the same data (FAISS for the vector
targets; CRoaring and numpy for posting lists), and the roofline model. Here
they are timed in one process pinned to one CPU, rivals on one thread,
interleaved call by call (who goes first rotates every round) on the same
fresh inputs, and every implementation's outputs are checked against the
reference. A human tool: it imports the kernel directly, unsandboxed.
"""
import gc
import importlib
import importlib.util
import os
import subprocess
import sys
import time

import numpy as np

from . import isa, peaks, stats
from .calls import run_direct
from .timing import scalar_version

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _call(kernel, call):
    """Run one call of our (or the scalar) kernel on fresh outputs; returns (ns, outputs)."""
    outputs = {key: np.empty(shape, dtype) for key, (dtype, shape) in call.outputs.items()}
    t = time.perf_counter_ns()
    run_direct(kernel, call, outputs=outputs)
    return time.perf_counter_ns() - t, outputs


def _rivals(spec, out):
    """({rival name: callable(combo) -> prepare}, header words), or None after saying what is missing.

    A target's compare.py either defines `rivals(combo) -> {name: prepare}` (with
    `RIVALS_NEED`, what to install), or `faiss_runner(combo, faiss)` for FAISS alone;
    `prepare(call)` does the untimed setup and returns the timed callable -> outputs."""
    if hasattr(spec, "rivals"):
        try:
            versions = spec.rival_versions()
        except ImportError as exc:
            out(f"compare needs {spec.RIVALS_NEED}: pip install -e '.[compare]' ({exc})")
            return None
        return spec.rivals, versions
    blas = _choose_faiss_blas() if "faiss" not in sys.modules else "OpenBLAS as already loaded"
    try:
        import faiss
    except ImportError:
        out("compare needs FAISS: pip install -e '.[compare]' (faiss-cpu from PyPI)")
        return None
    faiss.omp_set_num_threads(1)
    return ((lambda combo: {"faiss": spec.faiss_runner(combo, faiss)}),
            f"FAISS {faiss.__version__} (1 thread, {blas})")


# FAISS encodes through BLAS (sgemm per subspace), and faiss-cpu wheels bundle
# their own OpenBLAS, which picks its kernels from the CPU model when it loads.
# A model newer than that OpenBLAS (Intel family 6 model 207 against the 0.3.15
# in faiss-cpu 1.15.1) falls back to its generic SSE3 kernels ("Prescott"), and
# FAISS runs 4x slower than it does on that CPU with the right kernels: a
# speedup against a handicapped rival. compare asks a fresh process which
# kernels FAISS's OpenBLAS chose and, where it fell back, names the best family
# the CPU supports before FAISS is loaded here. A user's own OPENBLAS_CORETYPE wins.
_GENERIC_CORES = {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "unknown", ""}
_CORE_PROBE = """
import ctypes, faiss
path = next(line.split()[-1] for line in open('/proc/self/maps') if 'openblas' in line)
lib = ctypes.CDLL(path)
lib.openblas_get_corename.restype = ctypes.c_char_p
print(lib.openblas_get_corename().decode())
"""


def _faiss_blas_core():
    """The kernel family FAISS's OpenBLAS picks on this CPU ('' if it cannot be told)."""
    try:
        done = subprocess.run([sys.executable, "-c", _CORE_PROBE], capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _choose_faiss_blas(flags=None):
    """Set OPENBLAS_CORETYPE for FAISS where its OpenBLAS would run generic kernels; returns a note."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return f"OpenBLAS {os.environ['OPENBLAS_CORETYPE']} kernels, from OPENBLAS_CORETYPE"
    core = _faiss_blas_core()
    if core.lower() not in _GENERIC_CORES:
        return f"OpenBLAS {core} kernels"
    flags = isa.cpu_flags() if flags is None else flags
    best = ("SkylakeX" if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
            else "Haswell" if {"avx2", "fma"} <= flags else None)
    if best is None:
        return f"OpenBLAS {core or 'unknown'} kernels"
    os.environ["OPENBLAS_CORETYPE"] = best
    return f"OpenBLAS {best} kernels: it took this CPU for {core or 'an unknown one'}"


def compare(target, kernel="current", rounds=20, seed=1, out=print):
    """Print the per-combo table; returns an exit code."""
    if not (ROOT / "targets" / target / "compare.py").exists():
        out(f"targets/{target} has no compare.py (what to compare against); see targets/pq_l2/compare.py")
        return 1
    spec = importlib.import_module(f"targets.{target}.compare")
    found = _rivals(spec, out)
    if found is None:
        return 1
    rivals_of, versions = found
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    level = isa.resolve(os.environ.get("HARNESS_ISA"))
    folder = ROOT / "results" / target / "best" if kernel == "best" else ROOT / "targets" / target
    ours_mod = _load(folder / "kernels.py", f"compare_{target}_kernels")
    scalar_mod = _load(ROOT / "targets" / target / "baseline.py", f"compare_{target}_baseline")
    peak = peaks.fma_lanes_per_ns(level)
    unit = spec.UNIT
    native = "native" if level == isa.machine_level() or isa.LEVELS.index(level) <= isa.LEVELS.index(
        isa.machine_level()) else "emulated"
    roof_model = getattr(spec, "ROOFLINE", f"fp32 FMA peak {peak:.1f} lanes/ns")
    out(f"{target}: ours ({folder.relative_to(ROOT)}/kernels.py, isa {level}, {native}) vs {versions} "
        f"vs scalar baseline.c; {rounds} rounds per combo on cpu {cpus[-1]}; roofline: {roof_model}")
    rng = np.random.default_rng(seed)
    speedups, fractions, by_mode, head = {}, [], {}, None
    for combo in spec.combos(seed):
        cls = getattr(ours_mod, spec.KERNEL_CLASS)
        ours = cls(**combo.init, isa=level)
        scalar = getattr(scalar_mod, spec.KERNEL_CLASS)(**combo.init, isa=level)
        theirs = rivals_of(combo)
        if head is None:
            head = (f"{'combo':<24}{'ours ns':>11}" + "".join(f"{n + ' ns':>13}" for n in theirs)
                    + f"{'scalar ns':>12}{'roofline':>10}"
                    + "".join(f"{'vs ' + n:>13}{'ci95':>15}" for n in theirs)
                    + f"{'vs scalar':>11}{'of roofline':>13}")
            out(head)
            out("-" * len(head))
        times = {who: [] for who in ["ours", *theirs]}
        t_scalar = []
        gc.disable()
        try:
            for r in range(rounds + 1):
                call = combo.call(rng)
                runs = {n: prepare(call) for n, prepare in theirs.items()}   # their setup is not timed
                # Who goes first rotates, the scalar yardstick included: whoever runs
                # later finds the call's lists or codes warmer in cache.
                order = ["ours", *theirs, "scalar"]
                order = order[r % len(order):] + order[:r % len(order)]
                for who in order:
                    if who == "scalar":
                        if r:
                            t_scalar.append(_call(scalar, scalar_version(combo, call))[0]
                                            / combo.scalar_units)
                        continue
                    if who == "ours":
                        ns, outputs = _call(ours, call)
                    else:
                        t = time.perf_counter_ns()
                        outputs = runs[who]()
                        ns = time.perf_counter_ns() - t
                    if r < 2:                          # every one must be right, not just fast
                        msgs = combo.check(call, outputs, rng, {})
                        if msgs:
                            out(f"{combo.name}: {who} output is wrong: {msgs[0]}")
                            return 2
                    if r:                              # round 0 warms up
                        times[who].append(ns)
        finally:
            gc.enable()
        ours_ns = float(np.median(times["ours"])) / combo.units
        scalar_ns = float(np.median(t_scalar))
        roof = spec.roofline_ns(combo, call, peak)
        cells, ratio_cells = "", ""
        for n in theirs:
            speedup, lo, hi = stats.median_ci([np.array(times[n]) / np.array(times["ours"])], rng)
            speedups.setdefault(n, []).append(speedup)
            by_mode.setdefault((n, combo.mode), []).append(speedup)
            cells += f"{float(np.median(times[n])) / combo.units:>13.0f}"
            ratio_cells += f"{speedup:>12.2f}x{f'[{lo:.2f}, {hi:.2f}]':>15}"
        fractions.append(roof / ours_ns)
        out(f"{combo.name:<24}{ours_ns:>11.0f}{cells}{scalar_ns:>12.0f}{roof:>10.0f}{ratio_cells}"
            f"{scalar_ns / ours_ns:>10.1f}x{100 * roof / ours_ns:>12.0f}%")
    out("-" * len(head))
    for (n, mode), values in by_mode.items():
        if mode:
            out(f"{mode}: speedup vs {n} geomean {stats.geomean(values):.2f}x, worst combo "
                f"{min(values):.2f}x")
    for n, values in speedups.items():
        out(f"speedup vs {n}: geomean {stats.geomean(values):.2f}x, worst combo {min(values):.2f}x")
    out(f"roofline reached: geomean {100 * stats.geomean(fractions):.0f}% (ns per {unit})")
    return 0
