"""The correctness battery: every case run twice, under two output fills.

An output slot the kernel never writes keeps the fill, and the two fills
are chosen so that at least one of them is wrong (NaN, out-of-range ids,
or a code that differs between the runs); inputs are compared byte for byte
after every call.
"""
import numpy as np

from .integrity import IntegrityError
from .timing import fill_value


def _prep(kernel, case_id, call, which):
    args, arrays = {}, {}
    for key, val in call.args.items():
        if isinstance(val, np.ndarray):
            args[key] = {"array": key}
            arrays[key] = val
        else:
            args[key] = {"value": val}
    outputs = {k: [dtype, list(shape), fill_value(dtype, which)]
               for k, (dtype, shape) in call.outputs.items()}
    return {"cmd": "prep", "kernel": kernel.name, "combo": case_id, "method": call.method,
            "args": args, "outputs": outputs}, arrays


def run(cases, kernel, timeout, progress=print):
    """Failure messages of the first failing case (empty: all pass)."""
    worker = kernel.worker
    for ci, case in enumerate(cases):
        worker.phase = f"correctness case {case.name}"
        scalars = {k: v for k, v in case.init.items() if not isinstance(v, np.ndarray)}
        arrays = {k: v for k, v in case.init.items() if isinstance(v, np.ndarray)}
        worker.request({"cmd": "construct", "kernel": kernel.name, "combo": f"case{ci}",
                        "init": scalars}, arrays, timeout=timeout)
        for which in (0, 1):
            outs = []
            for call in case.calls:
                head, arrays = _prep(kernel, f"case{ci}", call, which)
                res = worker.call(head, arrays, verify=True, timeout=timeout)
                if res.inputs_modified:
                    raise IntegrityError(f"the kernel wrote to its input(s) "
                                         f"{', '.join(res.inputs_modified)} in {call.method} "
                                         f"(correctness case {case.name})")
                if res.oracle:
                    raise IntegrityError(f"{res.oracle}, in {call.method} (correctness case {case.name})")
                if res.threads > 1:
                    raise IntegrityError(f"the kernel left {res.threads - 1} extra thread(s) "
                                         f"running after {call.method} ({case.name})")
                outs.append(res.outputs)
            msgs = case.check(outs)
            if msgs:
                fill = "" if which == 0 else " (under the second output fill)"
                return [m + fill for m in msgs]
        worker.request({"cmd": "drop", "combo": f"case{ci}"}, timeout=timeout)
    progress(f"correctness: {len(cases)} cases pass under both output fills")
    return []
