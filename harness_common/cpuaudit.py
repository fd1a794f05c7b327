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

PREP_FACTOR = 3.0          # honest prep, measured: within 1.5x of the null samples
PREP_SLACK_NS = 100_000    # plus a fixed allowance for cache refills after a kernel ran


class CpuAudit:
    def __init__(self):
        self.preps = {}          # combo -> [(prep cpu ns, expected ns)]
        self.parallel = []       # where a window used more CPU than wall time
        self.threads = []        # where a worker had more than one thread

    def prep(self, where, host, views, span):
        if host.label == "candidate":
            self.preps.setdefault(where, []).append((span.cpu_ns, host.expected_prep_ns(views)))

    def window(self, where, host, span, threads):
        if span.cpu_ns > span.wall_ns * 1.05 + 200_000:
            self.parallel.append(f"{where} ({host.label})")
        if threads > 1:
            self.threads.append(f"{where} ({host.label}): {threads - 1} extra thread(s)")

    def problems(self):
        out = []
        if self.threads:
            out.append(f"the kernel left threads running after a call in {self.threads[0]}")
        if self.parallel:
            out.append(f"a worker used more CPU time than wall time ({len(self.parallel)} "
                       f"samples, first in {self.parallel[0]}): work ran on more than one CPU")
        hidden = []
        for where, pairs in self.preps.items():
            got = float(np.median([p[0] for p in pairs]))   # a hiccup is noise; work hidden
                                                            # on most samples is not
            expected = float(np.median([p[1] for p in pairs]))
            if got > PREP_FACTOR * expected + PREP_SLACK_NS:
                hidden.append((got - expected, where, expected))
        if hidden:
            extra, where, expected = max(hidden)
            out.append(f"the candidate's worker used CPU outside its measured windows in "
                       f"{len(hidden)} combo(s): in {where} {extra / 1e3:.0f} us per sample beyond "
                       f"the harness's own {expected / 1e3:.0f} us: work escaped the measured window")
        return out
