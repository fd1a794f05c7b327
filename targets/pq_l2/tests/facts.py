"""What the generic suites in tests/ need to know about pq_l2.

Expressions are Python source evaluated inside a wrapper of the kernel's
methods: call predicates see the timed method's parameters by name, shape
predicates see `init`, the constructor's keyword arguments.
"""
TIMED = "search"                                   # the method the speed combos time
SIGNATURE = "queries, codes, k, out_ids, out_dists"
INPUT = "queries"                                  # a float32 input a cheat can scribble on
OUTPUTS = "out_ids, out_dists"                     # the timed method's outputs
SPEED_CALL = "len(codes) == 20000"                 # a timed call of a speed combo, never the battery
SPEED_SHAPE = "init['dim'] in (128, 256, 768)"     # a shape the speed combos use (others are held out)
BIGGEST_COMBO = "init['num_sub_vectors'] == 96 and len(codes) == 20000"
WRONG = "out_dists *= 1.001"                       # right outputs made wrong beyond the tolerance


def honest(**init):
    """A float32 numpy kernel with the target's API: the generic tolerance suite's honest kernel."""
    from .test_tolerance import NumpyPq
    return NumpyPq(**init)
