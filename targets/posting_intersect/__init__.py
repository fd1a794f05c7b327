"""posting_intersect: the sorted intersection of K posting lists (see program.md)."""
