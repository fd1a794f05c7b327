"""Where a kernel's arrays land is drawn anew before every construction (worker.construct).

Two workers of a pair go through the same steps, but their kernels' paths and module names
differ, and that alone put an unchanged campq_encode kernel's arrays at offsets that made it
read 0.93 to 1.08 per combo against itself, the same way every trial. The supervisor now
sends block sizes from its secret source with each construction; the blocks come first, so
the kernel's arrays land somewhere new each time.

Each case runs in a fresh process with the worker's own malloc settings and environment,
as a worker does: the test process's heap, shaped by whatever tests ran before, is not a
worker's, and neither is one shaped by the test runner's environment.
"""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from harness_common import sandbox

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from harness_common import worker

    class Kernel:
        def __init__(self, isa):
            self.table = np.empty(1536, np.float32)  # 6 KB, like campq_encode's per-centroid arrays

    worker._keep_freed_memory()
    w = worker.Worker(-1, -1, -1)
    w.reply = lambda *args, **kwargs: None       # no supervisor on the other end
    w.classes = {"k": Kernel}
    found = []
    for pad in json.loads(sys.argv[1]):
        w.construct({"kernel": "k", "combo": 0, "init": {}, "pad": pad}, {})
        found.append(w.objects[("k", 0)].table.ctypes.data % 4096)
        assert [b.nbytes for b in w.pads[0]] == pad
        w.drop({"combo": 0}, {})
        assert 0 not in w.pads and ("k", 0) not in w.objects
    print(json.dumps(found))
""")


def _page_offsets(pads):
    """The kernel's array's offset within its page, constructed after each pad in turn."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(pads)], capture_output=True,
                         text=True, check=True, timeout=120, env=sandbox.WORKER_ENV, cwd=ROOT)
    return json.loads(out.stdout)


def test_without_blocks_the_same_history_lands_in_the_same_place():
    assert len(set(_page_offsets([[]] * 6))) == 1


def test_random_blocks_before_construction_move_the_kernels_arrays():
    rng = np.random.default_rng(5)
    pads = [(16 * rng.integers(1, 4096, 8)).tolist() for _ in range(6)]
    assert len(set(_page_offsets(pads))) >= 5
