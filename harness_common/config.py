"""A target's target.toml: the generic part every trial reads.

Target-specific sections ([speed], [battery], ...) are read by the target's
own run_experiment.py from `TargetConfig.raw`.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """target.toml is missing a key or holds a bad value."""


@dataclass(frozen=True)
class Budget:
    trial_seconds: float          # a full trial must finish within this to be kept
    timing_seconds: float         # the timing rounds share this, split across combos
    quick_timing_seconds: float
    min_rounds: int
    max_rounds: int
    quick_rounds: int
    call_timeout_seconds: float
    constructor_seconds: float    # a kernel constructor slower than this is not kept
    memory_guard_mb: float        # peak RSS of the candidate's worker
    worker_memory_mb: int         # address-space limit of every worker
    max_combo_ratio: float        # no combo may get slower than this vs best


@dataclass(frozen=True)
class TargetConfig:
    name: str
    unit: str                     # "query" or "row": the metric is ns per unit
    kernel_class: str
    kernel_methods: tuple
    budget: Budget
    raw: dict


def load(path):
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}")
    try:
        b = raw["budget"]
        budget = Budget(**{f: b[f] for f in Budget.__dataclass_fields__})
        return TargetConfig(raw["name"], raw["unit"], raw["kernel_class"],
                            tuple(raw["kernel_methods"]), budget, raw)
    except KeyError as exc:
        raise ConfigError(f"{path} lacks the key {exc.args[0]!r}")


def discover(root):
    """Names of the targets under root/targets/: every folder with a target.toml, sorted.

    Targets are found, never listed, so adding one changes no shared file."""
    base = Path(root) / "targets"
    return sorted(p.parent.name for p in base.glob("*/target.toml"))
