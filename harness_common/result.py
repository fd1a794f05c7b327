"""The result block a trial prints last: a `---` line, then `key: value` lines.

Agents grep it (`grep '^status:'`), so the keys and their order never
change; a figure the trial did not reach prints as `n/a`. `combo:` lines
repeat, one per speed combo; `mode:` lines, one per mode of a target that
times several (pq_l2: queries per call).

Figures travel as numbers (the trial's, the ledger reader's) and are turned
into text only by `fmt`, so the block, the ledger and the report print the
same digits.
"""
# Digits after the point, per kind of figure.
_DIGITS = {"ns": 1, "ratio": 4, "speedup": 2, "mb": 1, "ms": 1, "s": 1}


def fmt(value, kind):
    """A figure as text (`kind`: ns, ratio, speedup, mb, ms or s); None stays None."""
    return None if value is None else f"{value:.{_DIGITS[kind]}f}"


def keys(unit):
    return ("status", "reason", "correctness", f"geomean_ns_per_{unit}", "mode", "ratio_vs_best",
            "ratio_ci95", f"worst_ns_per_{unit}", f"best_ns_per_{unit}", "combo",
            "speedup_vs_scalar", "peak_rss_mb", "constructor_ms", "build_seconds",
            "inputs_seconds", "total_seconds", "isa", "sandbox", "cpu", "amx_permission", "seed",
            "kernel_sha256", "warning", "ledger")


class ResultBlock:
    def __init__(self, unit):
        self.unit = unit
        self.values = {}
        self.combos = []
        self.modes = []             # per-mode headline lines, where a target has modes

    def set(self, key, value):
        if key not in keys(self.unit):
            raise KeyError(f"{key!r} is not a result key")
        self.values[key] = value

    def add_figures(self, fig):
        """The timing figures of a trial (verdict.Figures)."""
        unit = self.unit
        self.set(f"geomean_ns_per_{unit}", fmt(fig.geomean_ns, "ns"))
        self.modes = [f"{mode} geomean_ns_per_{unit}={fmt(ns, 'ns')}"
                      for mode, ns in fig.mode_geomeans.items()]
        self.set("ratio_vs_best", fmt(fig.ratio, "ratio"))
        self.set("ratio_ci95", None if fig.ratio is None else
                 f"[{fmt(fig.ci_low, 'ratio')}, {fmt(fig.ci_high, 'ratio')}]")
        self.set(f"worst_ns_per_{unit}", f"{fmt(fig.worst.ns_per_unit, 'ns')} ({fig.worst.name})")
        self.set(f"best_ns_per_{unit}", f"{fmt(fig.fastest.ns_per_unit, 'ns')} ({fig.fastest.name})")
        self.combos = [combo_line(r, unit) for r in fig.results]
        self.set("speedup_vs_scalar", fmt(fig.speedup_vs_scalar, "speedup"))
        self.set("constructor_ms", fmt(fig.ctor_ms, "ms"))
        if fig.noisy:
            self.set("warning", f"unstable timings (per-round candidate/best ratios, or without a best "
                                f"the samples, vary by 10% or more) on {', '.join(fig.noisy)}: the "
                                f"machine is noisy; a verdict may flip on rerun")

    def render(self):
        order = keys(self.unit)
        width = max(len(k) for k in order) + 2
        out = ["---"]
        for key in order:
            if key in ("combo", "mode"):
                lines = self.combos if key == "combo" else self.modes
                out += [f"{key + ':':<{width}}{line}" for line in lines]
                continue
            value = self.values.get(key)
            if value is None and key in ("reason", "warning"):
                continue
            out.append(f"{key + ':':<{width}}{'n/a' if value is None else value}")
        return "\n".join(out)


def combo_line(res, unit):
    text = f"{res.name} ns_per_{unit}={fmt(res.ns_per_unit, 'ns')}"
    if res.ratio is not None:
        text += (f" best_ns_per_{unit}={fmt(res.best_ns_per_unit, 'ns')} ratio={fmt(res.ratio, 'ratio')}"
                 f" ci95=[{fmt(res.ci_low, 'ratio')},{fmt(res.ci_high, 'ratio')}]")
    if res.scalar_ns_per_unit is not None:
        text += f" speedup_vs_scalar={fmt(res.scalar_ns_per_unit / res.ns_per_unit, 'speedup')}"
    return text + f" rounds={res.rounds} cv={100 * res.cv:.1f}%"
