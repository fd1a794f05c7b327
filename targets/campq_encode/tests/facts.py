"""What the generic suites in tests/ need to know about campq_encode.

Expressions are Python source evaluated inside a wrapper of the kernel's
methods: call predicates see the timed method's parameters by name, shape
predicates see `init`, the constructor's keyword arguments.
"""
TIMED = "encode"                                   # the method the speed combos time
SIGNATURE = "rows, out"
INPUT = "rows"                                     # a float32 input a cheat can scribble on
OUTPUTS = "out"                                    # the timed method's outputs
SPEED_CALL = "len(rows) == 2048"                   # a timed call of a speed combo, never the battery
SPEED_SHAPE = "init['dim'] in (1024, 3072, 4096)"  # a width the speed combos use (others are held out)
BIGGEST_COMBO = "init['dim'] == 4096 and len(rows) == 2048"
WRONG = "out[::7] ^= 1"                            # right codes made wrong


def honest(**init):
    """A float32 numpy encoder with the target's API: the generic tolerance suite's honest kernel."""
    from .test_tolerance import NumpyEncoder
    return NumpyEncoder(**init)
