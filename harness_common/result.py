"""The result block a trial prints last: a `---` line, then `key: value` lines.

Agents grep it (`grep '^status:'`), so the keys and their order never
change; a figure the trial did not reach prints as `n/a`. `combo:` lines
repeat, one per speed combo; `mode:` lines, one per mode of a target that
times several (pq_l2: queries per call).
"""


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
    text = f"{res.name} ns_per_{unit}={res.ns_per_unit:.1f}"
    if res.ratio is not None:
        text += (f" best_ns_per_{unit}={res.best_ns_per_unit:.1f} ratio={res.ratio:.4f}"
                 f" ci95=[{res.ci_low:.4f},{res.ci_high:.4f}]")
    if res.scalar_ns_per_unit is not None:
        text += f" speedup_vs_scalar={res.scalar_ns_per_unit / res.ns_per_unit:.2f}"
    return text + f" rounds={res.rounds} cv={100 * res.cv:.1f}%"
