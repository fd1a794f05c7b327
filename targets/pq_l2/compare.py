"""What `python -m harness_common compare pq_l2` compares: FAISS IndexPQ on our data.

The same codebook and codes are loaded into faiss.IndexPQ (M sub-quantizers
of 8 bits) and searched exhaustively, as Lance would with FAISS underneath.
"""
import numpy as np

from . import run_experiment

UNIT = "query"
KERNEL_CLASS = "PqKernel"


def combos(seed):
    """The speed combos of a trial: every shape x distribution."""
    return run_experiment.speed_combos(seed)


def faiss_runner(combo, faiss):
    """callable(args, w) -> outputs, searching with FAISS over workload w's codes."""
    dim, m_count = combo.init["dim"], combo.init["num_sub_vectors"]
    centroids = np.ascontiguousarray(combo.init["codebook"], dtype=np.float32).ravel()
    indexes = []
    for wl in combo.workloads:
        index = faiss.IndexPQ(dim, m_count, 8)
        faiss.copy_array_to_vector(centroids, index.pq.centroids)
        index.is_trained = True
        codes = np.ascontiguousarray(wl["codes"])
        faiss.copy_array_to_vector(codes.ravel(), index.codes)
        index.ntotal = len(codes)
        indexes.append(index)

    def run(args, w):
        dists, ids = indexes[w].search(args["queries"], args["k"])
        return {"out_ids": ids.astype(np.uint32), "out_dists": dists}

    return run


def roofline_ns(combo, fma_per_ns):
    """Lower bound per query at the machine's fp32 peak: the table's dim x K
    multiply-adds plus one add per lookup (N x M), at one lane op per FMA slot."""
    dim, m_count, k = (combo.init[x] for x in ("dim", "num_sub_vectors", "num_centroids"))
    n = len(combo.workloads[0]["codes"])
    return (dim * k + n * m_count) / fma_per_ns
