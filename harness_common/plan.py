"""What a trial runs: correctness cases and speed combos, as plain data.

This module is the contract between a target and the harness: a target
author reads this file, not the runner. A target's run_experiment.py ends in

    raise SystemExit(trial.main(__file__, battery, speed_combos))

with two functions the harness calls in the supervisor (never in a worker):

    battery(seed: int, quick: bool) -> list[Case]
        The correctness cases, every one built from `seed` (a fresh secret
        seed per trial, printed on failure so `--seed` replays it). `quick` is
        True under --quick; most targets run the whole battery anyway.
    speed_combos(seed: int, quick: bool) -> list[Combo]
        The timed combos; `seed` names this trial's inputs (relabel cached
        pools with it); under `quick` a subset (for example one distribution).

Arguments are numpy arrays or scalars; outputs are declared by dtype and
shape, so the harness owns them: it allocates them in shared memory, fills
them with values no kernel output can hold (two different fills), and reads
them back itself. Checks run in the supervisor against the target's
reference; they return failure messages (empty list: pass), each naming the
case or combo, the position, the expected and the got value (harness_common
.checks has close / topk / argmin that do).
"""
from dataclasses import dataclass
from typing import Callable

from .calls import Call

__all__ = ["Call", "Case", "Combo"]

Call.__doc__ = """One kernel method call: Call(method, args, outputs, returns="").

`method`: the name of a method of the kernel class (target.toml kernel_methods).
`args`: {parameter name: numpy array, list of numpy arrays, or scalar}, passed
    as keyword arguments; arrays (each member of a list too) are copied into
    fresh shared memory at a random address per call and checksummed
    afterwards (a kernel that writes to one is `tamper`). A list arrives as a
    Python list of arrays (for example posting lists of different lengths).
`outputs`: {parameter name: (dtype, shape)}; the harness allocates each,
    fills it, passes it as a keyword argument and reads it back: the kernel
    must write every element the check reads.
`returns`: the name of one output of shape () (an integer dtype) that
    receives the method's return value instead of being passed to it (for
    example a count of valid elements); a method that returns nothing leaves
    the fill there (the check reports it), one that returns anything but an
    integer raises in the kernel's worker (a `crash`). The kernel is
    called as `getattr(kernel, method)(**args, **outputs)`, the `returns`
    output left out; calls.run_direct does the same in-process."""


@dataclass(frozen=True)
class Case:
    """A correctness case: construct once, run `calls` in order, check all outputs.

    `name`: shown in messages ("gaussian/128x16x256", "edge/n_one").
    `init`: the kernel constructor's keyword arguments (arrays or scalars);
        the harness adds `isa` and calls `KernelClass(**init, isa=...)`.
    `calls`: [Call], run in order on that one instance.
    `check(outputs: list[dict[str, np.ndarray]]) -> list[str]`: `outputs`
        holds one {output name: array} per call, in order. Returns failure
        messages (empty: pass). The calls run twice on the same instance,
        under two output fills, and `check` sees each run separately (an
        element left unwritten fails under one fill). Every case of the
        battery runs in one worker of its own, before any timing.
    """
    name: str
    init: dict
    calls: list                    # [Call]
    check: Callable                # (outputs: [{name: array}]) -> [messages]


@dataclass(frozen=True)
class Combo:
    """A speed combo: one shape x distribution (x mode), timed as candidate vs best.

    `name`: shown in the result block and the ledger ("q32/clustered/768x96x256").
    `init`: the constructor's keyword arguments, as for Case; one instance
        per kernel per combo serves every timed call.
    `units`: the metric's denominator per call (queries, rows): the figure is
        ns per unit, so it must match target.toml's `unit`.
    `call(rng: np.random.Generator) -> Call`: a Call with NEW content each
        time: every timed call, warm-up included, gets its own (no content may
        repeat within a trial, so no cache keyed on content, pointer or call
        order pays). Take all randomness from `rng`, so a seed replays the
        trial's inputs. Keys of the returned Call must be the same every time.
    `check(call: Call, outputs: dict[str, np.ndarray], rng, memo: dict) -> list[str]`:
        re-checks one timed call's outputs against the reference, after the
        combo's rounds, off the timed path. It runs once per kernel that made
        that call (the candidate, then the best) with the same `memo`, a new
        empty dict per call: cache the call's reference results there so the
        second kernel costs no second reference run. `rng` is secret (not
        derived from the seed): use it to choose what to check in full where
        checking everything is too slow, so a kernel cannot know which outputs
        matter; choose once per call (store the choice in `memo`) so both
        kernels are checked on the same elements.
    `batched`: names of the arguments that are cut along axis 0 (with every
        output) for the scalar baseline, which is timed on calls of
        `scalar_units` units (the yardstick is slow; its figure is per unit).
    `floor_ns`: a physical lower bound per unit (for example every input byte
        read once at 200 GB/s): a faster figure is implausible (`tamper`).
    `mode`: groups combos for per-mode headline figures (for example the
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
