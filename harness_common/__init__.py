"""Plumbing shared by every target: build, isolation, timing, statistics, ledger.

Kernel code imports only `harness_common.cbuild`; everything else runs in
the supervisor (`python -m targets.<name>.run_experiment`) or the worker it
starts.
"""
