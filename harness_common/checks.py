"""Correctness checks of kernel outputs against float64 reference values (and exact integers).

One tolerance for every float: |got - ref| <= MAX_ABS_ERR * max(1, |ref|).
Absolute at unit scale, relative at large scale: any exact-math float32
implementation (any summation order, FMA, blocked or tree sums) passes;
lossy ones (bf16/fp16 tables, u8/u16 LUTs, dropped terms) do not.

Every function returns a list of failure messages (empty means pass); each
message names where (combo, query or row, position), expected, got and the
tolerance, so an agent can act on it without reading this file.
"""
import numpy as np

MAX_ABS_ERR = 1e-4
MAX_MESSAGES = 3


def tolerance(ref):
    return MAX_ABS_ERR * np.maximum(1.0, np.abs(ref))


def _fmt(x):
    return f"{float(x):.9g}"


def close(label, got, ref):
    """Elementwise: finite, and within tolerance of the reference."""
    got = np.asarray(got)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return [f"{label}: output shape {got.shape}, expected {ref.shape}"]
    g = got.astype(np.float64)
    bad = ~np.isfinite(g) | (np.abs(g - ref) > tolerance(ref))
    msgs = []
    for idx in np.argwhere(bad)[:MAX_MESSAGES]:
        i = tuple(int(v) for v in idx)
        what = "not finite (never written?)" if not np.isfinite(g[i]) else _fmt(g[i])
        msgs.append(f"{label} at {list(i)}: expected {_fmt(ref[i])}, got {what}, "
                    f"tolerance {_fmt(tolerance(ref[i]))}")
    if bad.sum() > MAX_MESSAGES:
        msgs.append(f"{label}: {int(bad.sum())} of {bad.size} values out of tolerance in all")
    return msgs


def topk(label, ids, dists, n, k, ref_of, ref_all=None, pad_id=0xFFFFFFFF):
    """A returned top-k row for one query.

    Always: the first min(k, n) ids unique and in range; the rest padding
    (`pad_id` with distance +inf); distances finite and ascending; each id's
    reference distance (`ref_of(ids)`) within tolerance of the returned one.
    With `ref_all` (reference distances to all n items): the i-th returned
    reference distance within tolerance of the i-th smallest, i.e. a correct
    top-k up to ties.
    """
    ids_all = np.asarray(ids)
    dists_all = np.asarray(dists, dtype=np.float64)
    want = min(k, n)
    ids, dists = ids_all[:want].astype(np.int64), dists_all[:want]
    tail_ids, tail_d = ids_all[want:], dists_all[want:]
    if len(tail_ids) and not (np.all(tail_ids == pad_id) and np.all(np.isposinf(tail_d))):
        j = want + int(np.argmax((tail_ids != pad_id) | ~np.isposinf(tail_d)))
        return [f"{label} position {j}: only {n} items exist, so positions {want}..{k - 1} must "
                f"hold id {pad_id} and distance inf; got id {int(ids_all[j])}, distance {dists_all[j]}"]
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        j = int(np.argmax((ids < 0) | (ids >= n)))
        return [f"{label} position {j}: id {int(ids[j])} out of range [0, {n})"]
    if len(np.unique(ids)) != len(ids):
        vals, counts = np.unique(ids, return_counts=True)
        return [f"{label}: id {int(vals[np.argmax(counts > 1)])} returned more than once"]
    if not np.all(np.isfinite(dists)):
        j = int(np.argmax(~np.isfinite(dists)))
        return [f"{label} position {j}: distance is {dists[j]} (never written?)"]
    if np.any(np.diff(dists) < 0):
        j = int(np.argmax(np.diff(dists) < 0))
        return [f"{label} position {j + 1}: distances not ascending "
                f"({_fmt(dists[j])} then {_fmt(dists[j + 1])})"]
    own = np.asarray(ref_of(ids), dtype=np.float64)
    msgs = [f"{label} position {j}: id {int(ids[j])}: expected distance {_fmt(own[j])} "
            f"(its reference), got {_fmt(dists[j])}, tolerance {_fmt(tolerance(own[j]))}"
            for j in np.flatnonzero(np.abs(dists - own) > tolerance(own))[:MAX_MESSAGES]]
    if msgs or ref_all is None or not want:
        return msgs
    ref_all = np.asarray(ref_all, dtype=np.float64)
    expected = np.sort(np.partition(ref_all, want - 1)[:want])
    order = np.argsort(own, kind="stable")
    for j in np.flatnonzero(np.abs(own[order] - expected) > tolerance(expected))[:MAX_MESSAGES]:
        true_id = int(np.flatnonzero(ref_all == expected[j])[0])
        msgs.append(f"{label} position {j}: expected distance {_fmt(expected[j])} (id {true_id}), "
                    f"got {_fmt(own[order][j])} (id {int(ids[order][j])}), "
                    f"tolerance {_fmt(tolerance(expected[j]))}")
    return msgs


def argmin(label, codes, ref_dists, rows=None):
    """Codes (n, S) against reference distances (n, S, K): the chosen centroid's
    distance must be within tolerance of the subspace minimum. `rows` gives
    the row numbers to name when the codes are a sample of a larger call."""
    codes = np.asarray(codes)
    rows = np.arange(len(codes)) if rows is None else np.asarray(rows)
    ref_dists = np.asarray(ref_dists, dtype=np.float64)
    n, s, k = ref_dists.shape
    if codes.shape != (n, s):
        return [f"{label}: codes shape {codes.shape}, expected {(n, s)}"]
    if codes.size and int(codes.max()) >= k:
        i, j = np.argwhere(codes >= k)[0]
        return [f"{label} row {rows[i]} subspace {j}: code {int(codes[i, j])} out of range [0, {k})"]
    chosen = np.take_along_axis(ref_dists, codes.astype(np.int64)[..., None], axis=2)[..., 0]
    best = ref_dists.min(axis=2)
    bad = chosen - best > tolerance(best)
    msgs = []
    for i, j in np.argwhere(bad)[:MAX_MESSAGES]:
        msgs.append(f"{label} row {rows[i]} subspace {j}: expected centroid {int(np.argmin(ref_dists[i, j]))} "
                    f"(distance {_fmt(best[i, j])}), got {int(codes[i, j])} "
                    f"(distance {_fmt(chosen[i, j])}), tolerance {_fmt(tolerance(best[i, j]))}")
    if bad.sum() > MAX_MESSAGES:
        msgs.append(f"{label}: {int(bad.sum())} of {bad.size} codes wrong in all")
    return msgs


def exact_prefix(label, out, count, ref):
    """A variable-length exact result: `count` (a 0-d integer) must equal len(ref), and
    out[:count] must equal `ref` value for value (no tolerance: integers). The message
    names the first differing position, the expected and the got value."""
    got_n, want_n = int(count), len(ref)
    if got_n != want_n:
        hint = "" if 0 <= got_n <= len(out) else (
            f" (outside 0..{len(out)}, the output's capacity: was the count returned?)")
        first = _first_difference(out[:min(max(got_n, 0), len(out), want_n)], ref)
        where = "" if first is None else f"; the first differing value is at position {first}"
        return [f"{label}: returned count {got_n}, expected {want_n}{hint}{where}"]
    first = _first_difference(out[:got_n], ref)
    if first is None:
        return []
    return [f"{label}: position {first} of {want_n}: expected {int(ref[first])}, got {int(out[first])}"]


def _first_difference(got, ref):
    n = min(len(got), len(ref))
    diff = np.flatnonzero(np.asarray(got[:n]) != np.asarray(ref[:n]))
    return int(diff[0]) if len(diff) else None
