"""Optimization targets: one package per kernel, all with the same files."""
import os

# The supervisor pins itself off the timing CPU; multi-threaded BLAS would
# then fight over one core (and spin on the timing CPU otherwise).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
