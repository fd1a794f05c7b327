"""Every target's correctness battery accepts an honest kernel and refuses bad outputs.

Runs over every target under targets/, in-process (no workers), with the
target's honest float32 stand-in (facts.honest): it passes every case under
both output fills, while outputs left unwritten fail every case on their
own, and all-zero outputs every case whose right answer is not all zero. A target's own tight-and-fair cases (exact-math
variants that must pass, lossy ones that must fail) live in its folder:
targets/<t>/tests/test_tolerance.py.
"""
import importlib
from functools import lru_cache

import numpy as np
import pytest
from targetfacts import TARGETS, facts

from harness_common.calls import fill_value, run_direct
from harness_common.inprocess import copy_args


SEED = 1


@lru_cache(maxsize=None)
def battery(target):
    """The target's real battery for SEED, built once per session."""
    return importlib.import_module(f"targets.{target}.run_experiment").battery(SEED)


def outputs_of(case, honest, which, write=True):
    """One {output: array} per call, filled with fill `which`, then written by `honest`."""
    kernel, outs = honest(**case.init), []
    for call in case.calls:
        outputs = {n: np.full(s, fill_value(d, which), d) for n, (d, s) in call.outputs.items()}
        if write:
            run_direct(kernel, call, copy_args(call.args), outputs)
        outs.append(outputs)
    return outs


def _params():
    for target in TARGETS:
        for i, case in enumerate(battery(target)):
            yield pytest.param(target, i, id=f"{target}/{case.name}")


@pytest.mark.parametrize("target, i", list(_params()))
def test_honest_passes_and_bad_outputs_fail_each_case(target, i):
    case, honest = battery(target)[i], facts(target).module.honest
    by_fill = []
    for which in (0, 1):
        outs = outputs_of(case, honest, which)
        by_fill.append(outs)
        assert case.check(outs) == [], f"{case.name}: the honest kernel failed"
        assert case.check(outputs_of(case, honest, which, write=False)), \
            f"{case.name}: outputs left unwritten passed"
    # What the honest kernel wrote is what both fills agree on; where all of that is zero
    # (an empty intersection, say) all-zero outputs are the right answer.
    first = by_fill[0]
    if not any(np.any((o != 0) & (o == first[c][n])) for c, call in enumerate(outs)
               for n, o in call.items()):
        return
    for out in (o for call in outs for o in call.values()):
        out[...] = 0
    assert case.check(outs), f"{case.name}: all-zero outputs passed"
