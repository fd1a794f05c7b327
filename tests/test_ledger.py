"""harness_common.ledger: results.tsv is created with its magic line and
header, round-trips rows, neutralises separators, refuses (without writing)
any file it cannot trust, and best/ follows the ledger even after a crash."""
import os

import pytest

from harness_common import ledger
from harness_common.ledger import COLUMNS, Ledger, LedgerError


def _sources(tag):
    return {"kernels.py": f"# kernel {tag}\n".encode(), "kernels.c": f"/* {tag} */\n".encode()}


def _row(status="discard", **extra):
    row = {"timestamp": "2025-01-01T00:00:00", "commit": "abc123", "status": status,
           "geomean_ns": "1234.5", "ratio_vs_best": "0.98", "ratio_ci_low": "0.97",
           "ratio_ci_high": "0.99", "isa": "avx2", "kernel_sha256": "0" * 64,
           "description": "try something"}
    row.update(extra)
    return row


@pytest.fixture
def led(tmp_path):
    return Ledger(tmp_path / "results" / "pq_l2", "pq_l2")


def _append(led, values):
    with led.locked():
        led.append(values)


# ------------------------------------------------------------ file format

def test_append_creates_file_with_magic_and_header(led):
    _append(led, _row("baseline"))
    lines = led.path.read_text().split("\n")
    assert lines[0] == "# kernel-harness ledger v2 target=pq_l2"
    assert tuple(lines[1].split("\t")) == COLUMNS
    assert len(lines[2].split("\t")) == len(COLUMNS)
    assert lines[3:] == [""]


def test_rows_roundtrip(led):
    written = [_row("baseline", description="first"), _row("discard", geomean_ns="999"),
               _row("keep", description="unroll by 4", seed="77")]
    for r in written:
        _append(led, r)
    rows = led.rows()
    assert len(rows) == 3
    for got, want in zip(rows, written):
        for col in COLUMNS:
            assert got[col] == str(want.get(col, "")), col
    assert led.best(rows)["description"] == "unroll by 4"


def test_rows_of_missing_file_is_empty(led):
    assert led.rows() == []
    assert led.best([]) is None and led.anchor([]) is None


def test_description_separators_are_neutralised(led):
    _append(led, _row(description="tab\there\nnewline\r\nend"))
    _append(led, _row(description="second"))
    rows = led.rows()
    assert len(rows) == 2
    assert rows[0]["description"] == "tab here newline  end"
    assert rows[1]["description"] == "second"


def test_none_values_are_written_empty(led):
    _append(led, _row(ratio_vs_best=None))
    assert led.rows()[0]["ratio_vs_best"] == ""


# ------------------------------------------------------------ refusing a bad file

def _corrupt_cases(led):
    good = Ledger(led.dir, "pq_l2")
    _append(good, _row("baseline"))
    text = good.path.read_text()
    lines = text.split("\n")
    return {
        "foreign_target": text.replace("target=pq_l2", "target=campq_encode", 1),
        "not_a_ledger": "some\tother\tfile\n1\t2\t3\n",
        "wrong_header": lines[0] + "\n" + "\t".join(COLUMNS[:-1]) + "\n" + "\n".join(lines[2:]),
        "short_row": text + "\t".join(["x"] * (len(COLUMNS) - 1)) + "\n",
        "long_row": text + "\t".join(["x"] * (len(COLUMNS) + 1)) + "\n",
        "unknown_status": text + lines[2].replace("\tbaseline\t", "\twinner\t") + "\n",
    }


@pytest.mark.parametrize("case", ["foreign_target", "not_a_ledger", "wrong_header", "short_row",
                                  "long_row", "unknown_status"])
def test_untrusted_file_is_refused_and_left_untouched(led, case):
    content = _corrupt_cases(led)[case]
    led.path.write_text(content)
    before = led.path.read_bytes()
    with pytest.raises(LedgerError) as info:
        led.rows()
    assert str(led.path) in str(info.value)
    with pytest.raises(LedgerError):
        _append(led, _row("keep"))
    assert led.path.read_bytes() == before


def test_foreign_target_message_names_both(led):
    other = Ledger(led.dir, "campq_encode")
    _append(other, _row("baseline"))
    with pytest.raises(LedgerError, match="target=campq_encode.*target=pq_l2"):
        led.rows()


def test_corrupt_row_message_names_the_line(led):
    _append(led, _row("baseline"))
    _append(led, _row("discard"))
    with open(led.path, "a") as f:
        f.write("only\tthree\tfields\n")
    with pytest.raises(LedgerError, match=rf"line 5: 3 fields, expected {len(COLUMNS)}"):
        led.rows()


