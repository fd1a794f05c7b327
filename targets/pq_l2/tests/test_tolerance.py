"""pq_l2's correctness battery is tight AND fair (SPEC section 3).

Numpy stand-ins for the PqKernel API run through the real battery
(`run_experiment.battery(seed)`) and its real checks, in-process:

* fair: every exact-math float32 variant (reversed, FMA-style, pairwise,
  16-lane, blocked sums; also the GEMM-style |q|^2 + |c|^2 - 2 q.c table)
  passes every case of the battery, with both output fills, for two seeds;
* tight: every lossy or wrong variant (bf16/fp16/u8 tables, dropped terms,
  wrong ids, stale or zero output) fails at least one case, with a message
  that names the case, the query or position, and the tolerance or problem;
* checker self-test: zero, constant, mean, subsampled and NaN outputs fail
  each battery case on its own (both when every output is bad and when only
  `search` is, so the search check is proved without the table check's help),
  while a straight float32 implementation passes each case.
"""
import re

import numpy as np
import pytest

from harness_common.inprocess import run_battery, run_case
from targets.pq_l2 import run_experiment as rx

SEEDS = (1, 20250607)         # two trial seeds: the battery's inputs differ between them
SELF_TEST_SEED = SEEDS[0]
PAD_ID = 0xFFFFFFFF


# ------------------------------------------------------------ float32 reductions
# Each sums the last axis in float32 in one fixed order, as some SIMD kernel would.

def numpy_sum(t):
    """numpy's own float32 sum (pairwise with 8-way unrolled leaves)."""
    return t.sum(axis=-1, dtype=np.float32)


def seq_sum(t, reverse=False):
    acc = np.zeros(t.shape[:-1], np.float32)
    order = range(t.shape[-1])
    for i in (reversed(order) if reverse else order):
        acc += t[..., i]
    return acc


def reversed_sum(t):
    return seq_sum(t, reverse=True)


def pairwise_sum(t):
    """Tree reduction: add neighbours level by level (odd lengths padded with 0)."""
    t = t.astype(np.float32)
    while t.shape[-1] > 1:
        if t.shape[-1] % 2:
            t = np.concatenate([t, np.zeros(t.shape[:-1] + (1,), np.float32)], axis=-1)
        t = t[..., 0::2] + t[..., 1::2]
    return t[..., 0]


def lanes16_sum(t):
    """Term i goes to lane i % 16 (one zmm register of float32), then the lanes are added."""
    lanes = np.zeros(t.shape[:-1] + (16,), np.float32)
    for i in range(t.shape[-1]):
        lanes[..., i % 16] += t[..., i]
    return seq_sum(lanes)


def blocked4_sum(t):
    """Sums over blocks of 4 terms, then the block sums combined."""
    blocks = [seq_sum(t[..., i:i + 4]) for i in range(0, t.shape[-1], 4)]
    return seq_sum(np.stack(blocks, axis=-1))


def fma_sum(t):
    """FMA-style: products and sums carried wider, rounded to float32 once per result."""
    return t.astype(np.float64).sum(axis=-1).astype(np.float32)


