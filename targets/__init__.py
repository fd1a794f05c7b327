"""Optimization targets: one package per kernel, all with the same files."""
