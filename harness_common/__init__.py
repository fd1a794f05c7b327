"""Plumbing shared by every target: build, isolation, timing, statistics, ledger.

Kernel code imports only `harness_common.cbuild`; everything else runs in
the supervisor (`python -m targets.<name>.run_experiment`) or the worker it
starts.
"""
import os

# One BLAS thread in the supervisor: it is pinned off the timing CPU, and
# spinning helper threads would either fight over its core or steal the
# worker's (see targets/__init__.py, which runs first for trials).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
