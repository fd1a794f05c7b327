"""Framed messages between supervisor and worker: a JSON header plus raw arrays.

A frame is: 8-byte little-endian header length, the UTF-8 JSON header, then
each array's bytes in the order the header's "arrays" list gives. JSON and
raw bytes only: the supervisor never unpickles anything a kernel could touch.
"""
import json
import math
import os
import select
import time

import numpy as np

DTYPES = {"float32", "float64", "uint8", "uint16", "uint32", "int32", "int64", "uint64"}
MAX_HEADER = 1 << 20


class WireError(RuntimeError):
    """A malformed frame, a closed pipe or a timeout."""


class WireTimeout(WireError):
    pass


def _write_all(fd, data):
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


def send(fd, header, arrays=None):
    """Write one frame of a JSON-able header and numpy arrays (any layout, any ndim)."""
    arrays = {name: np.require(arr, requirements="C") for name, arr in (arrays or {}).items()}
    meta = [[name, str(arr.dtype), list(arr.shape)] for name, arr in arrays.items()]
    head = json.dumps(dict(header, arrays=meta)).encode()
    _write_all(fd, len(head).to_bytes(8, "little") + head)
    for arr in arrays.values():
        if arr.nbytes:
            _write_all(fd, arr)


def read_exact(fd, n, deadline):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WireTimeout("timed out waiting for the other side")
        k = os.readv(fd, [view[got:]])
        if k == 0:
            raise WireError("pipe closed")
        got += k
    return buf


def recv(fd, timeout=None, max_bytes=1 << 31):
    """Read one frame; returns (header, {name: array}). Sizes and dtypes are validated."""
    deadline = None if timeout is None else time.monotonic() + timeout
    size = int.from_bytes(read_exact(fd, 8, deadline), "little")
    if size > MAX_HEADER:
        raise WireError(f"header of {size} bytes is too large")
    try:
        header = json.loads(bytes(read_exact(fd, size, deadline)))
        meta = header.pop("arrays")
        specs = []
        for name, dtype, shape in meta:
            shape = tuple(int(s) for s in shape)
            if not isinstance(name, str) or dtype not in DTYPES or any(s < 0 for s in shape):
                raise ValueError(f"array {name!r} has unsupported dtype/shape {dtype} {shape}")
            specs.append((name, dtype, shape, math.prod(shape) * np.dtype(dtype).itemsize))
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise WireError(f"malformed header: {exc}")
    if sum(spec[3] for spec in specs) > max_bytes:
        raise WireError(f"frame larger than {max_bytes} bytes")
    arrays = {}
    for name, dtype, shape, nbytes in specs:
        raw = read_exact(fd, nbytes, deadline) if nbytes else bytearray()
        arrays[name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return header, arrays
