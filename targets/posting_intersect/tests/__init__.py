"""posting_intersect's own test facts and cases (immutable for posting_intersect; read by the generic suites in tests/)."""
