"""Ours vs FAISS vs the scalar baseline vs a roofline estimate, measured in one run.

    python -m harness_common compare pq_l2
    python -m harness_common compare campq_encode --kernel best --rounds 30

Each target's `compare.py` says what to compare (its combos), how FAISS does
the same work on the same data, and the roofline model. Here they are timed
in one process pinned to one CPU, FAISS with one OpenMP thread, interleaved
call by call (ours and FAISS alternate which goes first every round) on the
same fresh inputs, and every implementation's outputs are checked against
the reference. A human tool: it imports the kernel directly, unsandboxed.
"""
import gc
import importlib
import importlib.util
import os
import time

import numpy as np

from . import isa, peaks, stats
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
    fn = getattr(kernel, call.method)
    t = time.perf_counter_ns()
    fn(**call.args, **outputs)
    return time.perf_counter_ns() - t, outputs


def compare(target, kernel="current", rounds=20, seed=1, out=print):
    """Print the per-combo table; returns an exit code."""
    try:
        import faiss
    except ImportError:
        out("compare needs FAISS: pip install -e '.[compare]' (faiss-cpu from PyPI)")
        return 1
    if not (ROOT / "targets" / target / "compare.py").exists():
        out(f"targets/{target} has no compare.py (what to compare against); see targets/pq_l2/compare.py")
        return 1
    spec = importlib.import_module(f"targets.{target}.compare")
    faiss.omp_set_num_threads(1)
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
    out(f"{target}: ours ({folder.relative_to(ROOT)}/kernels.py, isa {level}, {native}) vs FAISS "
        f"{faiss.__version__} (1 thread) vs scalar baseline.c; {rounds} rounds per combo on cpu "
        f"{cpus[-1]}; fp32 FMA peak {peak:.1f} lanes/ns")
    head = (f"{'combo':<24}{'ours ns':>11}{'faiss ns':>11}{'scalar ns':>12}{'roofline':>10}"
            f"{'vs faiss':>10}{'ci95':>17}{'vs scalar':>11}{'of roofline':>13}")
    out(head)
    out("-" * len(head))
    rng = np.random.default_rng(seed)
    speedups, fractions, by_mode = [], [], {}
    for combo in spec.combos(seed):
        cls = getattr(ours_mod, spec.KERNEL_CLASS)
        ours = cls(**combo.init, isa=level)
        scalar = getattr(scalar_mod, spec.KERNEL_CLASS)(**combo.init, isa=level)
        theirs = spec.faiss_runner(combo, faiss)
        t_ours, t_faiss, t_scalar = [], [], []
        gc.disable()
        try:
            for r in range(rounds + 1):
                call = combo.call(rng)
                run_faiss = theirs(call)                   # loading FAISS's index is not timed
                pair = {}
                for who in (("ours", "faiss") if r % 2 == 0 else ("faiss", "ours")):
                    if who == "ours":
                        pair[who], outputs = _call(ours, call)
                    else:
                        t = time.perf_counter_ns()
                        outputs = run_faiss()
                        pair[who] = time.perf_counter_ns() - t
                    if r < 2:                          # both must be right, not just fast
                        msgs = combo.check(call, outputs, rng, {})
                        if msgs:
                            out(f"{combo.name}: {who} output is wrong: {msgs[0]}")
                            return 2
                if r == 0:
                    continue                           # warm-up
                t_ours.append(pair["ours"])
                t_faiss.append(pair["faiss"])
                if r % 5 == 1:
                    t_scalar.append(_call(scalar, scalar_version(combo, call))[0] / combo.scalar_units)
        finally:
            gc.enable()
        ours_ns = float(np.median(t_ours)) / combo.units
        faiss_ns = float(np.median(t_faiss)) / combo.units
        scalar_ns = float(np.median(t_scalar))
        roof = spec.roofline_ns(combo, call, peak)
        speedup, lo, hi = stats.median_ci([np.array(t_faiss) / np.array(t_ours)], rng)
        speedups.append(speedup)
        by_mode.setdefault(combo.mode, []).append(speedup)
        fractions.append(roof / ours_ns)
        out(f"{combo.name:<24}{ours_ns:>11.0f}{faiss_ns:>11.0f}{scalar_ns:>12.0f}{roof:>10.0f}"
            f"{speedup:>9.2f}x{f'[{lo:.2f}, {hi:.2f}]':>17}{scalar_ns / ours_ns:>10.1f}x"
            f"{100 * roof / ours_ns:>12.0f}%")
    out("-" * len(head))
    for mode, values in by_mode.items():
        if mode:
            out(f"{mode}: speedup vs FAISS geomean {stats.geomean(values):.2f}x, worst combo "
                f"{min(values):.2f}x")
    out(f"speedup vs FAISS: geomean {stats.geomean(speedups):.2f}x, worst combo {min(speedups):.2f}x; "
        f"roofline reached: geomean {100 * stats.geomean(fractions):.0f}% (ns per {unit})")
    return 0
