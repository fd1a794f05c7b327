"""harness_common.ledger format v2: the cpu, sandbox and anchor columns
round-trip, a v1 ledger still reads and is upgraded atomically when a row is
appended, reanchor rows are checked on the way in, and Ledger.anchor finds
the commit immutable files are checked against (immutable.resolve_commit
turns it into a full hash)."""
import os
import subprocess

import pytest

from harness_common import immutable, integrity, isa, ledger
from harness_common.ledger import COLUMNS, COLUMNS_V1, Ledger, LedgerError

SHA_A, SHA_B = "a" * 64, "b" * 64


def _row(status="discard", **extra):
    row = {"timestamp": "2025-01-01T00:00:00", "commit": "abc123", "status": status,
           "geomean_ns": "1234.5", "ratio_vs_best": "0.98", "isa": "avx2",
           "kernel_sha256": SHA_A, "cpu": "AMD EPYC 7B13", "sandbox": "on",
           "description": "try something"}
    row.update(extra)
    return row


@pytest.fixture
def led(tmp_path):
    return Ledger(tmp_path / "results" / "pq_l2", "pq_l2")


def _append(led, values):
    with led.locked():
        led.append(values)


def _write_v1(led, rows):
    """A ledger exactly as the v1 harness wrote it."""
    led.dir.mkdir(parents=True, exist_ok=True)
    lines = ["# kernel-harness ledger v1 target=pq_l2", "\t".join(COLUMNS_V1)]
    lines += ["\t".join(str(r.get(c, "")) for c in COLUMNS_V1) for r in rows]
    led.path.write_text("\n".join(lines) + "\n")


V1_ROWS = [dict(_row("baseline", geomean_ns="1000.0", ratio_vs_best="", description="plain C")),
           dict(_row("keep", geomean_ns="800.0", ratio_vs_best="0.8000", kernel_sha256=SHA_B,
                     description="avx2"))]


# ------------------------------------------------------------ v2 round trip

def test_new_columns_sit_before_the_description():
    assert COLUMNS[-4:] == ("cpu", "sandbox", "anchor", "description")
    assert set(COLUMNS) - set(COLUMNS_V1) == {"cpu", "sandbox", "anchor"}


def test_v2_round_trip_keeps_cpu_sandbox_and_anchor(led):
    written = [_row("baseline", sandbox="on"),
               _row("discard", cpu="Intel Xeon Platinum 8481C", sandbox="off"),
               _row("reanchor", commit="def456", anchor="timing.py: median of 7 rounds")]
    for r in written:
        _append(led, r)
    assert led.path.read_text().startswith("# kernel-harness ledger v2 target=pq_l2\n")
    rows = led.rows()
    for got, want in zip(rows, written):
        for col in COLUMNS:
            assert got[col] == str(want.get(col, "")), col
    assert rows[2]["anchor"] == "timing.py: median of 7 rounds"


# ------------------------------------------------------------ v1 compatibility

def test_v1_ledger_reads_with_new_columns_empty(led):
    _write_v1(led, V1_ROWS)
    before = led.path.read_bytes()
    rows = led.rows()
    assert [r["description"] for r in rows] == ["plain C", "avx2"]
    assert all(r["cpu"] == r["sandbox"] == r["anchor"] == "" for r in rows)
    assert led.best(rows)["kernel_sha256"] == SHA_B
    assert led.path.read_bytes() == before, "reading must never rewrite"


def test_append_to_v1_upgrades_it_and_keeps_every_row(led):
    _write_v1(led, V1_ROWS)
    os.chmod(led.path, 0o640)
    old = led.rows()
    _append(led, _row("discard", cpu="AMD EPYC 7B13", sandbox="on", description="new row"))
    lines = led.path.read_text().split("\n")
    assert lines[0] == "# kernel-harness ledger v2 target=pq_l2"
    assert tuple(lines[1].split("\t")) == COLUMNS
    rows = led.rows()
    assert rows[:2] == old
    assert rows[2]["cpu"] == "AMD EPYC 7B13" and rows[2]["description"] == "new row"
    assert oct(led.path.stat().st_mode & 0o777) == oct(0o640)
    assert not list(led.dir.glob(".results.tsv.v2-*"))


