"""campq_encode: 6-byte CAM-PQ fingerprints of weight-matrix rows (see program.md)."""
