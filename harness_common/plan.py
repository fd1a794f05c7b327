"""What a trial runs: correctness cases and speed combos, as plain data.

A target's run_experiment.py builds these from its inputs and reference;
the harness runs them in a worker and never needs to know the target.
Arguments are numpy arrays or scalars; outputs are declared by dtype and
shape so the harness owns them (allocates, fills, reads back).
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Derived:
    """A fresh argument made in the worker from a base workload array:
    rows permuted by `perm`, columns multiplied by `signs` (+-1)."""
    base: str
    perm: np.ndarray
    signs: np.ndarray

    def materialize(self, workload, rows=None):
        """The same array in the supervisor (optionally only some rows)."""
        perm = self.perm if rows is None else self.perm[rows]
        return workload[self.base][perm] * self.signs


@dataclass(frozen=True)
class Call:
    """One invocation of a kernel method on fixed inputs (a correctness call)."""
    method: str
    args: dict                     # name -> array or scalar
    outputs: dict                  # name -> (dtype, shape)


@dataclass(frozen=True)
class Case:
    """A correctness case: construct once, run the calls, check all outputs."""
    name: str
    init: dict                     # constructor keyword arguments (without isa)
    calls: list
    check: Callable                # list of {output name: array} per call -> [messages]


@dataclass(frozen=True)
class Combo:
    """A speed combo: one shape x distribution, timed as candidate vs best.

    `workloads` are base arrays sent to the worker once (at least two,
    rotated); `fresh(rng, w)` gives the per-call arguments that make every
    timed call's content new; `check(fresh, w, outputs, rng)` re-checks a
    timed call's outputs (sampled where a full check is too slow).
    """
    name: str
    init: dict
    method: str
    units: int                     # queries or rows per call: the metric's denominator
    fixed: dict                    # scalar arguments
    workloads: list                # [{name: array}] base arrays per workload
    fresh: Callable                # (rng, w) -> {name: array | Derived}
    outputs: dict                  # name -> (dtype, shape), axis 0 = units
    check: Callable                # (fresh, w, outputs, rng) -> [messages]
    batched: tuple = ()            # argument names whose axis 0 is the unit axis
    scalar_units: int = 1          # units per scalar-baseline call (cost is per unit)
    floor_ns: float = 0.0          # physical lower bound per unit; below it is implausible
    extra: dict = field(default_factory=dict)
