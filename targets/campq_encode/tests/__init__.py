"""campq_encode's own test facts and cases (immutable for campq_encode; read by the generic suites in tests/)."""
