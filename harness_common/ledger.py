"""The ledger (results.tsv) and the snapshot of the best kept kernel.

results/<target>/
    results.tsv        one row per trial, every status; append-only (bar the v1 upgrade)
    kept/NNNN-<sha>/   kernels.py + kernels.c of every kept trial
    best -> kept/...   symlink to the current best, swapped atomically

Every write happens under an exclusive lock on results.tsv.lock. A kept
trial writes its snapshot first, then its ledger row, then swaps `best`;
a crash between steps leaves the ledger authoritative, and the next trial
repairs `best` from it. A ledger that does not parse is refused, never
rewritten.

Format v2 adds `cpu` (the CPU model a row was measured on), `sandbox`
(on|off) and `anchor` (a reanchor row's reason; a failed reanchor attempt's
row may carry it too, but only the status makes an anchor). A v1 ledger reads with
those columns empty; the first row appended to it upgrades the file to v2
in one atomic rename under the lock (see `_upgrade`), so every later row
keeps its new columns and no reader ever sees half a file.

Emulated trials (a level the CPU lacks, e.g. HARNESS_ISA=amx on AVX2) are
correctness only: a passing one is recorded with status `emulated`, and every
row of such a trial has an `isa` like `amx (emulated)`. They carry no
timing, are never kept and never anchor. Older ledgers read unchanged.

Anchors: the immutable files are checked against the commit of the last
`baseline` or `reanchor` row (`Ledger.anchor`). A `reanchor` row records
that the harness or a target's immutable files legitimately changed at its
commit (the reason is in `anchor`), with the best kept kernel re-measured
under the new harness as the new reference; best/ does not move.
"""
import fcntl
import hashlib
import math
import os
import re
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .result import fmt

VERSION = 2
COLUMNS_V1 = ("timestamp", "commit", "status", "geomean_ns", "ratio_vs_best", "ratio_ci_low",
              "ratio_ci_high", "worst_combo", "worst_ns", "peak_rss_mb", "total_seconds", "isa",
              "kernel_sha256", "mode", "seed", "description")
# New columns go before `description` so the free text stays last on the line.
COLUMNS = COLUMNS_V1[:-1] + ("cpu", "sandbox", "anchor", "description")
HEADERS = {1: COLUMNS_V1, 2: COLUMNS}
STATUSES = ("baseline", "keep", "discard", "fail", "build_fail", "crash", "tamper", "reanchor",
            "emulated")
KEPT = ("baseline", "keep")              # statuses whose kernel is snapshotted and may be best/
ANCHORS = ("baseline", "reanchor")       # statuses whose commit the immutable files must equal
SANDBOX = ("", "on", "off")              # "" = not recorded (v1 rows)
SOURCES = ("kernels.py", "kernels.c")
# Columns that hold a figure, and its kind (result.fmt): written from numbers,
# read back with `number`.
FIGURES = {"geomean_ns": "ns", "ratio_vs_best": "ratio", "ratio_ci_low": "ratio",
           "ratio_ci_high": "ratio", "worst_ns": "ns", "peak_rss_mb": "mb", "total_seconds": "s"}
_MAGIC = re.compile(r"# kernel-harness ledger v(\d+) target=(\S+)")


class LedgerError(RuntimeError):
    """The ledger or best/ snapshot cannot be trusted; nothing was written."""


class LedgerBusy(RuntimeError):
    """Another trial holds the ledger."""


def kernel_sha256(sources):
    """Hash of the kernel's source files ({name: bytes})."""
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode() + b"\0" + sources[name] + b"\0")
    return h.hexdigest()


class Row(dict):
    """One ledger row, {column: text}; `get` reads a missing column as ""."""

    def get(self, key, default=""):
        return super().get(key, default)