# ------------------------------------------------------------ snapshots and best/

def test_save_kept_and_point_best(led):
    src = _sources("a")
    sha = ledger.kernel_sha256(src)
    kept = led.save_kept(src, sha)
    assert kept.parent == led.dir / "kept"
    assert kept.name == f"0001-{sha[:12]}"
    led.point_best(kept)
    assert led.best_dir.is_symlink()
    assert os.readlink(led.best_dir) == os.path.join("kept", kept.name)
    assert led.best_sources() == src


def test_second_keep_gets_next_number_and_moves_best(led):
    first, second = _sources("a"), _sources("b")
    led.point_best(led.save_kept(first, ledger.kernel_sha256(first)))
    k2 = led.save_kept(second, ledger.kernel_sha256(second))
    assert k2.name.startswith("0002-")
    led.point_best(k2)
    assert led.best_sources() == second
    assert not list(led.dir.glob(".best-*")), "the temporary symlink must be renamed away"


def test_best_sources_without_best_is_none(led):
    assert led.best_sources() is None


def test_point_best_refuses_a_real_directory(led):
    led.best_dir.mkdir(parents=True)
    src = _sources("a")
    with pytest.raises(LedgerError, match="not the harness's symlink"):
        led.point_best(led.save_kept(src, ledger.kernel_sha256(src)))


def test_best_sources_incomplete_snapshot_raises(led):
    src = _sources("a")
    kept = led.save_kept(src, ledger.kernel_sha256(src))
    led.point_best(kept)
    (kept / "kernels.c").unlink()
    with pytest.raises(LedgerError, match="incomplete"):
        led.best_sources()


def test_repair_best_after_crash_between_append_and_swap(led):
    a, b = _sources("a"), _sources("b")
    sha_a, sha_b = ledger.kernel_sha256(a), ledger.kernel_sha256(b)
    led.point_best(led.save_kept(a, sha_a))
    _append(led, _row("baseline", kernel_sha256=sha_a))
    # A keep that wrote its snapshot and ledger row, then died before point_best.
    kept_b = led.save_kept(b, sha_b)
    _append(led, _row("keep", kernel_sha256=sha_b))
    assert led.best_sources() == a
    note = led.repair_best(led.rows())
    assert note and kept_b.name in note
    assert led.best_sources() == b
    assert led.repair_best(led.rows()) is None


def test_repair_best_when_best_was_never_pointed(led):
    a = _sources("a")
    sha = ledger.kernel_sha256(a)
    led.save_kept(a, sha)
    _append(led, _row("baseline", kernel_sha256=sha))
    assert led.repair_best(led.rows()) is not None
    assert led.best_sources() == a


def test_repair_best_ignores_discarded_rows(led):
    a = _sources("a")
    sha = ledger.kernel_sha256(a)
    led.point_best(led.save_kept(a, sha))
    _append(led, _row("baseline", kernel_sha256=sha))
    _append(led, _row("discard", kernel_sha256="f" * 64))
    assert led.repair_best(led.rows()) is None
    assert led.best_sources() == a


def test_repair_best_without_snapshot_raises(led):
    a = _sources("a")
    led.point_best(led.save_kept(a, ledger.kernel_sha256(a)))
    _append(led, _row("baseline", kernel_sha256=ledger.kernel_sha256(a)))
    _append(led, _row("keep", kernel_sha256=ledger.kernel_sha256(_sources("lost"))))
    with pytest.raises(LedgerError, match="no snapshot"):
        led.repair_best(led.rows())
    assert led.best_sources() == a


def test_repair_best_with_empty_ledger_is_a_no_op(led):
    assert led.repair_best([]) is None


# ------------------------------------------------------------ kernel_sha256

def test_kernel_sha256_depends_on_both_files():
    base = _sources("a")
    h = ledger.kernel_sha256(base)
    assert h == ledger.kernel_sha256(dict(base))
    assert len(h) == 64
    assert ledger.kernel_sha256(dict(base, **{"kernels.py": b"# other\n"})) != h
    assert ledger.kernel_sha256(dict(base, **{"kernels.c": b"/* other */\n"})) != h


def test_kernel_sha256_does_not_confuse_file_boundaries():
    a = {"kernels.py": b"ab", "kernels.c": b"c"}
    b = {"kernels.py": b"a", "kernels.c": b"bc"}
    assert ledger.kernel_sha256(a) != ledger.kernel_sha256(b)
