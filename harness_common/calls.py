"""Kernel calls as the supervisor lays them out: arguments and outputs in shared memory.

Every worker maps one arena (a memfd the supervisor created). Before a call
the supervisor writes the call's input content and output fills at fresh,
random 64-byte-aligned offsets of it, so each call gets new addresses with no
first-touch page faults; the worker only builds array views over those
offsets. After the call the supervisor reads the outputs and verifies the
inputs straight from the arena: the worker's word is needed for neither.

This is the one call encoder, and `Placed.check_policy` the one call policy
check: the battery and the timing both use them.
"""
import mmap
import os
from dataclasses import dataclass

import numpy as np

from .integrity import IntegrityError

ALIGN = 64
# Two fills per dtype kind: an output slot the kernel never writes keeps a
# value that is wrong under at least one of them.
_FILLS = {"f": (np.nan, -3.0e38), "u": (-1, -2), "i": (-1, 1 << 30)}


def fill_value(dtype, which):
    kind = np.dtype(dtype).kind
    value = _FILLS[kind][which]
    if kind == "u":
        value = int(np.iinfo(dtype).max) + 1 + value
    return value


def arrays_of(value):
    """The arrays an argument holds: itself, the members of a list of arrays, or none (a scalar)."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    return []


def _offsets(base, calls, rng):
    """Where each array argument and output of `calls` goes, from `base` on, in order,
    with a random extra gap of 0 or 64 bytes before each (the spacing varies too)."""
    out, off = [], base
    for call in calls:
        sizes = [a.nbytes for v in call.args.values() for a in arrays_of(v)]
        sizes += [int(np.prod(s, dtype=np.int64)) * np.dtype(d).itemsize for d, s in call.outputs.values()]
        for n in sizes:
            off += int(rng.integers(0, 2)) * ALIGN
            out.append(off)
            off += _padded(n)
    return out


def _same_bytes(a, b):
    """Bitwise equality (NaN payloads and signed zeros included)."""
    return np.array_equal(a.reshape(-1).view(np.uint8),
                          np.ascontiguousarray(b).reshape(-1).view(np.uint8))


def _padded(nbytes):
    return (nbytes + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Call:
    """One invocation: a method, its arguments (arrays, lists of arrays or scalars) and its outputs."""
    method: str
    args: dict                     # name -> array, list of arrays, or scalar
    outputs: dict                  # name -> (dtype, shape)
    returns: str = ""              # an output of shape () that receives the method's return value

    def nbytes(self):
        arrays = [a for v in self.args.values() for a in arrays_of(v)]
        outs = sum(_padded(int(np.prod(s, dtype=np.int64)) * np.dtype(d).itemsize)
                   for d, s in self.outputs.values())
        return sum(_padded(a.nbytes) for a in arrays) + outs + ALIGN * (len(arrays) + len(self.outputs))


def invoke(fn, kwargs, result=None, method=""):
    """Call a kernel method; with `result` (a 0-d view), store what it returned there.

    The one place a return value is taken: the worker's window, the in-process runs and
    `compare` all call through here. A method that returns nothing leaves the output's
    fill, like any unwritten output, for the check to report; one that returns something
    other than an integer raises, naming it."""
    value = fn(**kwargs)
    if result is not None and value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{method} returned {value!r}, not an integer (program.md)")
        result[()] = value
    return value


def run_direct(kernel, call, args=None, outputs=None):
    """Run `call` on `kernel` in this process on plain arrays: `outputs` ({name: array},
    made empty when not given) receives the outputs, the return value included."""
    if outputs is None:
        outputs = {n: np.empty(s, d) for n, (d, s) in call.outputs.items()}
    kwargs = dict(call.args if args is None else args)
    kwargs.update({n: v for n, v in outputs.items() if n != call.returns})
    invoke(getattr(kernel, call.method), kwargs, outputs.get(call.returns), call.method)
    return outputs


class Arena:
    """The supervisor's side of one worker's shared memory."""

    def __init__(self, size):
        self.size = _padded(max(size, 1 << 20))
        self.fd = os.memfd_create("harness-arena", 0)
        os.ftruncate(self.fd, self.size)
        self.map = mmap.mmap(self.fd, self.size)
        self.bytes = np.frombuffer(self.map, np.uint8)
        self.bytes[::4096] = 1                  # allocate every page now, not inside a call
        self.used = set()                       # every buffer offset handed out so far

    def view(self, offset, dtype, shape):
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        return self.bytes[offset:offset + n].view(dtype).reshape(shape)

    def close(self):
        if self.fd is None:
            return
        self.bytes = None
        try:
            self.map.close()
        except BufferError:               # a caller still holds a view; the fd goes anyway
            pass
        os.close(self.fd)
        self.fd = None


class Placed:
    """A batch of calls written into an arena: what the worker needs, and the checks after."""

    def __init__(self, arena, calls, which, rng):
        """Write `calls` at one random place; outputs get fill number `which` (0 or 1)."""
        self.arena, self.calls = arena, calls
        total = sum(c.nbytes() for c in calls)
        if total > arena.size:
            raise ValueError(f"a sample of {len(calls)} call(s) needs {total} bytes, more than "
                             f"the arena's {arena.size}")
        # A buffer never starts where any earlier one did in this arena: an address
        # seen twice could key a cache (the content differs, so it would only ever
        # return a stale answer, but the rule is simpler to state than to excuse).
        for _ in range(1000):
            off = int(rng.integers(0, (arena.size - total) // ALIGN + 1)) * ALIGN
            offsets = _offsets(off, calls, rng)
            if arena.used.isdisjoint(offsets):
                break
        arena.used.update(offsets)
        offsets = iter(offsets)
        self.specs, self.inputs, self.outputs = [], [], []
        for call in calls:
            args, outs, ins, got = {}, {}, {}, {}
            for name, val in call.args.items():
                if isinstance(val, (list, tuple)):
                    specs = []
                    for i, member in enumerate(val):
                        specs.append(self._place(arena, next(offsets), member, ins, f"{name}[{i}]"))
                    args[name] = {"list": specs}
                elif isinstance(val, np.ndarray):
                    args[name] = self._place(arena, next(offsets), val, ins, name)
                else:
                    args[name] = {"value": val.item() if isinstance(val, np.generic) else val}
            for name, (dtype, shape) in call.outputs.items():
                off = next(offsets)
                view = arena.view(off, dtype, shape)
                view.fill(fill_value(dtype, which))
                outs[name] = {"offset": off, "dtype": np.dtype(dtype).name, "shape": list(shape)}
                got[name] = view
            self.specs.append({"method": call.method, "args": args, "outputs": outs,
                               "returns": call.returns})
            self.inputs.append(ins)
            self.outputs.append(got)

    @staticmethod
    def _place(arena, off, val, ins, name):
        """Write one input array at `off`; returns its spec for the worker."""
        view = arena.view(off, val.dtype, val.shape)
        view[...] = val
        ins[name] = (view, val)
        return {"offset": off, "dtype": val.dtype.name, "shape": list(val.shape)}

    def modified_inputs(self):
        """Names of inputs whose bytes changed during the calls, per call."""
        return [[n for n, (view, val) in ins.items() if not _same_bytes(view, val)]
                for ins in self.inputs]

    def check_policy(self, threads, who, where, inputs=True):
        """After the window, from shared memory and /proc: the kernel (`who`) wrote
        none of its inputs (when `inputs`) and left no thread running (`threads`
        in its worker now). Raises IntegrityError naming `where`. Unwritten
        outputs keep a wrong fill, which the checks of the results catch."""
        modified = list(dict.fromkeys(n for names in self.modified_inputs() for n in names)) \
            if inputs else []
        if modified:
            raise IntegrityError(f"{who} wrote to its input(s) {', '.join(modified)} {where}")
        if threads > 1:
            raise IntegrityError(f"{who} left {threads - 1} extra thread(s) running after {where}")

    def results(self):
        """Copies of every call's outputs (the arena is reused by the next sample)."""
        return [{n: v.copy() for n, v in outs.items()} for outs in self.outputs]