def number(text):
    """A figure column's value as a finite float, or None (empty, `n/a`, not a number)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _clean(value, column=None):
    if isinstance(value, float) and column in FIGURES:
        value = fmt(value, FIGURES[column])
    text = "" if value is None else str(value)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _line(values):
    """One v2 ledger line (with its newline) from {column: value}; figures may be floats."""
    return "\t".join(_clean(values.get(c, ""), c) for c in COLUMNS) + "\n"


class Ledger:
    def __init__(self, results_dir, target):
        self.dir = Path(results_dir)
        self.target = target
        self.path = self.dir / "results.tsv"
        self.magic = f"# kernel-harness ledger v{VERSION} target={target}"

    # ------------------------------------------------------------ reading

    def rows(self):
        """All rows, validated; raises LedgerError naming the first problem.
        Every row has every v2 column (empty where a v1 ledger has none)."""
        if not self.path.exists():
            return []
        return self._parse(self.path.read_text(errors="replace"), self.path)[1]

    def _parse(self, text, where):
        """(format version, rows) of a ledger's text; `where` names it in errors."""
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines or not lines[0].startswith("# kernel-harness ledger"):
            raise LedgerError(f"{where} is not a kernel-harness ledger (first line "
                              f"{lines[0][:60] if lines else ''!r}); move it aside, nothing was written")
        magic = _MAGIC.fullmatch(lines[0])
        if not magic or magic.group(2) != self.target:
            raise LedgerError(f"{where} is a ledger for something else ({lines[0]!r}, expected "
                              f"{self.magic!r}); use --results-dir or move it aside")
        version = int(magic.group(1))
        if version not in HEADERS:
            raise LedgerError(f"{where} is a v{version} ledger; this harness reads "
                              f"v{', v'.join(map(str, HEADERS))}: update the checkout, nothing was written")
        columns = HEADERS[version]
        if len(lines) < 2 or tuple(lines[1].split("\t")) != columns:
            raise LedgerError(f"{where} line 2: header columns differ from the {len(columns)} "
                              f"columns of a v{version} ledger; move it aside, nothing was written")
        rows = []
        for lineno, line in enumerate(lines[2:], 3):
            fields = line.split("\t")
            if len(fields) != len(columns):
                raise LedgerError(f"{where} line {lineno}: {len(fields)} fields, expected "
                                  f"{len(columns)}; the file is corrupt, nothing was written")
            row = Row({**dict.fromkeys(COLUMNS, ""), **dict(zip(columns, fields))})
            if row["status"] not in STATUSES:
                raise LedgerError(f"{where} line {lineno}: unknown status {row['status']!r}")
            if row["sandbox"] not in SANDBOX:
                raise LedgerError(f"{where} line {lineno}: sandbox {row['sandbox']!r} is not "
                                  f"'on' or 'off'; the file is corrupt, nothing was written")
            rows.append(row)
        return version, rows

    @staticmethod
    def anchor(rows):
        """The last baseline or reanchor row, or None: immutable files must equal its commit."""
        anchors = [r for r in rows if r["status"] in ANCHORS]
        return anchors[-1] if anchors else None

    @staticmethod
    def best(rows):
        """The last kept row: the kernel best/ holds, or None."""
        kept = [r for r in rows if r["status"] in KEPT]
        return kept[-1] if kept else None

    # ------------------------------------------------------------ writing

    @contextmanager
    def locked(self, wait=True):
        """Hold the ledger's exclusive lock. A trial holds it from start to end, so
        two trials never share a ledger (or a timing CPU); wait=False raises
        LedgerBusy instead of waiting for the other one."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "results.tsv.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise LedgerBusy(f"another trial is running on {self.dir} (it holds "
                                 f"results.tsv.lock); wait for it to finish") from None
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _require_lock(self):
        """Raise unless some holder (normally this trial) has the lock: a fresh
        descriptor's non-blocking flock succeeds only when nobody holds it."""
        if self.dir.is_dir():
            with open(self.dir / "results.tsv.lock", "a") as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
                fcntl.flock(probe, fcntl.LOCK_UN)
        raise RuntimeError(f"Ledger.append on {self.path} without its lock; "
                           f"call it inside `with ledger.locked():`")

    def fingerprint(self):
        """The ledger file's bytes hash (None if absent): compared before a row is added."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest() if self.path.exists() else None

    def append(self, values):
        """Append one row durably; call under `locked()`. A v1 ledger is upgraded
        to v2 first, so the row keeps its cpu, sandbox and anchor."""
        self._require_lock()                  # the v1 upgrade rewrites the file
        version, rows = (self._parse(self.path.read_text(errors="replace"), self.path)
                         if self.path.exists() else (VERSION, []))   # refuse a corrupt file
        self._check(values, rows)
        if version != VERSION:
            self._upgrade(rows)
        new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if new:
                os.write(fd, (self.magic + "\n" + "\t".join(COLUMNS) + "\n").encode())
            os.write(fd, _line(values).encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def _check(self, values, rows):
        """Refuse a row the ledger could not read back or that breaks the anchor rules."""
        status, sandbox = values.get("status", ""), _clean(values.get("sandbox", ""))
        anchor = _clean(values.get("anchor", "")).strip()
        if status not in STATUSES:
            raise ValueError(f"ledger row for {self.path} has status {status!r}; "
                             f"use one of {', '.join(STATUSES)}")
        if sandbox not in SANDBOX:
            raise ValueError(f"ledger row for {self.path} has sandbox {sandbox!r}; use 'on' or 'off'")
        if status == "reanchor":
            # Only the status makes an anchor; a failed reanchor attempt may keep its reason.
            if not anchor:
                raise ValueError(f"ledger row for {self.path}: a reanchor row needs its reason "
                                 f"in `anchor` (what changed and why)")
            best = self.best(rows)
            if best is None:
                raise ValueError(f"{self.path} has no baseline row to reanchor; run a baseline "
                                 f"trial instead")
            sha = values.get("kernel_sha256")
            if sha and sha != best["kernel_sha256"]:
                raise ValueError(f"a reanchor row re-measures the best kept kernel "
                                 f"({best['kernel_sha256'][:12]}), not {str(sha)[:12]}; "
                                 f"restore best/ into the target and reanchor again")

    def _upgrade(self, rows):
        """Rewrite an older ledger as v2 (same rows, new columns empty) in one atomic rename.

        Under the lock nothing else appends, the copy is re-read and compared
        before it replaces the original, and a crash leaves either the old file
        or the whole new one (plus a stray .results.tsv.v2-* to delete)."""
        real = self.path.resolve()              # a symlinked ledger keeps its link
        text = self.magic + "\n" + "\t".join(COLUMNS) + "\n" + "".join(map(_line, rows))
        fd, tmp = tempfile.mkstemp(prefix=".results.tsv.v2-", dir=real.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode())
                f.flush()
                os.fchmod(f.fileno(), stat.S_IMODE(real.stat().st_mode))
                os.fsync(f.fileno())
            if self._parse(Path(tmp).read_text(errors="replace"), tmp)[1] != rows:
                raise LedgerError(f"upgrading {self.path} to v{VERSION} would change its rows; "
                                  f"nothing was written (report this harness bug)")
            os.replace(tmp, real)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(real.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)                    # make the rename itself durable
        finally:
            os.close(dir_fd)

    # ------------------------------------------------------------ best/

    @property
    def best_dir(self):
        return self.dir / "best"

    def best_sources(self):
        """{name: bytes} of the best kept kernel, or None without one."""
        if not self.best_dir.exists():
            return None
        try:
            return {n: (self.best_dir / n).read_bytes() for n in SOURCES}
        except OSError as exc:
            raise LedgerError(f"{self.best_dir} is incomplete ({exc.strerror}: {exc.filename})")

    def save_kept(self, sources, sha):
        """Write a kept kernel's snapshot under kept/ (atomic rename); returns its dir."""
        kept = self.dir / "kept"
        kept.mkdir(parents=True, exist_ok=True)
        seq = len([p for p in kept.iterdir() if not p.name.startswith(".")]) + 1
        final = kept / f"{seq:04d}-{sha[:12]}"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=kept))
        for name in SOURCES:
            (tmp / name).write_bytes(sources[name])
        os.replace(tmp, final)
        return final

    def point_best(self, kept_dir):
        """Make best/ point at kept_dir in one atomic rename."""
        if self.best_dir.exists() and not self.best_dir.is_symlink():
            raise LedgerError(f"{self.best_dir} is a directory, not the harness's symlink; "
                              f"move it aside")
        tmp = self.dir / f".best-{os.getpid()}-{time.monotonic_ns()}"
        os.symlink(os.path.relpath(kept_dir, self.dir), tmp)
        os.replace(tmp, self.best_dir)

    def repair_best(self, rows):
        """Bring best/ in line with the last kept row after a crash; returns a note or None."""
        row = self.best(rows)
        if row is None:
            return None
        current = self.best_sources()
        if current is not None and kernel_sha256(current) == row["kernel_sha256"]:
            return None
        for d in sorted((self.dir / "kept").glob(f"*-{row['kernel_sha256'][:12]}")):
            if kernel_sha256({n: (d / n).read_bytes() for n in SOURCES}) == row["kernel_sha256"]:
                self.point_best(d)
                return f"best/ repaired to {d.name} to match the ledger's last kept row"
        raise LedgerError(f"the ledger's last kept kernel ({row['kernel_sha256'][:12]}) has no "
                          f"snapshot under {self.dir / 'kept'}; restore it or start a new ledger")

    def discard_stale_tmp(self):
        """Remove what a crashed trial left half-made (snapshots, v1 upgrade copies)."""
        for p in (self.dir / "kept").glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
        for p in self.dir.glob(".results.tsv.v2-*"):
            p.unlink(missing_ok=True)
