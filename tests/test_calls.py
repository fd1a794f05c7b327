"""harness_common.calls: the supervisor lays every call out in the shared arena
at fresh, aligned, non-overlapping places, pre-fills outputs with the values a
lazy kernel would be caught by, sees any changed input byte (NaN payloads and
signed zeros included), and hands out copies of the outputs."""
import numpy as np
import pytest

from harness_common.integrity import IntegrityError
from harness_common.calls import ALIGN, Arena, Call, Placed, fill_value, run_direct


@pytest.fixture
def arena():
    a = Arena(1 << 20)
    yield a
    a.close()


def _calls(rng):
    """Two calls with inputs of several dtypes and sizes (odd sizes too), a scalar, two outputs."""
    return [Call("search", {"queries": rng.standard_normal((7, 5)).astype(np.float32),
                            "codes": rng.integers(0, 256, (33, 3), dtype=np.uint8),
                            "k": 4},
                 {"dist": ("float32", (7, 4)), "ids": ("int64", (7, 4))}),
            Call("encode", {"rows": rng.standard_normal(13).astype(np.float64),
                            "scale": np.float32(0.5)},
                 {"out": ("uint16", (13,))})]


def _spans(placed):
    """(offset, nbytes, name) of every array the placement wrote."""
    out = []
    for spec in placed.specs:
        for name, a in list(spec["args"].items()) + list(spec["outputs"].items()):
            if "offset" in a:
                n = int(np.prod(a["shape"], dtype=np.int64)) * np.dtype(a["dtype"]).itemsize
                out.append((a["offset"], n, name))
    return sorted(out)


# ------------------------------------------------------------ layout

def test_placed_writes_content_at_aligned_disjoint_in_bounds_offsets(arena):
    rng = np.random.default_rng(1)
    calls = _calls(rng)
    placed = Placed(arena, calls, 0, np.random.default_rng(2))
    spans = _spans(placed)
    assert len(spans) == 6
    for off, n, name in spans:
        assert off % ALIGN == 0, name
        assert 0 <= off and off + n <= arena.size, name
    for (o1, n1, a), (o2, _, b) in zip(spans, spans[1:]):
        assert o1 + n1 <= o2, f"{a} overlaps {b}"
    # the input content is in the arena, where the specs say
    for call, spec in zip(calls, placed.specs):
        assert spec["method"] == call.method
        for name, val in call.args.items():
            a = spec["args"][name]
            if isinstance(val, np.ndarray):
                assert a["dtype"] == val.dtype.name and a["shape"] == list(val.shape)
                np.testing.assert_array_equal(arena.view(a["offset"], a["dtype"], a["shape"]), val)
            else:
                assert a == {"value": val.item() if isinstance(val, np.generic) else val}
                assert type(a["value"]) in (int, float)      # a plain number on the wire


def test_each_placement_moves_the_calls(arena):
    rng = np.random.default_rng(3)
    calls = _calls(rng)
    place = np.random.default_rng(4)
    layouts = [tuple(off for off, _, _ in _spans(Placed(arena, calls, 0, place))) for _ in range(5)]
    assert len(set(layouts)) == 5
    assert len({lay[0] for lay in layouts}) == 5, "the first array's address changes too"


