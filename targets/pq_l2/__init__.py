"""pq_l2: Lance product-quantization L2 distance search (see program.md)."""
