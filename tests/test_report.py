"""harness_common.report and its command line: the morning table lists every
trial and marks the kept ones, the progress picture is a real PNG, a missing
or corrupt ledger is a clear non-zero exit, and --help shows examples."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from targetfacts import TARGETS

from harness_common import ledger, report

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

TRIALS = [
    ("baseline", "1000.0", "", "", "", "scalar port"),
    ("discard", "1010.0", "1.01", "1.00", "1.02", "unroll by 2"),
    ("keep", "800.0", "0.80", "0.79", "0.81", "avx2 table lookups"),
    ("fail", "", "", "", "", "bf16 tables"),
    ("crash", "", "", "", "", "out of bounds"),
    ("discard", "805.0", "1.006", "0.99", "1.02", "prefetch codes"),
    ("keep", "500.0", "0.625", "0.62", "0.63", "gather 16 codes at once"),
]


@pytest.fixture
def results(tmp_path):
    """A pq_l2 ledger folder holding TRIALS, written through Ledger.append."""
    folder = tmp_path / "pq_l2"
    led = ledger.Ledger(folder, "pq_l2")
    with led.locked():
        for i, (status, geo, ratio, lo, hi, desc) in enumerate(TRIALS):
            led.append({"timestamp": f"2025-01-01T00:0{i}:00", "commit": "abc", "status": status,
                        "geomean_ns": geo, "ratio_vs_best": ratio, "ratio_ci_low": lo,
                        "ratio_ci_high": hi, "isa": "avx2", "kernel_sha256": f"{i:064d}",
                        "description": desc})
    return folder


def _run_report(*args):
    return subprocess.run([sys.executable, "-m", "harness_common", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, MPLBACKEND="Agg"))


def _trial_lines(out_lines):
    return [l for l in out_lines if l.strip()[:1].isdigit()]


# ------------------------------------------------------------ in process

def test_table_lists_every_trial_and_marks_kept(results):
    rows = ledger.Ledger(results, "pq_l2").rows()
    lines = _trial_lines(report.table(rows))
    assert len(lines) == len(TRIALS)
    for line, (status, geo, ratio, lo, hi, desc) in zip(lines, TRIALS):
        assert desc in line and status in line
        kept = status in ("baseline", "keep")
        assert ("*" in line.split()[0]) == kept, line
        if lo:      # figures are read as numbers and shown with the trial's precision
            assert f"[{float(lo):.4f}, {float(hi):.4f}]" in line


def test_report_prints_summary_and_table(results):
    out = []
    assert report.report("pq_l2", results, out=out.append) == 0
    text = "\n".join(out)
    assert "pq_l2: 7 trials, 3 kept" in text
    assert "500.0 ns per query chained from the baseline's 1000.0 through the kept ratios: 2.00x" in text
    assert len(_trial_lines(out)) == len(TRIALS)


def test_chained_uses_in_run_ratios_not_drifting_absolute_times():
    """A kept trial measured on a slower machine phase still plots below what it beat."""
    rows = [{"status": "baseline", "geomean_ns": "1000", "ratio_vs_best": ""},
            {"status": "keep", "geomean_ns": "1200", "ratio_vs_best": "0.5"},   # host ran slow
            {"status": "crash", "geomean_ns": "", "ratio_vs_best": ""},
            {"status": "discard", "geomean_ns": "400", "ratio_vs_best": "1.1"},
            {"status": "keep", "geomean_ns": "300", "ratio_vs_best": "0.8"}]
    pts = report.chained(rows)
    assert [(i, round(v, 6)) for i, v, _ in pts] == [(1, 1000.0), (2, 500.0), (4, 550.0), (5, 400.0)]


def test_progress_png_is_written(results):
    pytest.importorskip("matplotlib", reason="matplotlib is the optional plot extra")
    out = []
    assert report.report("pq_l2", results, out=out.append) == 0
    png = results / "progress.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert any(str(png) in line for line in out)


def test_picture_without_timings_is_skipped_with_reason(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is the optional plot extra")
    rows = [ledger.Row(dict.fromkeys(ledger.COLUMNS, "")) for _ in range(2)]
    why = report.picture(rows, "query", tmp_path / "p.png", "t")
    assert why and "nothing to draw" in why
    assert not (tmp_path / "p.png").exists()


def test_report_missing_ledger_returns_1(tmp_path):
    out = []
    assert report.report("pq_l2", tmp_path / "empty", out=out.append) == 1
    assert "no ledger" in "\n".join(out)


def test_report_corrupt_ledger_returns_5_and_keeps_file(results):
    path = results / "results.tsv"
    path.write_text(path.read_text() + "broken row\n")
    before = path.read_bytes()
    out = []
    assert report.report("pq_l2", results, out=out.append) == 5
    assert "line 10" in "\n".join(out)
    assert path.read_bytes() == before


def test_report_results_dir_needs_a_target(results):
    out = []
    assert report.report(None, results, out=out.append) == 1
    assert "needs a target" in out[0]


# ------------------------------------------------------------ command line

def test_cli_report_prints_table_and_writes_png(results):
    proc = _run_report("report", "pq_l2", "--results-dir", str(results))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(_trial_lines(lines)) == len(TRIALS)
    for *_, desc in TRIALS:
        assert desc in proc.stdout
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pytest.skip("matplotlib is not installed; the table is all there is")
    assert (results / "progress.png").read_bytes()[:8] == PNG_SIGNATURE


def test_cli_report_missing_ledger_exits_1(tmp_path):
    proc = _run_report("report", "pq_l2", "--results-dir", str(tmp_path / "nothing"))
    assert proc.returncode == 1
    assert "no ledger" in proc.stdout + proc.stderr


def test_cli_help_shows_examples():
    proc = _run_report("--help")
    assert proc.returncode == 0
    assert "python -m harness_common report pq_l2" in proc.stdout


@pytest.mark.parametrize("target", TARGETS)
def test_run_experiment_help_shows_examples(target):
    proc = subprocess.run([sys.executable, "-m", f"targets.{target}.run_experiment", "--help"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "examples:" in proc.stdout
    assert f'python -m targets.{target}.run_experiment --description "' in proc.stdout
