"""harness_common.wire over a real os.pipe(): frames round-trip exactly, and a
malformed, oversized, truncated or late frame raises WireError / WireTimeout
instead of being trusted."""
import json
import os
import threading

import numpy as np
import pytest

from harness_common import wire


@pytest.fixture
def pipe():
    r, w = os.pipe()
    fds = {"r": r, "w": w}
    yield fds
    for fd in fds.values():
        try:
            os.close(fd)
        except OSError:
            pass


def _raw_frame(header):
    head = json.dumps(header).encode()
    return len(head).to_bytes(8, "little") + head


def _send_in_thread(fd, header, arrays):
    # Frames can exceed the pipe buffer, so write while the test reads.
    t = threading.Thread(target=wire.send, args=(fd, header, arrays))
    t.start()
    return t


def test_roundtrip_header_and_arrays(pipe):
    rng = np.random.default_rng(0)
    arrays = {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f64": rng.standard_normal(5),
        "u8": rng.integers(0, 256, (2, 3, 4), dtype=np.uint8),
        "u32": np.array([0, 1, 0xFFFFFFFF], dtype=np.uint32),
        "i64": np.array([[-1, 2**40]], dtype=np.int64),
        "empty": np.zeros((0, 6), dtype=np.float32),
        "empty_u8": np.zeros((4, 0), dtype=np.uint8),
    }
    expected = {k: v.copy() for k, v in arrays.items()}
    t = _send_in_thread(pipe["w"], {"op": "result", "n": 3, "nested": {"a": [1, 2]}}, arrays)
    header, got = wire.recv(pipe["r"], timeout=10)
    t.join()
    assert header == {"op": "result", "n": 3, "nested": {"a": [1, 2]}}
    assert list(got) == list(expected)
    for name, arr in expected.items():
        assert got[name].dtype == arr.dtype, name
        assert got[name].shape == arr.shape, name
        np.testing.assert_array_equal(got[name], arr)


def test_roundtrip_non_contiguous_array_is_sent_contiguous(pipe):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    t = _send_in_thread(pipe["w"], {}, {"view": base[:, ::2]})
    _, got = wire.recv(pipe["r"], timeout=10)
    t.join()
    np.testing.assert_array_equal(got["view"], base[:, ::2])


def test_roundtrip_large_frame_bigger_than_pipe_buffer(pipe):
    big = np.arange(1 << 20, dtype=np.float32)   # 4 MB
    t = _send_in_thread(pipe["w"], {"k": 1}, {"big": big})
    _, got = wire.recv(pipe["r"], timeout=30)
    t.join()
    np.testing.assert_array_equal(got["big"], big)


def test_roundtrip_zero_dimensional_array(pipe):
    wire.send(pipe["w"], {}, {"s": np.array(7, dtype=np.int32)})
    _, got = wire.recv(pipe["r"], timeout=5)
    assert got["s"].shape == ()


def test_two_frames_in_a_row(pipe):
    wire.send(pipe["w"], {"i": 1}, {"a": np.array([1.0])})
    wire.send(pipe["w"], {"i": 2})
    assert wire.recv(pipe["r"], timeout=5)[0] == {"i": 1}
    header, arrays = wire.recv(pipe["r"], timeout=5)
    assert header == {"i": 2} and arrays == {}


def test_recv_rejects_oversized_header(pipe):
    os.write(pipe["w"], (wire.MAX_HEADER + 1).to_bytes(8, "little"))
    with pytest.raises(wire.WireError, match="too large"):
        wire.recv(pipe["r"], timeout=5)


@pytest.mark.parametrize("dtype", ["object", "complex128", "float16", "<U4", "bool"])
def test_recv_rejects_unsupported_dtype(pipe, dtype):
    os.write(pipe["w"], _raw_frame({"arrays": [["x", dtype, [2]]]}))
    with pytest.raises(wire.WireError, match="unsupported dtype"):
        wire.recv(pipe["r"], timeout=5)


