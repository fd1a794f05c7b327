"""Run a target's correctness cases in this process, without workers.

For the tolerance suites: numpy stand-ins for a kernel are run through the
same cases and checks a trial uses, quickly and with no subprocess.
"""
import numpy as np

from .calls import fill_value, run_direct


def copy_args(args):
    """Fresh copies of a call's arguments (arrays, and each array of a list); scalars as they are."""
    return {k: _copy(v) for k, v in args.items()}


def _copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (list, tuple)):
        return [a.copy() for a in value]
    return value


def run_case(case, make_kernel, which=0):
    """Construct a kernel with make_kernel(**case.init), run the case's calls
    on fresh copies with filled outputs, and return the check's messages."""
    kernel = make_kernel(**case.init)
    outs = []
    for call in case.calls:
        args = copy_args(call.args)
        outputs = {}
        for name, (dtype, shape) in call.outputs.items():
            out = np.empty(shape, dtype)
            fill = fill_value(dtype, which)
            out.fill(fill)
            outputs[name] = out
        outs.append(run_direct(kernel, call, args, outputs))
    return case.check(outs)


def run_battery(cases, make_kernel):
    """{case name: messages} for every failing case (empty dict: all pass)."""
    failures = {}
    for case in cases:
        for which in (0, 1):
            msgs = run_case(case, make_kernel, which)
            if msgs:
                failures[case.name] = msgs
                break
    return failures
