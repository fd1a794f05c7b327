"""Commands for the human side of the loop.

Usage:
    python -m harness_common report [TARGET]     # ledger table + results/<target>/progress.png
    python -m harness_common compare TARGET      # ours vs FAISS vs scalar vs roofline, one run
"""
import argparse
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
  python -m harness_common report pq_l2 --results-dir /tmp/scratch""")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="print the ledger table and draw the progress picture")
    rep.add_argument("target", nargs="?", help="target name (default: every target with a ledger)")
    rep.add_argument("--results-dir", help="the target's ledger folder, as given to run_experiment "
                                           "(default: results/<target>)")
    args = parser.parse_args(argv)
    if args.command == "report":
        return report.report(args.target, args.results_dir)
    return 1


if __name__ == "__main__":
    sys.exit(main())
