# ============================================================================
# IMMUTABLE: the oracle for campq_encode. The harness checks this file
# against the ledger's baseline commit; an edit stops the trial (exit 5).
# ============================================================================
"""The scalar oracle for campq_encode, in numpy float64 from the float32 inputs.

CAM-PQ encodes a row as S bytes: for each subspace s (columns
[s*dim//S, (s+1)*dim//S)), the index of the nearest centroid by squared L2,
where centroid k of subspace s is that column slice of codebook row k.
"""
import numpy as np


def _bounds(dim, num_subspaces):
    return [(s * dim // num_subspaces, (s + 1) * dim // num_subspaces) for s in range(num_subspaces)]


def distances(codebook, rows, num_subspaces):
    """float64 [n, S, K]: squared L2 from each row's slice to each centroid's slice.

    Computed as |x|^2 + |c|^2 - 2 x.c in float64: with float32 inputs the
    rounding error is below 1e-12 of |x|^2 + |c|^2, far inside the checker's
    tolerance, and it keeps the battery fast enough to run every trial.
    """
    x = rows.astype(np.float64)
    c = codebook.astype(np.float64)
    out = np.empty((len(rows), num_subspaces, len(codebook)))
    for s, (lo, hi) in enumerate(_bounds(rows.shape[1], num_subspaces)):
        xs, cs = x[:, lo:hi], c[:, lo:hi]
        d = (xs * xs).sum(1)[:, None] + (cs * cs).sum(1)[None, :] - 2.0 * (xs @ cs.T)
        out[:, s] = np.maximum(d, 0.0)
    return out


def encode(codebook, rows, num_subspaces):
    """uint8 [n, S]: nearest centroid per subspace, lowest index on an exact tie."""
    return distances(codebook, rows, num_subspaces).argmin(axis=2).astype(np.uint8)
