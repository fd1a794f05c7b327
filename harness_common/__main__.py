"""Commands for the human side of the loop.

Usage:
    python -m harness_common report [TARGET]     # ledger table + results/<target>/progress.png
                                                 # (machine changes and reanchors marked in both)
    python -m harness_common compare TARGET      # ours vs FAISS vs scalar vs roofline, one run
    python -m harness_common calibrate TARGET    # this machine's false-keep / detection rates
    python -m harness_common new-target NAME     # a trial-ready targets/NAME/ to fill in
    python -m harness_common reanchor TARGET --why "..."   # keep a ledger across a harness change
"""
import argparse
import subprocess
import sys

from . import report


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m harness_common",
        description="Review what the optimization loop did.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  python -m harness_common report                # all targets with a ledger
  python -m harness_common report pq_l2          # one target; writes results/pq_l2/progress.png
  python -m harness_common report pq_l2 --results-dir /tmp/scratch
  python -m harness_common compare pq_l2         # needs pip install -e '.[compare]'
  python -m harness_common compare campq_encode --kernel best --rounds 30
  python -m harness_common calibrate pq_l2 --trials 20          # A/A and known-win error rates
  python -m harness_common calibrate campq_encode --trials 5 --load
  python -m harness_common new-target topk_l2    # writes targets/topk_l2/, prints the next steps
  python -m harness_common reanchor pq_l2 --why "harness_common: new timing"
                                                 # re-measures the best under the changed harness""")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="print the ledger table and draw the progress picture, "
                                        "marking machine changes and reanchors")
    rep.add_argument("target", nargs="?", help="target name (default: every target with a ledger)")
    rep.add_argument("--results-dir", help="the target's ledger folder, as given to run_experiment "
                                           "(default: results/<target>)")
    cmp_ = sub.add_parser("compare", help="time ours vs FAISS vs scalar baseline vs roofline, one run")
    cmp_.add_argument("target", help="target name (one with a compare.py)")
    cmp_.add_argument("--kernel", choices=("current", "best"), default="current",
                      help="targets/<t>/kernels.py (current) or results/<t>/best (best)")
    cmp_.add_argument("--rounds", type=int, default=20, help="timed rounds per combo (default 20)")
    cmp_.add_argument("--seed", type=int, default=1, help="input seed (default 1)")
    cal = sub.add_parser("calibrate", help="measure this machine's false-keep, false-tamper and "
                                           "detection rates with real trials in a scratch ledger")
    cal.add_argument("target", help="target name")
    cal.add_argument("--trials", type=int, default=20, help="A/A trials, and as many known-win "
                                                           "trials (default 20)")
    cal.add_argument("--load", action="store_true", help="keep every CPU busy with competing "
                                                         "processes meanwhile")
    cal.add_argument("--win", type=float, default=0.03, help="the known win: the best is made this "
                                                             "much slower (default 0.03)")
    new = sub.add_parser("new-target", help="write a trial-ready targets/NAME/ (shared parts done, "
                                            "the target's own places marked TARGET:)",
                         epilog="example: python -m harness_common new-target topk_l2")
    new.add_argument("name", help="the target's name (a Python package name, e.g. topk_l2)")
    rea = sub.add_parser("reanchor", help="after a deliberate change to the harness or a target's "
                                          "immutable files: re-measure the best kept kernel under "
                                          "it and anchor the ledger to this commit, keeping every row",
                         epilog='example: python -m harness_common reanchor pq_l2 --why "stats.py: '
                                'trimmed means"')
    rea.add_argument("target", help="target name")
    rea.add_argument("--why", required=True, help="the reason, recorded in the ledger row")
    rea.add_argument("--results-dir", help="the target's ledger folder (default: results/<target>)")
    args = parser.parse_args(argv)
    if args.command == "new-target":
        from . import scaffold
        return scaffold.new_target(args.name)
    if args.command == "reanchor":
        # The trial's own re-anchor path: it runs as a supervised trial of that target.
        cmd = [sys.executable, "-m", f"targets.{args.target}.run_experiment", "--reanchor", args.why]
        return subprocess.call(cmd + (["--results-dir", args.results_dir] if args.results_dir else []))
    if args.command == "report":
        return report.report(args.target, args.results_dir)
    if args.command == "calibrate":
        if args.trials < 1 or not 0 < args.win < 1:
            parser.error("--trials must be >= 1 and --win between 0 and 1")
        from . import calibrate
        return calibrate.calibrate(args.target, args.trials, args.load, args.win)
    from . import compare            # imports the target's modules; only when asked
    return compare.compare(args.target, args.kernel, args.rounds, args.seed)


if __name__ == "__main__":
    sys.exit(main())
