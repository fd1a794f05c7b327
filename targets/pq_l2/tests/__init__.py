"""pq_l2's own test facts and cases (immutable for pq_l2; read by the generic suites in tests/)."""
