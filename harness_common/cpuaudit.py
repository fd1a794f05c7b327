"""The CPU audit: work a kernel's worker did outside the windows that measure it.

A worker runs only while the supervisor waits on it (process.py), so its CPU
time splits exactly into measured windows and the supervisor's other
requests. Between windows the harness's own work is a `prep` (array views for
the next sample; the content is written only after it), whose honest cost was
measured in the same process before any kernel code existed (hosts.py). A
kernel that moves work there (precomputing, warming caches from hooked
harness code) shows as prep CPU beyond that yardstick. The yardstick never
comes from another kernel, so no kept kernel can widen it.

Time on CPU is the OS's accounting, so an honest worker that shares its CPU
with other load is not flagged: waiting to run costs no CPU time.
"""
import numpy as np

PREP_FACTOR = 3.0          # honest prep, measured: within 1.5x of the null samples,
PREP_SLACK_NS = 1_000_000  # but after some kernels the harness's own Python runs cold or
PREP_SHARE = 0.25          # pays for their memory (measured: +0.45 ms after a 1.2 ms call
                           # that had allocated a large buffer, +0.4 ms after a 37 ms one).
                           # Prep happens before the sample's content exists, so work hidden
                           # there can only warm caches: a loose bound costs little.
PARALLEL_SLACK_NS = 300_000


class CpuAudit:
    def __init__(self):
        self.preps = {}          # combo -> [(prep cpu ns, expected ns)]
        self.windows = {}        # (combo, label) -> [(cpu ns, wall ns)] of its windows

    def sample(self, where, host, views, prep, window):
        """One sample of `host`: its prep span and its measured window."""
        if host.label == "candidate":
            self.preps.setdefault(where, []).append(
                (prep.cpu_ns, host.expected_prep_ns(views), window.cpu_ns))
        self.windows.setdefault((where, host.label), []).append((window.cpu_ns, window.wall_ns))

    def problems(self):
        out = []
        # Medians per combo, with slack for the clocks' own skew: both spans end when
        # the worker's stop is confirmed, so one thread cannot pass its wall time.
        parallel = [f"{where} ({label})" for (where, label), spans in self.windows.items()
                    if np.median([c for c, _ in spans]) > 1.05 * np.median([w for _, w in spans])
                    + PARALLEL_SLACK_NS]
        if parallel:
            out.append(f"a worker used more CPU time than wall time in {len(parallel)} combo(s), "
                       f"first {parallel[0]}: work ran on more than one CPU")
        hidden = []
        for where, samples in self.preps.items():
            got = float(np.median([p[0] for p in samples]))   # a hiccup is noise; work hidden
                                                              # on most samples is not
            expected = float(np.median([p[1] for p in samples]))
            allowed = PREP_FACTOR * expected + PREP_SLACK_NS + \
                PREP_SHARE * float(np.median([p[2] for p in samples]))
            if got > allowed:
                hidden.append((got - expected, where, expected))
        if hidden:
            extra, where, expected = max(hidden)
            out.append(f"the candidate's worker used CPU outside its measured windows in "
                       f"{len(hidden)} combo(s): in {where} {extra / 1e3:.0f} us per sample beyond "
                       f"the harness's own {expected / 1e3:.0f} us: work escaped the measured window")
        return out
