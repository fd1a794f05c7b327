# ============================================================================
# IMMUTABLE: micro-benchmarks of the current campq_encode kernel.
# ============================================================================
"""pytest-benchmark micro-benchmarks of targets/campq_encode/kernels.py, one per speed dim.

Usage:
    pytest targets/campq_encode/test_bench.py --benchmark-enable -n 0     # measure
    pytest targets/campq_encode/test_bench.py                        # run each once, check results

For a human at the keyboard: numbers from one process, not a verdict.
Verdicts come only from run_experiment.py, which times candidate and best
interleaved in one run. Each benchmark also checks its result, so with
benchmarks disabled (the default) it is a quick correctness test.
"""
import os

import numpy as np
import pytest

from harness_common import checks, isa
from targets.campq_encode import reference, run_experiment
from targets.campq_encode.kernels import CamPqEncoder

SPEED = run_experiment.SPEED


@pytest.fixture(scope="module", params=SPEED["dims"], ids=str)
def combo(request):
    dim = request.param
    cb = run_experiment.codebook("gaussian", dim)             # cached k-means codebook
    rows = run_experiment._measured_rows("gaussian", dim, SPEED["n"], np.random.default_rng(dim))
    encoder = CamPqEncoder(dim, run_experiment.S, cb, isa.resolve(os.environ.get("HARNESS_ISA")))
    return dim, cb, rows, encoder


def test_encode(benchmark, combo):
    dim, cb, rows, encoder = combo
    out = np.empty((len(rows), run_experiment.S), np.uint8)
    benchmark(encoder.encode, rows, out)
    sample = np.arange(0, len(rows), 32)
    ref = reference.distances(cb, rows[sample], run_experiment.S)
    assert checks.argmin("bench encode", out[sample], ref, sample) == []
