"""What `python -m harness_common compare pq_l2` compares: FAISS IndexPQ on our data.

The same codebook and codes are loaded into faiss.IndexPQ (M sub-quantizers
of 8 bits) and searched exhaustively, as Lance would with FAISS underneath.
"""
import numpy as np

from . import run_experiment

UNIT = "query"
KERNEL_CLASS = "PqKernel"


def combos(seed):
    """The speed combos of a trial: every mode x shape x distribution."""
    return run_experiment.speed_combos(seed)


def faiss_runner(combo, faiss):
    """callable(call) -> a timed callable searching that call's codes with FAISS
    (loading the codes into the index happens outside the timer)."""
    dim, m_count = combo.init["dim"], combo.init["num_sub_vectors"]
    centroids = np.ascontiguousarray(combo.init["codebook"], dtype=np.float32).ravel()

    def prepare(call):
        index = faiss.IndexPQ(dim, m_count, 8)
        faiss.copy_array_to_vector(centroids, index.pq.centroids)
        index.is_trained = True
        codes = np.ascontiguousarray(call.args["codes"])
        faiss.copy_array_to_vector(codes.ravel(), index.codes)
        index.ntotal = len(codes)

        def run():
            dists, ids = index.search(call.args["queries"], call.args["k"])
            return {"out_ids": ids.astype(np.uint32), "out_dists": dists}
        return run

    return prepare


def roofline_ns(combo, call, fma_per_ns):
    """Lower bound per query at the machine's fp32 peak: the table's dim x K
    multiply-adds plus one add per lookup (N x M), at one lane op per FMA slot."""
    dim, m_count, k = (combo.init[x] for x in ("dim", "num_sub_vectors", "num_centroids"))
    return (dim * k + len(call.args["codes"]) * m_count) / fma_per_ns
