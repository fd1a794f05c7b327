# ============================================================================
# IMMUTABLE: one trial of posting_intersect (the fixed metric and its checks).
# The harness checks this file against the ledger's baseline commit.
# ============================================================================
"""One trial of posting_intersect: correctness battery, speed vs best kept kernel, verdict, ledger row.

Usage:
    python -m targets.posting_intersect.run_experiment --description "what this trial tries"
    python -m targets.posting_intersect.run_experiment --quick
    python -m targets.posting_intersect.run_experiment --help

This file declares what posting_intersect's trial runs (cases, combos, their
checks); harness_common.trial runs it. The kernel is timed on `intersect`, one
intersection of K lists per call, and every output is compared bit for bit
with reference.py: the count, then each value up to it.
"""
from pathlib import Path

import numpy as np

from harness_common import checks, config, datacache, trial
from harness_common.plan import Call, Case, Combo

from . import inputs, reference

CFG = config.load(Path(__file__).with_name("target.toml"))
SPEED, BATTERY = CFG.raw["speed"], CFG.raw["battery"]


def _call(lists):
    """One intersect call: the lists, an output as long as the shortest, the count returned."""
    return Call("intersect", {"lists": list(lists)},
                {"out": ("uint32", (reference.capacity(lists),)), "count": ("int64", ())},
                returns="count")


def _check(label, lists, outputs, ref=None):
    """The count, then every value up to it, against the reference (`ref`, when the caller
    has it already): exact."""
    ref = reference.intersect(lists) if ref is None else ref
    return checks.exact_prefix(f"{label} intersect of {len(lists)} list(s)", outputs["out"],
                               outputs["count"], ref)


# ------------------------------------------------------------ correctness

def _edge(name, rng):
    """The lists of one named edge case (target.toml [battery] edge_cases)."""
    top = inputs.MAX
    if name == "k0":
        return []
    if name == "k1":
        return inputs.instance(rng, "balanced", 1)
    if name == "one_empty":
        return inputs.instance(rng, "dense", 3) + [np.zeros(0, np.uint32)]
    if name == "all_empty":
        return [np.zeros(0, np.uint32)] * 3
    if name == "disjoint":                      # evens against odds: every value is near a match
        evens = inputs.sorted_set(2 * rng.choice(50_000, 5_000, replace=False))
        return [evens, evens + np.uint32(1)]
    if name == "identical":
        a = inputs.instance(rng, "balanced", 1)[0]
        return [a.copy() for _ in range(4)]
    if name == "one_common":                    # a single value in common, at a random place
        a, b = inputs.instance(rng, "dense", 2)
        b = np.setdiff1d(b, a)
        v = rng.choice(a)
        return [a, inputs.sorted_set(np.append(b, v))]
    if name == "near_max":                      # the top of the range, 2^32 - 1 included
        lists = [inputs.sorted_set(top - rng.choice(20_000, 9_000, replace=False)) for _ in range(3)]
        return [inputs.sorted_set(np.append(a, top)) for a in lists]
    if name == "k9_mixed":                      # many lists of very different lengths
        lists = inputs.instance(rng, "balanced", 6) + inputs.instance(rng, "skewed", 3)
        return [lists[i] for i in rng.permutation(len(lists))]
    if name == "interleaved":                   # matches every few values: many short runs
        base = np.arange(0, 400_000, 3)
        return [inputs.sorted_set(base[rng.random(len(base)) < 0.7]) for _ in range(3)]
    if name == "lengths_1_to_7":                # tails shorter than any vector width
        common = rng.choice(1000, 1, replace=False)
        return [inputs.sorted_set(np.append(rng.choice(1000, n - 1, replace=False), common))
                if n > 1 else inputs.sorted_set(common) for n in range(1, 8)]
    raise ValueError(f"unknown edge case {name!r}")


def _case(name, lists):
    return Case(name, {}, [_call(lists)], lambda outs: _check(name, lists, outs[0]))


def battery(seed, quick=False):
    """Every distribution x K, then the edge cases; all from this trial's seed."""
    cases = [_case(f"{d}/k{k}", inputs.instance(inputs.rng_for(seed, "battery", d, k), d, k))
             for d in BATTERY["distributions"] for k in BATTERY["ks"]]
    cases += [_case(f"edge/{e}", _edge(e, inputs.rng_for(seed, "edge", e)))
              for e in BATTERY["edge_cases"]]
    return cases


# ------------------------------------------------------------ speed

def _pool(dist, k):
    """The cached instances of one combo: generated once per pool seed."""
    seed, count = SPEED["pool_seed"], SPEED["instances"]

    def make():
        rng = inputs.rng_for(seed, "pool", dist, k)
        return {f"i{i}l{j}": a for i in range(count)
                for j, a in enumerate(inputs.instance(rng, dist, k))}

    pool = datacache.cached(("posting_intersect", "pool", 1, seed, dist, k, count), make)
    return [[pool[f"i{i}l{j}"] for j in range(k)] for i in range(count)]


def combo(dist, k, seed):
    """One speed combo: intersections of `k` lists of distribution `dist`."""
    pool, keep = _pool(dist, k), SPEED["keep"]
    name = f"{dist}/k{k}"

    def call(rng):
        # Fresh content every call: a cached instance thinned, shifted and reordered.
        return _call(inputs.fresh(rng, pool[int(rng.integers(len(pool)))], keep))

    def check(c, outputs, rng, memo):
        # One reference per call, shared by the candidate's and the best's re-check.
        if "ref" not in memo:
            memo["ref"] = reference.intersect(c.args["lists"])
        return _check(name, c.args["lists"], outputs, memo["ref"])

    # Any intersection reads the shortest list at least once; 200 GB/s is beyond this machine.
    shortest = min(min(len(a) for a in lists) for lists in pool) * keep
    return Combo(name, {}, 1, call, check, floor_ns=shortest * 4 / 200.0)


def speed_combos(seed, quick=False):
    dists = SPEED["quick_distributions"] if quick else SPEED["distributions"]
    return [combo(d, k, seed) for d in dists for k in SPEED["ks"]]


if __name__ == "__main__":
    raise SystemExit(trial.main(__file__, battery, speed_combos))
