# ============================================================================
# IMMUTABLE: one trial of campq_encode (the fixed metric and its checks).
# The harness checks this file against the ledger's baseline commit.
# ============================================================================
"""One trial of campq_encode: correctness battery, speed vs best kept kernel, verdict, ledger row.

Usage:
    python -m targets.campq_encode.run_experiment --description "what this trial tries"
    python -m targets.campq_encode.run_experiment --quick
    python -m targets.campq_encode.run_experiment --help

This file declares what campq_encode's trial runs (cases, combos, their
checks); harness_common.trial runs it. Codebooks are k-means on calibration
rows that never overlap the measured rows (checked below, before any work).
"""
from pathlib import Path

import numpy as np

from harness_common import checks, config, datacache, trial
from harness_common.plan import Call, Case, Combo

from . import inputs, reference

CFG = config.load(Path(__file__).with_name("target.toml"))
CB, SPEED, BATTERY = CFG.raw["codebook"], CFG.raw["speed"], CFG.raw["battery"]
S = CB["num_subspaces"]


def check_disjoint(cb=CB):
    """Refuse a configuration whose measured rows could include calibration rows."""
    lo, hi = cb["calibration_start"], cb["calibration_start"] + cb["calibration_rows"]
    if cb["measurement_start"] < hi and lo < cb["measurement_start"] + (1 << 40):
        raise config.ConfigError(
            f"target.toml [codebook]: measurement_start = {cb['measurement_start']} is inside or "
            f"before the calibration rows [{lo}, {hi}): the codebook would be scored on rows it "
            f"was trained on; set measurement_start >= {hi}")


def _stream(dist, dim):
    return inputs.RowStream(CB["stream_seed"], dist, dim)


def codebook(dist, dim):
    """k-means codebook for (dist, dim), trained once on the calibration rows and cached."""
    key = ("campq_encode", "codebook", 1, CB["stream_seed"], dist, dim, S, CB["num_centroids"],
           CB["calibration_start"], CB["calibration_rows"], CB["kmeans_iterations"])
    return datacache.cached(key, lambda: {"codebook": inputs.train_codebook(
        _stream(dist, dim), CB["calibration_start"], CB["calibration_rows"], S,
        CB["num_centroids"], CB["kmeans_iterations"], CB["stream_seed"])})["codebook"]


def _measured_rows(dist, dim, n, rng):
    """n consecutive stream rows at a random place in the measurement range."""
    start = CB["measurement_start"] + inputs.BLOCK * int(rng.integers(0, 1 << 30))
    return _stream(dist, dim).rows(start, n)


def _init(dim, cb):
    return dict(dim=dim, num_subspaces=S, codebook=cb)


# ------------------------------------------------------------ correctness

def _case(name, dim, dist, n, seed, rows="stream", book="trained", gap=0.0, scale=1.0):
    check_disjoint()
    rng = inputs.rng_for(seed, "battery", name)
    cb = codebook(dist, dim) * np.float32(scale)
    if book == "duplicates":
        cb = inputs.duplicate_centroids(cb, rng)
    x = {"stream": lambda: _measured_rows(dist, dim, n, rng),
         "at_centroids": lambda: inputs.rows_at_centroids(cb, S, rng, n),
         "near_ties": lambda: inputs.near_tie_rows(cb, S, rng, n, gap)}[rows]()

    def check(outs):
        return checks.argmin(f"{name} encode", outs[0]["out"], reference.distances(cb, x, S))

    return Case(name, _init(dim, cb), [Call("encode", {"rows": x}, {"out": ("uint8", (n, S))})], check)


def battery(seed, quick=False):
    """Every distribution x dim, held-out dims, then the edge cases; rows from this trial's seed."""
    n = BATTERY["n"]
    cases = [_case(f"{d}/{dim}", dim, d, n, seed)
             for dim in BATTERY["dims"] for d in BATTERY["distributions"]]
    cases += [_case(f"held_out/{dim}", dim, "gaussian", n, seed) for dim in BATTERY["held_out_dims"]]
    cases += [_case(f"edge/{e['name']}", e["dim"], "gaussian", e["n"], seed,
                    e.get("rows", "stream"), e.get("codebook", "trained"),
                    e.get("gap", 0.0), e.get("scale", 1.0))
              for e in BATTERY["edge_cases"]]
    return cases


# ------------------------------------------------------------ speed

def combo(dist, dim, seed):
    check_disjoint()
    n, count = SPEED["n"], SPEED["workloads"]
    cb = codebook(dist, dim)
    key = ("campq_encode", "pool", 1, CB["stream_seed"], dist, dim, CB["measurement_start"], n, count)
    pool = datacache.cached(key, lambda: {
        f"rows{i}": _stream(dist, dim).rows(CB["measurement_start"] + i * n, n) for i in range(count)})
    name = f"{dist}/{dim}"

    def call(rng):
        # New content every call, same distribution: the distributions are symmetric
        # per column, so flipping column signs keeps them; permuting rows hides order.
        rows = np.take(pool[f"rows{int(rng.integers(count))}"], rng.permutation(n), axis=0)
        rows *= np.where(rng.random(dim) < 0.5, -1.0, 1.0).astype(np.float32)
        return Call("encode", {"rows": rows}, {"out": ("uint8", (n, S))})

    def check(c, outputs, rng, memo):
        if "idx" not in memo:
            memo["idx"] = np.sort(rng.choice(n, SPEED["sample_rows"], replace=False))
            memo["ref"] = reference.distances(cb, c.args["rows"][memo["idx"]], S)
        return checks.argmin(f"{name} encode", outputs["out"][memo["idx"]], memo["ref"], memo["idx"])

    # Any encoder reads every row once; 200 GB/s is beyond this machine.
    floor = dim * 4 / 200.0
    return Combo(name, _init(dim, cb), n, call, check, batched=("rows",),
                 scalar_units=SPEED["scalar_rows"], floor_ns=floor)


def speed_combos(seed, quick=False):
    dists = SPEED["quick_distributions"] if quick else SPEED["distributions"]
    return [combo(d, dim, seed) for dim in SPEED["dims"] for d in dists]


if __name__ == "__main__":
    raise SystemExit(trial.main(__file__, battery, speed_combos))
