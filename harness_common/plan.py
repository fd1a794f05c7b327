"""What a trial runs: correctness cases and speed combos, as plain data.

This module is the contract between a target and the harness. A target's
run_experiment.py builds `Case`s (its `battery(seed, quick)`) and `Combo`s
(its `speed_combos(seed, quick)`) from its inputs and reference; the harness
runs them in sandboxed workers and never needs to know the target.

Arguments are numpy arrays or scalars; outputs are declared by dtype and
shape, so the harness owns them: it allocates them in shared memory, fills
them with values no kernel output can hold (two different fills), and reads
them back itself.
"""
from dataclasses import dataclass
from typing import Callable

from .calls import Call

__all__ = ["Call", "Case", "Combo"]


@dataclass(frozen=True)
class Case:
    """A correctness case: construct once, run `calls` in order, check all outputs.

    `init`: the kernel constructor's keyword arguments (the harness adds `isa`).
    `check(outputs)`: `outputs` is one {output name: array} per call, in order;
    returns a list of failure messages (empty: pass), each naming the case,
    the position, the expected and the got value. The case runs twice, under
    two output fills, and `check` sees each run separately.
    """
    name: str
    init: dict
    calls: list                    # [Call]
    check: Callable


@dataclass(frozen=True)
class Combo:
    """A speed combo: one shape x distribution (x mode), timed as candidate vs best.

    `call(rng)` returns a `Call` with NEW content each time: every timed call,
    warm-up included, gets its own (no content may repeat within a trial, so
    no cache keyed on content, pointer or call order pays). Use `rng` for all
    of its randomness, so a seed replays the trial's inputs.

    `check(call, outputs, rng, memo)` re-checks one timed call's outputs
    ({name: array}) against the reference and returns failure messages. It
    runs after the combo's rounds, once per kernel that made the call (the
    candidate, then the best), with the same `memo` dict for both: cache
    reference results there. `rng` is secret (not derived from the seed): use
    it to choose what to check in full where checking everything is too slow,
    so a kernel cannot know which outputs matter.

    `units` is the metric's denominator per call (queries or rows). The scalar
    baseline is timed on calls cut to `scalar_units` units along axis 0 of
    the arguments named in `batched` and of every output. `floor_ns` is a
    physical lower bound per unit: a faster figure is implausible (tamper).
    `mode` groups combos for per-mode headline figures (for example the
    queries per call); empty when a target has one mode.
    """
    name: str
    init: dict
    units: int
    call: Callable                 # (rng) -> Call
    check: Callable                # (call, outputs, rng, memo) -> [messages]
    batched: tuple = ()
    scalar_units: int = 1
    floor_ns: float = 0.0
    mode: str = ""
