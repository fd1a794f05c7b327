# ============================================================================
# IMMUTABLE: micro-benchmarks of the current pq_l2 kernel.
# ============================================================================
"""pytest-benchmark micro-benchmarks of targets/pq_l2/kernels.py, one per speed shape.

Usage:
    pytest targets/pq_l2/test_bench.py --benchmark-enable -n 0     # measure
    pytest targets/pq_l2/test_bench.py                        # run each once, check results

For a human at the keyboard: numbers from one process, not a verdict.
Verdicts come only from run_experiment.py, which times candidate and best
interleaved in one run. Each benchmark also checks its result, so with
benchmarks disabled (the default) it is a quick correctness test.
"""
import os

import numpy as np
import pytest

from harness_common import checks, isa
from targets.pq_l2 import inputs, reference, run_experiment
from targets.pq_l2.kernels import PqKernel

SPEED = run_experiment.SPEED
CASES = [(nq, tuple(s)) for nq in SPEED["nq"] for s in SPEED["shapes"]]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"q{c[0]}/" + "x".join(map(str, c[1])))
def combo(request):
    nq, shape = request.param
    pool = run_experiment._pool("clustered", shape)       # cached encoded codes
    ds = inputs.Dataset(SPEED["pool_seed"], shape[0], "clustered")
    queries = inputs.queries(ds, inputs.rng_for(1, "bench", *shape), nq)
    kernel = PqKernel(*shape, pool["codebook"], isa.resolve(os.environ.get("HARNESS_ISA")))
    return shape, pool["codebook"], pool["codes0"], queries, kernel


def test_search(benchmark, combo):
    shape, cb, codes, queries, kernel = combo
    nq, k = len(queries), SPEED["k"]
    ids, dists = np.empty((nq, k), np.uint32), np.empty((nq, k), np.float32)
    benchmark(kernel.search, queries, codes, k, ids, dists)
    assert run_experiment.check_search("bench", cb, queries, codes, k, ids, dists, full={0}) == []


def test_distance_tables(benchmark, combo):
    shape, cb, _, queries, kernel = combo
    out = np.empty((len(queries), shape[1], shape[2]), np.float32)
    benchmark(kernel.distance_tables, queries, out)
    assert checks.close("bench distance_tables", out, reference.distance_tables(cb, queries)) == []