def test_recv_rejects_negative_shape(pipe):
    os.write(pipe["w"], _raw_frame({"arrays": [["x", "float32", [-1, 4]]]}))
    with pytest.raises(wire.WireError, match="x"):
        wire.recv(pipe["r"], timeout=5)


def test_recv_rejects_array_bigger_than_max_bytes(pipe):
    # Only the header is written: recv must refuse before waiting for the data.
    os.write(pipe["w"], _raw_frame({"arrays": [["a", "float64", [1024]]]}))
    with pytest.raises(wire.WireError, match="larger than 6000 bytes"):
        wire.recv(pipe["r"], timeout=5, max_bytes=6000)


def test_recv_rejects_frame_whose_arrays_together_exceed_max_bytes(pipe):
    # Each array fits, their sum does not: refused before b's bytes are read.
    frame = _raw_frame({"arrays": [["a", "float64", [512]], ["b", "float64", [512]]]})
    os.write(pipe["w"], frame + np.zeros(512).tobytes())
    with pytest.raises(wire.WireError, match="larger than 6000 bytes"):
        wire.recv(pipe["r"], timeout=5, max_bytes=6000)


def test_recv_accepts_frame_of_exactly_max_bytes(pipe):
    wire.send(pipe["w"], {}, {"a": np.ones(512), "b": np.ones(512)})
    _, got = wire.recv(pipe["r"], timeout=5, max_bytes=8192)
    assert got["b"].sum() == 512


@pytest.mark.parametrize("payload", [b"not json", b'{"no_arrays": 1}', b'{"arrays": [["x", "float32"]]}'])
def test_recv_rejects_malformed_header(pipe, payload):
    os.write(pipe["w"], len(payload).to_bytes(8, "little") + payload)
    with pytest.raises(wire.WireError):
        wire.recv(pipe["r"], timeout=5)


@pytest.mark.parametrize("payload", [
    pytest.param(b'"a string"', id="header_not_object"),
    pytest.param(b'{"arrays": 5}', id="arrays_not_list"),
    pytest.param(b'{"arrays": [[["x"], "uint8", [0]]]}', id="unhashable_name"),
    pytest.param(b'{"arrays": [["x", ["uint8"], [0]]]}', id="unhashable_dtype"),
    pytest.param(b'{"arrays": [["x", "uint8", [1e30]]]}', id="huge_float_dim"),
    pytest.param(b'{"arrays": [["x", "uint8", [4294967296, 4294967296]]]}', id="dims_overflow_to_zero_bytes"),
    pytest.param(b'{"arrays": [["x", "uint8", [4294967296, 4294967295]]]}', id="dims_overflow_to_negative_bytes"),
    pytest.param(b'{"arrays": [5]}', id="entry_not_list"),
])
def test_recv_turns_any_malformed_header_into_wire_error(pipe, payload):
    os.write(pipe["w"], len(payload).to_bytes(8, "little") + payload)
    with pytest.raises(wire.WireError):
        wire.recv(pipe["r"], timeout=0.2, max_bytes=1 << 20)


def test_closed_pipe_raises_wire_error(pipe):
    os.close(pipe.pop("w"))
    with pytest.raises(wire.WireError, match="closed") as info:
        wire.recv(pipe["r"], timeout=5)
    assert not isinstance(info.value, wire.WireTimeout)


def test_pipe_closed_mid_frame_raises_wire_error(pipe):
    frame = _raw_frame({"arrays": [["x", "float32", [100]]]})
    os.write(pipe["w"], frame + b"\0" * 40)    # 40 of 400 data bytes
    os.close(pipe.pop("w"))
    with pytest.raises(wire.WireError, match="closed"):
        wire.recv(pipe["r"], timeout=5)


def test_timeout_on_empty_pipe(pipe):
    with pytest.raises(wire.WireTimeout):
        wire.recv(pipe["r"], timeout=0.05)


def test_timeout_on_partial_frame(pipe):
    os.write(pipe["w"], _raw_frame({"arrays": [["x", "uint8", [10]]]}) + b"\1\2")
    with pytest.raises(wire.WireTimeout):
        wire.recv(pipe["r"], timeout=0.05)
