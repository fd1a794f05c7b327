"""The command line of a trial: its options, their examples and the exit codes.

Every target's run_experiment.py gets the same options (trial.main parses them
here); exit codes are SPEC section 6, printed in --help so an agent can act on them.
"""
import argparse
import sys

EXIT_OK, EXIT_INTERNAL, EXIT_CORRECTNESS, EXIT_BUILD, EXIT_CRASH, EXIT_POLICY = range(6)


def parse_args(cfg, argv):
    mod = f"targets.{cfg.name}.run_experiment"
    parser = argparse.ArgumentParser(
        prog=f"python -m {mod}",
        description=f"Run one trial of the {cfg.name} kernel: build, correctness, speed vs "
                    f"the best kept kernel, verdict, one ledger row.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"""examples:
  python -m {mod} --description "unroll the scan by 4"
  python -m {mod} --quick                      # smoke run in seconds, never kept
  python -m {mod} --seed 1234                  # replay a failing correctness seed
  HARNESS_ISA=scalar python -m {mod} --quick   # force the scalar code path
  python -m {mod} --results-dir /tmp/scratch   # keep the real ledger untouched
  python -m {mod} --reanchor "harness_common: new timing"   # after a harness change

exit codes: 0 trial completed (kept or not), 1 setup mistake or harness error,
2 correctness failure, 3 build failure, 4 crash/timeout/limit, 5 integrity or policy violation""")
    parser.add_argument("--description", default="", help="what this trial tries (goes in the ledger)")
    parser.add_argument("--seed", type=int, default=None, help="correctness and input seed (default: fresh)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run; never kept")
    parser.add_argument("--results-dir", default=None, help=f"ledger directory (default: results/{cfg.name})")
    parser.add_argument("--timeout", type=float, default=cfg.budget.call_timeout_seconds,
                        help="seconds one kernel call may take before it counts as a hang")
    parser.add_argument("--cpu-wait", type=float, default=3600.0,
                        help="seconds to wait for a CPU pair another trial holds (default 3600)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run even where the OS cannot confine the workers (the row says sandbox: off)")
    parser.add_argument("--reanchor", metavar="WHY", default=None,
                        help="after a deliberate change to the harness or this target's immutable "
                             "files: re-measure the best kept kernel under it and anchor the ledger "
                             "to the current commit, keeping every earlier row")
    parser.error = lambda msg: (parser.print_usage(sys.stderr),
                                print(f"error: {msg}", file=sys.stderr), sys.exit(EXIT_INTERNAL))
    return parser.parse_args(argv)