def test_v1_upgrade_that_fails_leaves_the_original(led, monkeypatch):
    _write_v1(led, V1_ROWS)
    before = led.path.read_bytes()

    def crash(*_):
        raise OSError("disk gone")
    monkeypatch.setattr(ledger.os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        _append(led, _row("discard"))
    assert led.path.read_bytes() == before
    assert not list(led.dir.glob(".results.tsv.v2-*"))


def test_stale_upgrade_copy_is_discarded(led):
    _write_v1(led, V1_ROWS)
    (led.dir / ".results.tsv.v2-abc").write_text("half")
    led.discard_stale_tmp()
    assert not list(led.dir.glob(".results.tsv.v2-*"))


def test_unknown_newer_version_is_refused(led):
    _append(led, _row("baseline"))
    led.path.write_text(led.path.read_text().replace(" v2 ", " v3 ", 1))
    with pytest.raises(LedgerError, match="v3 ledger.*update the checkout"):
        led.rows()


def test_v1_magic_with_v2_header_is_refused(led):
    _append(led, _row("baseline"))
    led.path.write_text(led.path.read_text().replace(" v2 ", " v1 ", 1))
    with pytest.raises(LedgerError, match="line 2: header columns differ .* v1 ledger"):
        led.rows()


def test_bad_sandbox_value_in_file_is_refused(led):
    _append(led, _row("baseline"))
    led.path.write_text(led.path.read_text().replace("\ton\t", "\tmaybe\t"))
    with pytest.raises(LedgerError, match="line 3: sandbox 'maybe'"):
        led.rows()


# ------------------------------------------------------------ rows refused on the way in

@pytest.mark.parametrize("values, message", [
    (_row("winner"), "status 'winner'"),
    (_row(sandbox="yes"), "sandbox 'yes'"),
    (_row("reanchor"), "reanchor row needs its reason"),
    (_row("reanchor", anchor="new timing", kernel_sha256=SHA_B), "re-measures the best kept kernel"),
])
def test_bad_rows_are_refused_and_nothing_is_written(led, values, message):
    _append(led, _row("baseline"))
    before = led.path.read_bytes()
    with pytest.raises(ValueError, match=message):
        _append(led, values)
    assert led.path.read_bytes() == before


def test_failed_reanchor_attempt_keeps_its_reason_but_is_no_anchor(led):
    _append(led, _row("baseline", commit="c0"))
    _append(led, _row("build_fail", commit="c1", anchor="new timing"))
    rows = led.rows()
    assert rows[1]["anchor"] == "new timing"
    assert led.anchor(rows)["commit"] == "c0"


def test_reanchor_needs_a_baseline(led):
    with pytest.raises(ValueError, match="no baseline row to reanchor"):
        _append(led, _row("reanchor", anchor="new timing"))
    assert not led.path.exists()


def test_append_without_the_lock_is_refused(led):
    _append(led, _row("baseline"))
    before = led.path.read_bytes()
    with pytest.raises(RuntimeError, match="without its lock"):
        led.append(_row("discard"))
    assert led.path.read_bytes() == before


# ------------------------------------------------------------ anchor

def test_anchor_is_the_last_baseline_or_reanchor(led):
    assert Ledger.anchor([]) is None
    _append(led, _row("baseline", commit="c0"))
    _append(led, _row("keep", commit="c1"))
    assert Ledger.anchor(led.rows())["commit"] == "c0"
    _append(led, _row("reanchor", commit="c2", anchor="harness rewrite", kernel_sha256=SHA_A))
    _append(led, _row("discard", commit="c3"))
    rows = led.rows()
    assert led.anchor(rows)["commit"] == "c2"
    assert led.best(rows)["commit"] == "c1", "a reanchor does not move best/"
    _append(led, _row("reanchor", commit="c4", anchor="new machine", kernel_sha256=SHA_A))
    assert led.anchor(led.rows())["anchor"] == "new machine"


def test_anchor_of_a_v1_ledger_is_its_baseline(led):
    _write_v1(led, V1_ROWS)
    assert Ledger.anchor(led.rows())["description"] == "plain C"


def test_reanchor_is_not_kept():
    assert "reanchor" in ledger.STATUSES and "reanchor" in ledger.ANCHORS
    assert "reanchor" not in ledger.KEPT


# ------------------------------------------------------------ resolve_commit

@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@localhost",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@localhost")
    (root / "f").write_text("x\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "one"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)
    full = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    return root, full


def test_resolve_commit_expands_a_ledger_commit(repo):
    root, full = repo
    assert immutable.resolve_commit(root, full[:12]) == full
    assert immutable.resolve_commit(root, full[:12] + "+dirty") == full


@pytest.mark.parametrize("bad", ["", "--output=/tmp/x", "HEAD", "main", "xyz1"])
def test_resolve_commit_refuses_what_is_not_a_hash(repo, bad):
    with pytest.raises(integrity.IntegrityError, match="not a commit hash"):
        immutable.resolve_commit(repo[0], bad)


def test_resolve_commit_names_a_missing_commit(repo):
    with pytest.raises(integrity.IntegrityError, match="0123456789ab is not in .*move results.tsv aside"):
        immutable.resolve_commit(repo[0], "0123456789ab")


# ------------------------------------------------------------ cpu_model

def test_cpu_model_reads_model_name(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                    "model name\t: AMD EPYC   7B13 64-Core Processor\nflags\t\t: fpu avx2\n")
    assert isa.cpu_model(info) == "AMD EPYC 7B13 64-Core Processor"


def test_cpu_model_unknown_is_empty(tmp_path):
    assert isa.cpu_model(tmp_path / "missing") == ""
    (tmp_path / "arm").write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")
    assert isa.cpu_model(tmp_path / "arm") == ""


# ------------------------------------------------------------ figures

def test_figures_are_written_from_numbers_in_the_result_blocks_digits(led):
    with led.locked():
        led.append({**_row("keep"), "geomean_ns": 1234.5678, "ratio_vs_best": 0.98765432,
                    "ratio_ci_low": None, "peak_rss_mb": 41.25, "total_seconds": 9.96})
    row = led.rows()[-1]
    assert (row["geomean_ns"], row["ratio_vs_best"], row["ratio_ci_low"]) == ("1234.6", "0.9877", "")
    assert (row["peak_rss_mb"], row["total_seconds"]) == ("41.2", "10.0")
    assert ledger.number(row["geomean_ns"]) == 1234.6 and ledger.number(row["ratio_ci_low"]) is None
