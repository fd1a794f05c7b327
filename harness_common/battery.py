"""The correctness battery: every case run twice, under two output fills, in a
worker of its own.

An output slot the kernel never writes keeps the fill, and the two fills
are chosen so that at least one of them is wrong (NaN, out-of-range ids,
or a code that differs between the runs); inputs are compared byte for byte
after every call, in shared memory, by the supervisor. The battery has its
own process so the timing workers start with identical histories: no
kernel's timing inherits the heap the battery left behind.
"""
import numpy as np

from .calls import Placed


def run(cases, host, timeout, progress=print):
    """Failure messages of the first failing case (empty: all pass)."""
    worker = host.worker
    rng = np.random.default_rng()
    for ci, case in enumerate(cases):
        worker.phase = f"correctness case {case.name}"
        scalars = {k: v for k, v in case.init.items() if not isinstance(v, np.ndarray)}
        arrays = {k: v for k, v in case.init.items() if isinstance(v, np.ndarray)}
        worker.request({"cmd": "construct", "kernel": host.label, "combo": f"case{ci}",
                        "init": scalars}, arrays, timeout=timeout)
        for which in (0, 1):
            outs = []
            for call in case.calls:
                placed = Placed(worker.arena, [call], which, rng)
                worker.request({"cmd": "prep", "kernel": host.label, "combo": f"case{ci}",
                                "calls": placed.specs}, timeout=timeout)
                worker.window(timeout)
                placed.check_policy(worker.threads(), "the kernel",
                                    f"in {call.method} (correctness case {case.name})")
                outs.append(placed.results()[0])
            host.check_oracle(f"correctness case {case.name}", timeout)
            msgs = case.check(outs)
            if msgs:
                fill = "" if which == 0 else " (under the second output fill)"
                return [m + fill for m in msgs]
        worker.request({"cmd": "drop", "combo": f"case{ci}"}, timeout=timeout)
    progress(f"correctness: {len(cases)} cases pass under both output fills")
    return []