def test_a_sample_that_fills_the_arena_still_fits(arena):
    n = arena.size // 4 - 4 * ALIGN                          # float32: nearly the whole arena
    call = Call("f", {"x": np.ones(n // 2, np.float32)}, {"y": ("float32", (n // 2,))})
    assert call.nbytes() <= arena.size
    spans = _spans(Placed(arena, [call], 0, np.random.default_rng(5)))
    assert spans[-1][0] + spans[-1][1] <= arena.size


def test_a_sample_larger_than_the_arena_raises_value_error(arena):
    big = Call("f", {"x": np.zeros(arena.size // 4, np.float32)}, {"y": ("float32", (16,))})
    with pytest.raises(ValueError, match=r"needs \d+ bytes, more than the arena's"):
        Placed(arena, [big], 0, np.random.default_rng(0))
    half = Call("f", {"x": np.zeros(arena.size // 8, np.float32)}, {})
    with pytest.raises(ValueError, match="a sample of 3 call"):
        Placed(arena, [half] * 3, 0, np.random.default_rng(0))


# ------------------------------------------------------------ output fills

@pytest.mark.parametrize("which", [0, 1])
def test_outputs_are_prefilled_with_the_fill_value(arena, which):
    calls = _calls(np.random.default_rng(6))
    placed = Placed(arena, calls, which, np.random.default_rng(7))
    for call, outs in zip(calls, placed.outputs):
        for name, (dtype, shape) in call.outputs.items():
            view = outs[name]
            assert view.dtype == np.dtype(dtype) and view.shape == shape
            want = np.full(shape, fill_value(dtype, which), dtype)
            np.testing.assert_array_equal(view.view(np.uint8), want.view(np.uint8))


def test_the_two_fills_differ_for_every_dtype():
    for dtype in ("float32", "float64", "uint8", "uint16", "uint32", "int32", "int64"):
        a = np.array([fill_value(dtype, 0)], dtype)
        b = np.array([fill_value(dtype, 1)], dtype)
        assert a.tobytes() != b.tobytes(), dtype
    assert np.isnan(fill_value("float32", 0))
    assert fill_value("uint8", 0) == 255 and fill_value("uint16", 1) == 65534
    assert fill_value("int64", 0) == -1


def test_refilling_the_same_place_overwrites_a_previous_result(arena):
    # A lazy kernel that leaves outputs alone must not see the last sample's answer.
    call = Call("f", {}, {"y": ("float32", (64,))})
    p1 = Placed(arena, [call], 0, np.random.default_rng(8))
    p1.outputs[0]["y"][:] = 42.0                             # "the kernel wrote this"
    arena.used.clear()                                       # let the place come back
    p2 = Placed(arena, [call], 1, np.random.default_rng(8))   # same seed: same offset
    assert p2.specs == p1.specs
    assert np.all(p2.outputs[0]["y"] == np.float32(-3.0e38))


def test_no_buffer_address_repeats_within_an_arena(arena):
    call = Call("f", {"x": np.zeros(16, np.float32)}, {"y": ("float32", (16,))})
    rng = np.random.default_rng(3)
    seen = []
    for _ in range(2000):
        spec = Placed(arena, [call], 0, rng).specs[0]
        seen += [spec["args"]["x"]["offset"], spec["outputs"]["y"]["offset"]]
    assert len(seen) == len(set(seen))


# ------------------------------------------------------------ modified inputs

def test_untouched_inputs_are_not_reported(arena):
    calls = _calls(np.random.default_rng(9))
    placed = Placed(arena, calls, 0, np.random.default_rng(10))
    for outs in placed.outputs:                              # writing outputs is fine
        for view in outs.values():
            view[...] = 0
    assert placed.modified_inputs() == [[], []]


def test_a_one_byte_change_is_reported_by_name_and_call(arena):
    calls = _calls(np.random.default_rng(11))
    placed = Placed(arena, calls, 0, np.random.default_rng(12))
    spec = placed.specs[0]["args"]["codes"]
    arena.bytes[spec["offset"] + 98] ^= 1                    # one bit of one byte, mid-array
    assert placed.modified_inputs() == [["codes"], []]
    arena.bytes[spec["offset"] + 98] ^= 1                    # put back: clean again
    assert placed.modified_inputs() == [[], []]
    rows = placed.specs[1]["args"]["rows"]
    last = rows["offset"] + 13 * 8 - 1                       # the very last byte
    arena.bytes[last] ^= 0x80
    assert placed.modified_inputs() == [[], ["rows"]]


@pytest.mark.parametrize("dtype, nan_bits, other_nan", [
    ("float32", 0x7FC00000, 0x7FC00001),
    ("float32", 0x7FC00000, 0xFFC00000),                     # sign of a NaN
    ("float64", 0x7FF8000000000000, 0x7FF8000000000123),
])
def test_a_changed_nan_payload_is_reported(arena, dtype, nan_bits, other_nan):
    utype = {"float32": np.uint32, "float64": np.uint64}[dtype]
    x = np.arange(16, dtype=dtype)
    x.view(utype)[5] = nan_bits
    calls = [Call("f", {"x": x, "y": np.arange(4, dtype=dtype)}, {})]
    placed = Placed(arena, calls, 0, np.random.default_rng(13))
    assert placed.modified_inputs() == [[]], "a NaN equals itself bit for bit"
    a = placed.specs[0]["args"]["x"]
    view = arena.view(a["offset"], dtype, (16,))
    view.view(utype)[5] = other_nan
    assert np.isnan(view[5]), "still a NaN: a value comparison would miss it"
    assert placed.modified_inputs() == [["x"]]


def test_a_flipped_zero_sign_is_reported(arena):
    x = np.zeros(8, np.float32)
    placed = Placed(arena, [Call("f", {"x": x}, {})], 0, np.random.default_rng(14))
    a = placed.specs[0]["args"]["x"]
    arena.view(a["offset"], "float32", (8,))[3] = -0.0
    assert placed.modified_inputs() == [["x"]]


def test_the_call_policy_names_inputs_written_and_threads_left(arena):
    calls = _calls(np.random.default_rng(15))
    placed = Placed(arena, calls, 0, np.random.default_rng(16))
    placed.check_policy(1, "the kernel", "in f")                     # clean: no error
    arena.bytes[placed.specs[0]["args"]["codes"]["offset"]] ^= 1
    placed.check_policy(1, "the kernel", "in f", inputs=False)       # inputs not verified
    with pytest.raises(IntegrityError, match=r"^the kernel wrote to its input\(s\) codes in f$"):
        placed.check_policy(1, "the kernel", "in f")
    arena.bytes[placed.specs[0]["args"]["codes"]["offset"]] ^= 1
    with pytest.raises(IntegrityError, match=r"left 2 extra thread\(s\) running after a call"):
        placed.check_policy(3, "the best kernel", "a call")


# ------------------------------------------------------------ results

def test_results_are_copies(arena):
    calls = _calls(np.random.default_rng(15))
    placed = Placed(arena, calls, 0, np.random.default_rng(16))
    placed.outputs[0]["dist"][:] = 1.5
    got = placed.results()
    assert [set(r) for r in got] == [{"dist", "ids"}, {"out"}]
    np.testing.assert_array_equal(got[0]["dist"], np.full((7, 4), 1.5, np.float32))
    for res, outs in zip(got, placed.outputs):
        for name, arr in res.items():
            assert not np.shares_memory(arr, arena.bytes), name
            assert arr.flags.owndata
    # the arena is reused by the next sample; the copies keep this one's answer
    placed.outputs[0]["dist"][:] = 7.0
    Placed(arena, calls, 1, np.random.default_rng(17))
    np.testing.assert_array_equal(got[0]["dist"], np.full((7, 4), 1.5, np.float32))
    got[1]["out"][:] = 3                                     # and writing a copy changes nothing
    assert np.all(placed.outputs[1]["out"] == fill_value("uint16", 0))


def test_arena_pages_exist_before_any_call():
    a = Arena(3 << 20)
    try:
        assert a.size == 3 << 20 and a.size % ALIGN == 0
        assert np.all(a.bytes[::4096] == 1)
    finally:
        a.close()
    small = Arena(10)
    try:
        assert small.size == 1 << 20, "at least 1 MiB"
    finally:
        small.close()


# ------------------------------------------------------------ lists of arrays, return values

def _list_call(rng):
    lists = [np.sort(rng.choice(1000, n, replace=False)).astype(np.uint32) for n in (5, 0, 17)]
    return Call("intersect", {"lists": lists}, {"out": ("uint32", (0,)), "count": ("int64", ())},
                returns="count")


def test_a_list_argument_places_every_member_and_sees_each_change(arena):
    call = _list_call(np.random.default_rng(8))
    placed = Placed(arena, [call], 0, np.random.default_rng(9))
    spec = placed.specs[0]
    assert spec["returns"] == "count"
    members = spec["args"]["lists"]["list"]
    assert len(members) == 3 and all(m["offset"] % ALIGN == 0 for m in members)
    assert call.nbytes() >= sum(a.nbytes for a in call.args["lists"])
    for m, val in zip(members, call.args["lists"]):
        np.testing.assert_array_equal(arena.view(m["offset"], m["dtype"], m["shape"]), val)
    assert placed.modified_inputs() == [[]]
    arena.view(members[2]["offset"], "uint32", (17,))[3] += 1
    assert placed.modified_inputs() == [["lists[2]"]]
    with pytest.raises(IntegrityError, match=r"lists\[2\]"):
        placed.check_policy(1, "the kernel", "in a test")


class _Counts:
    def __init__(self, value):
        self.value = value

    def intersect(self, lists, out):
        return self.value


@pytest.mark.parametrize("value", [3, np.int64(3)])
def test_a_return_value_lands_in_its_output(value):
    call = _list_call(np.random.default_rng(10))
    outputs = run_direct(_Counts(value), call, outputs={"out": np.zeros(0, np.uint32),
                                                       "count": np.full((), -1, np.int64)})
    assert int(outputs["count"]) == 3


def test_no_return_value_leaves_the_fill_and_a_non_integer_is_named():
    call = _list_call(np.random.default_rng(11))
    outputs = run_direct(_Counts(None), call, outputs={"out": np.zeros(0, np.uint32),
                                                      "count": np.full((), -1, np.int64)})
    assert int(outputs["count"]) == -1
    for bad in (2.0, "2", True):
        with pytest.raises(TypeError, match="intersect returned"):
            run_direct(_Counts(bad), call)
