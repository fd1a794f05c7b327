"""The ledger (results.tsv) and the snapshot of the best kept kernel.

results/<target>/
    results.tsv        one row per trial, every status; append-only
    kept/NNNN-<sha>/   kernels.py + kernels.c of every kept trial
    best -> kept/...   symlink to the current best, swapped atomically

Every write happens under an exclusive lock on results.tsv.lock. A kept
trial writes its snapshot first, then its ledger row, then swaps `best`;
a crash between steps leaves the ledger authoritative, and the next trial
repairs `best` from it. A ledger that does not parse is refused, never
rewritten.
"""
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

VERSION = 1
COLUMNS = ("timestamp", "commit", "status", "geomean_ns", "ratio_vs_best", "ratio_ci_low",
           "ratio_ci_high", "worst_combo", "worst_ns", "peak_rss_mb", "total_seconds", "isa",
           "kernel_sha256", "mode", "seed", "description")
STATUSES = ("baseline", "keep", "discard", "fail", "build_fail", "crash", "tamper")
KEPT = ("baseline", "keep")
SOURCES = ("kernels.py", "kernels.c")


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


@dataclass(frozen=True)
class Row:
    values: dict

    def __getitem__(self, key):
        return self.values[key]


def _clean(value):
    text = "" if value is None else str(value)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


class Ledger:
    def __init__(self, results_dir, target):
        self.dir = Path(results_dir)
        self.target = target
        self.path = self.dir / "results.tsv"
        self.magic = f"# kernel-harness ledger v{VERSION} target={target}"

    # ------------------------------------------------------------ reading

    def rows(self):
        """All rows, validated; raises LedgerError naming the first problem."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(errors="replace").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        where = str(self.path)
        if not lines or not lines[0].startswith("# kernel-harness ledger"):
            raise LedgerError(f"{where} is not a kernel-harness ledger (first line "
                              f"{lines[0][:60]!r} if any); move it aside, nothing was written")
        if lines[0] != self.magic:
            raise LedgerError(f"{where} is a ledger for something else ({lines[0]!r}, expected "
                              f"{self.magic!r}); use --results-dir or move it aside")
        if len(lines) < 2 or tuple(lines[1].split("\t")) != COLUMNS:
            raise LedgerError(f"{where} line 2: header columns differ from this harness's "
                              f"{len(COLUMNS)} columns; move it aside, nothing was written")
        rows = []
        for lineno, line in enumerate(lines[2:], 3):
            fields = line.split("\t")
            if len(fields) != len(COLUMNS):
                raise LedgerError(f"{where} line {lineno}: {len(fields)} fields, expected "
                                  f"{len(COLUMNS)}; the file is corrupt, nothing was written")
            row = Row(dict(zip(COLUMNS, fields)))
            if row["status"] not in STATUSES:
                raise LedgerError(f"{where} line {lineno}: unknown status {row['status']!r}")
            rows.append(row)
        return rows

    def baseline(self, rows):
        for row in rows:
            if row["status"] == "baseline":
                return row
        return None

    def best(self, rows):
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

    def fingerprint(self):
        """The ledger file's bytes hash (None if absent): compared before a row is added."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest() if self.path.exists() else None

    def append(self, values):
        """Append one row durably; call under `locked()`."""
        self.rows()                                   # refuse to extend a corrupt file
        new = not self.path.exists()
        line = "\t".join(_clean(values.get(c, "")) for c in COLUMNS) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if new:
                os.write(fd, (self.magic + "\n" + "\t".join(COLUMNS) + "\n").encode())
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

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
        for p in (self.dir / "kept").glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
