# ============================================================================
# IMMUTABLE: micro-benchmarks of the current posting_intersect kernel.
# ============================================================================
"""pytest-benchmark micro-benchmarks of targets/posting_intersect/kernels.py, one per speed combo.

Usage:
    pytest targets/posting_intersect/test_bench.py --benchmark-enable -n 0     # measure
    pytest targets/posting_intersect/test_bench.py                        # run each once, check results

Numbers from one process, not a verdict: verdicts come only from run_experiment.py.
"""
import os

import numpy as np
import pytest

from harness_common import isa
from harness_common.calls import run_direct
from harness_common.plan import Combo
from targets.posting_intersect import run_experiment
from targets.posting_intersect.kernels import PostingIntersect


@pytest.fixture(scope="module", params=run_experiment.speed_combos(1, quick=True), ids=lambda c: c.name)
def combo(request) -> Combo:
    return request.param


def test_speed_call(benchmark, combo):
    kernel = PostingIntersect(**combo.init, isa=isa.resolve(os.environ.get("HARNESS_ISA")))
    call = combo.call(np.random.default_rng(0))
    outputs = {n: np.empty(s, d) for n, (d, s) in call.outputs.items()}
    benchmark(run_direct, kernel, call, outputs=outputs)      # the return value lands in outputs
    assert combo.check(call, outputs, np.random.default_rng(1), {}) == []
