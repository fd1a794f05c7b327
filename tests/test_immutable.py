"""Immutable files against a ledger commit: edits, deletions, new files, a missing commit."""
import pytest
from conftest import _git

from harness_common import immutable
from harness_common.integrity import IntegrityError


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A committed git repo laid out like the project; returns (root, target_dir, commit)."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "proj"
    files = {"harness_common/x.py": "X = 1\n", "harness_common/y.py": "Y = 2\n",
             "targets/__init__.py": "", "targets/t/__init__.py": "",
             "targets/t/reference.py": "def ref():\n    return 0\n",
             "targets/t/target.toml": "name = 't'\n", "targets/t/kernels.py": "K = 1\n",
             "targets/t/kernels.c": "int k;\n", "pyproject.toml": "[project]\n"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "base")
    return root, root / "targets" / "t", _git(root, "rev-parse", "HEAD")


def test_check_immutable_passes_on_clean_checkout(repo):
    root, target, commit = repo
    immutable.check_immutable(root, target, commit)
    immutable.check_immutable(root, target, commit[:12] + "+dirty")     # as a ledger row has it
    assert immutable.changed_immutable(root, target, "HEAD") == []


def test_check_immutable_ignores_kernel_edits(repo):
    root, target, commit = repo
    (target / "kernels.py").write_text("K = 2\n")
    (target / "kernels.c").write_text("int k = 2;\n")
    immutable.check_immutable(root, target, commit)


def test_check_immutable_names_edited_deleted_and_new_files(repo):
    root, target, commit = repo
    (root / "harness_common" / "x.py").write_text("X = 2\n")
    (target / "reference.py").unlink()
    (root / "harness_common" / "sneaky.py").write_text("")
    with pytest.raises(IntegrityError) as info:
        immutable.check_immutable(root, target, commit)
    msg = str(info.value)
    for rel in ("harness_common/x.py", "targets/t/reference.py", "harness_common/sneaky.py"):
        assert rel in msg
    assert "harness_common/y.py" not in msg
    assert commit[:12] in msg


def test_check_immutable_sees_a_committed_change(repo):
    root, target, commit = repo
    (target / "target.toml").write_text("name = 'cheat'\n")
    _git(root, "commit", "-q", "-am", "edit config")
    with pytest.raises(IntegrityError, match="targets/t/target.toml"):
        immutable.check_immutable(root, target, commit)


def test_check_immutable_missing_baseline_commit(repo):
    root, target, _ = repo
    with pytest.raises(IntegrityError, match="anchor commit 0123456789ab.* is not in"):
        immutable.check_immutable(root, target, "0123456789abcdef" * 2 + "01234567")


def test_changed_immutable_against_head_names_uncommitted_files(repo):
    root, target, _ = repo
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert immutable.changed_immutable(root, target, "HEAD") == ["pyproject.toml"]


def test_changed_immutable_without_git_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    (tmp_path / "targets" / "t").mkdir(parents=True)
    with pytest.raises(IntegrityError, match="failed in"):
        immutable.changed_immutable(tmp_path, tmp_path / "targets" / "t", "HEAD")


def test_head_commit_reports_dirty_flag(repo):
    root, target, commit = repo
    assert immutable.head_commit(root) == (commit, False)
    (target / "kernels.c").write_text("int k = 3;\n")
    assert immutable.head_commit(root) == (commit, True)


def test_head_commit_outside_a_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    (tmp_path / "plain").mkdir()
    assert immutable.head_commit(tmp_path / "plain") == (None, False)