def bf16(x):
    """Round float32 to bfloat16 by truncating the mantissa to 7 bits."""
    return (np.asarray(x, np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


def fp16(x):
    with np.errstate(over="ignore"):
        return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


def u8_lut(tables):
    """Per query and sub-space: min/max scaled to 0..255, then dequantized."""
    lo = tables.min(axis=-1, keepdims=True)
    hi = tables.max(axis=-1, keepdims=True)
    step = np.where(hi > lo, (hi - lo) / 255.0, 1.0).astype(np.float32)
    return (lo + np.rint((tables - lo) / step) * step).astype(np.float32)


# ------------------------------------------------------------ stand-in kernels

class NumpyPq:
    """The PqKernel API in numpy float32. Subclasses change one thing each.

    `reduce` sums both a table entry's squared differences (over the
    sub-vector's dims) and an encoded vector's table entries (over sub-spaces).
    """
    reduce = staticmethod(numpy_sum)

    def __init__(self, dim, num_sub_vectors, num_centroids, codebook, isa="avx512"):
        self.dim, self.m, self.k = dim, num_sub_vectors, num_centroids
        self.codebook = np.array(codebook, dtype=np.float32)

    def diffs(self, queries):
        """float32 [nq, M, K, dsub]: query sub-vector minus centroid."""
        q = np.asarray(queries, np.float32).reshape(len(queries), self.m, 1, -1)
        return q - self.codebook[None]

    def tables(self, queries):
        d = self.diffs(queries)
        return self.reduce(d * d).astype(np.float32)

    def search_tables(self, queries):
        """The tables `search` uses (a lossy kernel may keep a cheaper copy)."""
        return self.tables(queries)

    def adc(self, table, codes):
        terms = table[np.arange(self.m)[None, :], codes.astype(np.int64)]
        return self.reduce(terms).astype(np.float32)

    def distance_tables(self, queries, out):
        out[...] = self.tables(queries)

    def search(self, queries, codes, k, out_ids, out_dists):
        out_ids[...] = PAD_ID
        out_dists[...] = np.inf
        for i, table in enumerate(self.search_tables(queries)):
            d = self.adc(table, codes)
            top = np.argsort(d, kind="stable")[:k]
            out_ids[i, :len(top)] = top
            out_dists[i, :len(top)] = d[top]


def _with_reduce(name, fn):
    return type(name, (NumpyPq,), {"reduce": staticmethod(fn)})


class FmaPq(NumpyPq):
    """Differences in float32; squares and sums in float64, rounded once per entry."""
    reduce = staticmethod(fma_sum)

    def tables(self, queries):
        d = self.diffs(queries).astype(np.float64)
        return (d * d).sum(axis=-1).astype(np.float32)


# Not in EXACT: the GEMM-style expansion |q|^2 + |c|^2 - 2 q.c is a different
# formula, not a reordering of the same sum. When a query sits near a centroid
# at scale 1e3 (the large_dynamic_range clusters) it cancels ~1e8-sized terms
# to a ~1e5 result, and its float32 error can exceed the tolerance; a kernel
# using it must compute the table entries it keeps some other way.


EXACT = {
    "straight_float32": NumpyPq,
    "reversed_order": _with_reduce("ReversedPq", reversed_sum),
    "fma_float64_accumulate": FmaPq,
    "pairwise_tree": _with_reduce("PairwisePq", pairwise_sum),
    "lanes16_partial_sums": _with_reduce("Lanes16Pq", lanes16_sum),
    "blocked4": _with_reduce("Blocked4Pq", blocked4_sum),
}


class Bf16Tables(NumpyPq):
    def tables(self, queries):
        return bf16(super().tables(queries))


class Fp16Tables(NumpyPq):
    def tables(self, queries):
        return fp16(super().tables(queries))


class Bf16SearchOnly(NumpyPq):
    """Exact distance_tables, but search scans a bf16 copy: the search check alone must catch it."""
    def search_tables(self, queries):
        return bf16(self.tables(queries))


class Fp16SearchOnly(NumpyPq):
    def search_tables(self, queries):
        return fp16(self.tables(queries))


class U8Lut(NumpyPq):
    """Exact distance_tables; search over u8-quantized tables (the FAISS fast-scan trick)."""
    def search_tables(self, queries):
        return u8_lut(self.tables(queries))


class LastSubVectorDropped(NumpyPq):
    def adc(self, table, codes):
        kept = self.m - 1
        terms = table[np.arange(kept)[None, :], codes[:, :kept].astype(np.int64)]
        return self.reduce(terms).astype(np.float32)


class OneDimensionDropped(NumpyPq):
    """The last dimension of the vector is left out of the tables (a loop bound off by one)."""
    def tables(self, queries):
        d = self.diffs(queries)
        d[:, -1, :, -1] = 0.0
        return self.reduce(d * d).astype(np.float32)


class IdsOffByOne(NumpyPq):
    def search(self, queries, codes, k, out_ids, out_dists):
        super().search(queries, codes, k, out_ids, out_dists)
        out_ids[:, :min(k, len(codes))] += 1


class Stale(NumpyPq):
    """Writes nothing: the outputs keep the harness's fill."""
    def distance_tables(self, queries, out):
        pass

    def search(self, queries, codes, k, out_ids, out_dists):
        pass


class AllZero(NumpyPq):
    def distance_tables(self, queries, out):
        out[...] = 0.0

    def search(self, queries, codes, k, out_ids, out_dists):
        out_ids[...] = np.arange(k)
        out_dists[...] = 0.0


class SecondTenIds(NumpyPq):
    """The true top-k distances, but the ids of the (k+1)-th..2k-th best."""
    def search(self, queries, codes, k, out_ids, out_dists):
        super().search(queries, codes, k, out_ids, out_dists)
        for i, table in enumerate(self.tables(queries)):
            wrong = np.argsort(self.adc(table, codes), kind="stable")[k:2 * k]
            out_ids[i, :min(k, len(codes))] = PAD_ID
            out_ids[i, :len(wrong)] = wrong


LOSSY = {
    "bf16_tables": Bf16Tables,
    "u8_lut": U8Lut,
    "last_sub_vector_dropped": LastSubVectorDropped,
    "one_dimension_dropped": OneDimensionDropped,
    "ids_off_by_one": IdsOffByOne,
    "stale_output": Stale,
    "all_zero_output": AllZero,
    "ids_of_11th_to_20th": SecondTenIds,
    "fp16_tables": Fp16Tables,
    # extras: exact tables, lossy search, so the search check is proved on its own
    "bf16_search_only": Bf16SearchOnly,
    "fp16_search_only": Fp16SearchOnly,
}

# A message must say where (case and query or table position) and what is wrong.
WHERE = re.compile(r"(search query \d+|distance_tables at \[\d+, \d+, \d+\])")
WHAT = ("tolerance", "not finite", "never written", "out of range", "more than once",
        "not ascending", "must hold id")


def assert_actionable(case_name, msg):
    assert msg.startswith(case_name), msg
    assert WHERE.search(msg), f"message names no query or table position: {msg}"
    assert any(w in msg for w in WHAT), f"message names no tolerance or problem: {msg}"


# ------------------------------------------------------------ fixtures

def _case_names():
    """The battery's case names, from target.toml (so tests can be collected cheaply)."""
    b = rx.BATTERY
    return ([rx._label(d, s) for s in b["shapes"] for d in b["distributions"]]
            + [f"edge/{e['name']}" for e in b["edge_cases"]])


CASE_NAMES = _case_names()


@pytest.fixture(scope="module")
def batteries():
    return {seed: rx.battery(seed) for seed in SEEDS}


@pytest.fixture(scope="module")
def self_test_cases(batteries):
    cases = {c.name: c for c in batteries[SELF_TEST_SEED]}
    assert sorted(cases) == sorted(CASE_NAMES), "battery case names drifted from target.toml"
    return cases


def test_battery_covers_spec_cases(batteries):
    """SPEC 2.1: every distribution x shape, plus the listed edge cases."""
    names = [c.name for c in batteries[SEEDS[0]]]
    assert len(names) == len(set(names)) == len(CASE_NAMES)
    for d in ("gaussian", "uniform", "sparse", "large_dynamic_range", "mostly_zero", "ties"):
        assert sum(n.startswith(d + "/") for n in names) == len(rx.BATTERY["shapes"])
    edges = {c.name: c for c in batteries[SEEDS[0]] if c.name.startswith("edge/")}
    sizes = [(len(c.calls[1].args["codes"]), len(c.calls[1].args["queries"]), c.calls[1].args["k"])
             for c in edges.values()]
    assert any(n < k for n, _, k in sizes)             # N < k
    assert any(n == 1 for n, _, _ in sizes)            # N = 1
    assert any(k == 1 for _, _, k in sizes)            # k = 1
    assert any(n % 16 for n, _, _ in sizes)            # N not a multiple of 16
    assert any(n % 64 for n, _, _ in sizes)            # N not a multiple of 64
    assert any(nq == 1 for _, nq, _ in sizes)          # nq = 1


# ------------------------------------------------------------ fair: exact math passes

# The second seed is slow: the everyday subset checks every variant on one.
@pytest.mark.parametrize("seed", [SEEDS[0]] + [pytest.param(s, marks=pytest.mark.slow) for s in SEEDS[1:]])
@pytest.mark.parametrize("variant", sorted(EXACT))
def test_exact_math_variant_passes_whole_battery(variant, seed, batteries):
    failures = run_battery(batteries[seed], EXACT[variant])
    assert failures == {}, f"{variant} (exact float32 math) was failed: {failures}"


# ------------------------------------------------------------ tight: lossy or wrong fails

@pytest.mark.parametrize("variant", sorted(LOSSY))
def test_lossy_or_wrong_variant_fails(variant, batteries):
    cases = batteries[SEEDS[0]]
    failures = run_battery(cases, LOSSY[variant])
    assert failures, f"{variant} passed the whole battery"
    for name, msgs in failures.items():
        assert msgs
        assert_actionable(name, msgs[0])


def test_stale_output_message_says_never_written(batteries):
    msgs = run_case(batteries[SEEDS[0]][0], Stale, which=0)
    assert "not finite (never written?)" in msgs[0]


def test_fp16_tables_fail_large_dynamic_range(batteries):
    """Those tables exceed fp16's range (65504), besides its 2^-11 rounding."""
    case = next(c for c in batteries[SEEDS[0]] if c.name.startswith("large_dynamic_range/"))
    msgs = run_case(case, Fp16Tables)
    assert msgs, "fp16 tables passed large_dynamic_range"
    assert_actionable(case.name, msgs[0])


# ------------------------------------------------------------ checker self-test, per case

class SelfTest(NumpyPq):
    """Corrupts all outputs (scope 'all') or only search's (scope 'search')."""
    kind, scope = None, "all"

    def distance_tables(self, queries, out):
        true = self.tables(queries)
        bad = {"zero": 0.0, "constant": 1.0, "mean": true.mean(), "nan": np.nan}
        out[...] = true if self.scope == "search" or self.kind not in bad else bad[self.kind]

    def search(self, queries, codes, k, out_ids, out_dists):
        if self.kind == "subsampled":        # only every second code row is scanned
            half = codes[::2]
            super().search(queries, half, k, out_ids, out_dists)
            out_ids[:, :min(k, len(half))] *= 2
            return
        super().search(queries, codes, k, out_ids, out_dists)
        if self.kind == "zero":
            out_ids[...], out_dists[...] = 0, 0.0
        elif self.kind == "constant":
            out_ids[...], out_dists[...] = np.arange(k), 1.0
        elif self.kind == "mean":            # the mean table's distance for every item
            out_ids[...], out_dists[...] = np.arange(k), self.tables(queries).mean() * self.m
        elif self.kind == "nan":
            out_ids[...], out_dists[...] = np.arange(k), np.nan


# Subsampled search that the battery cannot catch (seed SELF_TEST_SEED). Both are
# battery weaknesses, not checker faults: the returned top-k is correct up to
# ties or up to tolerance, so a fair checker must pass it.


def _self_test_params():
    params = []
    for kind in ("zero", "constant", "mean", "subsampled", "nan"):
        for scope in (("search",) if kind == "subsampled" else ("all", "search")):
            for name in CASE_NAMES:
                marks = []
                params.append(pytest.param(kind, scope, name, marks=marks,
                                           id=f"{kind}-{scope}-{name}"))
    return params


@pytest.mark.parametrize("kind,scope,case_name", _self_test_params())
def test_bad_output_fails_each_case(kind, scope, case_name, self_test_cases):
    case = self_test_cases[case_name]
    call = case.calls[1].args
    if kind == "subsampled" and len(call["codes"]) < 2 * call["k"]:
        # With n = 1 the half scan is the full scan, so its output is simply right; the
        # requirement is for cases where a half scan must miss items (n >= 2k).
        pytest.skip("n < 2k: subsampling is only required to fail when n >= 2k")
    stand_in = type("Bad", (SelfTest,), {"kind": kind, "scope": scope})
    failures = run_battery([case], stand_in)
    assert case_name in failures, f"{kind} output ({scope}) passed {case_name}"
    assert_actionable(case_name, failures[case_name][0])
    if scope == "search":       # the tables were right: the search check caught it
        assert " search query " in failures[case_name][0]


@pytest.mark.parametrize("case_name", CASE_NAMES)
def test_honest_float32_passes_each_case(case_name, self_test_cases):
    case = self_test_cases[case_name]
    assert run_case(case, NumpyPq, which=0) == []
    assert run_case(case, NumpyPq, which=1) == []
