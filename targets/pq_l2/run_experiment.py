# ============================================================================
# IMMUTABLE: one trial of pq_l2 (the fixed metric and its checks).
# The harness checks this file against the ledger's baseline commit.
# ============================================================================
"""One trial of pq_l2: correctness battery, speed vs best kept kernel, verdict, ledger row.

Usage:
    python -m targets.pq_l2.run_experiment --description "what this trial tries"
    python -m targets.pq_l2.run_experiment --quick
    python -m targets.pq_l2.run_experiment --help

This file declares what pq_l2's trial runs (cases, combos, their checks);
harness_common.trial runs it. The kernel is timed on `search`, one query per
call (what Lance runs) and 32 per call (a batch), every shape x distribution
in both modes; both `distance_tables` and `search` are checked against
reference.py.
"""
from pathlib import Path

import numpy as np

from harness_common import checks, config, datacache, trial
from harness_common.plan import Call, Case, Combo

from . import inputs, reference

CFG = config.load(Path(__file__).with_name("target.toml"))
SPEED, BATTERY = CFG.raw["speed"], CFG.raw["battery"]


def _label(dist, shape):
    return f"{dist}/{shape[0]}x{shape[1]}x{shape[2]}"


def _init(shape, codebook):
    return dict(dim=shape[0], num_sub_vectors=shape[1], num_centroids=shape[2], codebook=codebook)


def _search_outputs(nq, k):
    return {"out_ids": ("uint32", (nq, k)), "out_dists": ("float32", (nq, k))}


def _own_distances(codebook, queries, codes, ids):
    """Reference distance of each returned id, per query (float64)."""
    m_count = codebook.shape[0]
    safe = np.minimum(ids.astype(np.int64), len(codes) - 1)
    cent = codebook[np.arange(m_count), codes[safe].astype(np.int64)].astype(np.float64)
    q = queries.astype(np.float64).reshape(len(queries), 1, m_count, -1)
    return ((q - cent) ** 2).sum(axis=(-1, -2))


def check_search(label, codebook, queries, codes, k, ids, dists, full=None, refs=None):
    """Every query: valid ids, their distances; queries in `full` (default all): exact top-k.

    `refs` (a dict, optional) keeps each query's reference distances for the next
    check of the same call: the candidate's and the best's outputs share them."""
    n = len(codes)
    full = range(len(queries)) if full is None else full
    refs = {} if refs is None else refs
    own = _own_distances(codebook, queries, codes, ids[:, :min(k, n)])
    for q in range(len(queries)):
        ref_all = None
        if q in full:
            if q not in refs:
                refs[q] = reference.adc_distances(
                    reference.distance_tables(codebook, queries[q:q + 1])[0], codes)
            ref_all = refs[q]
        msgs = checks.topk(f"{label} search query {q}", ids[q], dists[q], n, k,
                           lambda sel, q=q: own[q][:len(sel)], ref_all)
        if msgs:
            return msgs
    return []


# ------------------------------------------------------------ correctness

def _case(name, shape, dist, n, nq, k, seed):
    dim, m_count, kc = shape
    ds = inputs.Dataset(seed, dim, dist)
    rng = inputs.rng_for(seed, "battery", name)
    cb = inputs.codebook(ds, rng, m_count, kc)
    codes = inputs.codes(ds, rng, cb, n)
    q = inputs.queries(ds, rng, nq)

    def check(outs):
        msgs = checks.close(f"{name} distance_tables", outs[0]["out"], reference.distance_tables(cb, q))
        return msgs or check_search(name, cb, q, codes, k, outs[1]["out_ids"], outs[1]["out_dists"])

    return Case(name, _init(shape, cb),
                [Call("distance_tables", {"queries": q}, {"out": ("float32", (nq, m_count, kc))}),
                 Call("search", {"queries": q, "codes": codes, "k": k}, _search_outputs(nq, k))],
                check)


def battery(seed, quick=False):
    """Every distribution x shape, then the edge cases; all from this trial's seed."""
    cases = [_case(_label(d, s), s, d, BATTERY["n"], BATTERY["nq"], BATTERY["k"], seed)
             for s in BATTERY["shapes"] for d in BATTERY["distributions"]]
    cases += [_case(f"edge/{e['name']}", e["shape"], "gaussian", e["n"], e["nq"], e["k"], seed)
              for e in BATTERY["edge_cases"]]
    return cases


# ------------------------------------------------------------ speed

def _pool(dist, shape):
    """Codebook and code sets for a speed combo: encoded once per pool seed, cached."""
    seed, n, count = SPEED["pool_seed"], SPEED["n"], SPEED["workloads"]

    def make():
        ds = inputs.Dataset(seed, shape[0], dist)
        rng = inputs.rng_for(seed, "pool", dist, *shape)
        cb = inputs.codebook(ds, rng, shape[1], shape[2])
        return dict(codebook=cb, **{f"codes{i}": inputs.codes(ds, rng, cb, n) for i in range(count)})

    return datacache.cached(("pq_l2", "pool", 1, seed, dist, *shape, n, count), make)


def combo(dist, shape, nq, seed):
    """One speed combo: `nq` queries per call (1: what Lance runs; 32: a batch)."""
    pool = _pool(dist, shape)
    count, k = SPEED["workloads"], SPEED["k"]
    # This trial's names for the cached pool: new bytes, same distances.
    cb, code_sets = inputs.relabel(pool["codebook"], [pool[f"codes{i}"] for i in range(count)],
                                   inputs.rng_for(seed, "relabel", dist, *shape))
    ds = inputs.Dataset(SPEED["pool_seed"], shape[0], dist)
    name = f"q{nq}/" + _label(dist, shape)

    def call(rng):
        # Fresh content every call: new queries, and the code rows in a new order
        # (the harness never repeats an input within a trial).
        codes = code_sets[int(rng.integers(count))]
        codes = np.take(codes, rng.permutation(len(codes)), axis=0)
        return Call("search", {"queries": inputs.queries(ds, rng, nq), "codes": codes, "k": k},
                    _search_outputs(nq, k))

    def check(c, outputs, rng, memo):
        # Every returned id and distance is checked; the whole top-k is re-derived
        # for one secret query of every batch call and one in four single-query calls.
        if "full" not in memo:
            memo["full"] = {int(rng.integers(nq))} if nq > 1 or rng.random() < 0.25 else set()
        return check_search(name, cb, c.args["queries"], c.args["codes"], k,
                            outputs["out_ids"], outputs["out_dists"], memo["full"],
                            memo.setdefault("refs", {}))

    # Any search reads every code byte at least once per call; 200 GB/s is beyond this machine.
    floor = SPEED["n"] * shape[1] / nq / 200.0
    return Combo(name, _init(shape, cb), nq, call, check, batched=("queries",),
                 scalar_units=min(nq, SPEED["scalar_queries"]), floor_ns=floor, mode=f"q{nq}")


def speed_combos(seed, quick=False):
    dists = SPEED["quick_distributions"] if quick else SPEED["distributions"]
    return [combo(d, s, nq, seed) for nq in SPEED["nq"] for s in SPEED["shapes"] for d in dists]


if __name__ == "__main__":
    raise SystemExit(trial.main(__file__, battery, speed_combos))
