"""What `python -m harness_common compare campq_encode` compares: FAISS ProductQuantizer.

FAISS needs S to divide dim, so the comparison runs at dims 1026 and 3072
(S = 6) with our k-means codebook loaded into faiss.ProductQuantizer and
encoded with compute_codes, on the same rows.
"""
import numpy as np

from . import run_experiment

UNIT = "row"
KERNEL_CLASS = "CamPqEncoder"
DIMS = (1026, 3072)


def combos(seed):
    """Every speed distribution at the dims FAISS supports."""
    return [run_experiment.combo(d, dim, seed) for dim in DIMS
            for d in run_experiment.SPEED["distributions"]]


def faiss_runner(combo, faiss):
    """callable(call) -> a timed callable encoding that call's rows with FAISS's ProductQuantizer."""
    dim, s = combo.init["dim"], combo.init["num_subspaces"]
    cb = combo.init["codebook"]
    dsub = dim // s
    pq = faiss.ProductQuantizer(dim, s, 8)
    centroids = np.stack([cb[:, i * dsub:(i + 1) * dsub] for i in range(s)])   # [S][K][dsub]
    faiss.copy_array_to_vector(np.ascontiguousarray(centroids, dtype=np.float32).ravel(),
                               pq.centroids)

    def prepare(call):
        return lambda: {"out": pq.compute_codes(call.args["rows"])}

    return prepare


def roofline_ns(combo, call, fma_per_ns):
    """Lower bound per row at the machine's fp32 peak: K x dim multiply-adds.
    (A kernel using lower-precision products with an exact re-check can beat it.)"""
    return len(combo.init["codebook"]) * combo.init["dim"] / fma_per_ns
