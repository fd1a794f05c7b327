"""Immutable files: everything but a target's kernel equals the ledger's anchor commit.

The anchor is the commit of the ledger's last baseline or reanchor row
(ledger.Ledger.anchor). The files are the harness (HARNESS_PATHS) and the whole
target folder but its kernel, so a file added there is covered without a list.
`resolve_commit` is the one lookup of a row's commit that the trial and the
report share.
"""
import re
import subprocess
from pathlib import Path

from .integrity import IntegrityError

HARNESS_PATHS = ("harness_common", "tests", "pyproject.toml", "HARNESS.md", ".ci",
                 "targets/__init__.py")
AGENT_FILES = ("kernels.py", "kernels.c")   # the only files of a target the agent may edit


def immutable_paths(target_dir, root):
    """Git pathspecs of every immutable file: the harness, and the whole target
    folder but its kernel (so a new file there is covered without a list)."""
    rel = Path(target_dir).resolve().relative_to(Path(root).resolve())
    return list(HARNESS_PATHS) + [str(rel)] + [f":(exclude){rel / f}" for f in AGENT_FILES]


def _git(root, *args):
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise IntegrityError(f"git {' '.join(args[:2])} failed in {root}: {proc.stderr.strip()}")
    return proc.stdout


def resolve_commit(root, short):
    """The full hash of a ledger row's commit ('8c419a86b578' or '8c419a86b578+dirty').

    Only a hex abbreviation is passed to git, so a doctored ledger cannot
    smuggle an option or a ref name into the command."""
    commit = str(short or "").split("+")[0].strip()
    if not re.fullmatch(r"[0-9a-fA-F]{4,64}", commit):
        raise IntegrityError(f"the ledger's anchor commit {short!r} is not a commit hash; the "
                             f"ledger is damaged (move results.tsv aside and start a new one)")
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}").strip()
    except IntegrityError:
        raise IntegrityError(f"the ledger's anchor commit {commit} is not in {root}; immutable "
                             f"files cannot be verified (fetch that commit, or start a new "
                             f"ledger: move results.tsv aside)") from None


def head_commit(root):
    """(commit, dirty) of the workspace, or (None, False) outside git."""
    try:
        commit = _git(root, "rev-parse", "HEAD").strip()
    except (IntegrityError, OSError):
        return None, False
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no").strip())
    return commit, dirty


def changed_since(root, commit, paths):
    """Paths that differ from `commit` (edited, added, removed or untracked)."""
    changed = _git(root, "diff", "--name-only", commit, "--", *paths).split()
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "--", *paths).split()
    return sorted(set(changed) | set(untracked))


def changed_immutable(root, target_dir, commit):
    """Immutable files that differ from `commit`: "HEAD", or a ledger row's commit as
    recorded ('8c419a86b578+dirty'). The one lookup the trial and the report share."""
    full = "HEAD" if commit == "HEAD" else resolve_commit(root, commit)
    return changed_since(root, full, immutable_paths(target_dir, root))


def check_immutable(root, target_dir, anchor_commit):
    """Raise IntegrityError naming every immutable file changed since the ledger's anchor."""
    changed = changed_immutable(root, target_dir, anchor_commit)
    if changed:
        short = anchor_commit.split("+")[0][:12]
        raise IntegrityError(f"immutable file(s) changed since the baseline commit {short}: "
                             f"{', '.join(changed)}; revert them (`git checkout {short} -- <file>`)")
