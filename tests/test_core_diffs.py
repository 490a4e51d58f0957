"""One writer of unified diffs: task patches and workspace diffs read the same, lines are
split as git splits them, binary content is decided in one place."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codemill.core.diffs import BinaryChangeError, file_diff
from codemill.sandbox.workspace_diff import file_diff as workspace_file_diff
from codemill.tasks.patches import apply_patch
from codemill.tasks.patches import file_diff as task_file_diff

OLD = b"a = 1\n# page\x0cbreak\r\nb = 2\n"
NEW = b"a = 1\n# page\x0cbreak\r\nb = 3"


def test_task_and_workspace_writers_agree():
    assert task_file_diff("m.py", OLD, NEW) == workspace_file_diff(
        "m.py", ("100644", OLD), ("100644", NEW)) == file_diff("m.py", OLD, NEW)


def test_form_feeds_and_carriage_returns_round_trip_through_git_and_apply_patch(tmp_path: Path):
    patch = file_diff("m.py", OLD, NEW)
    assert apply_patch(patch, {"m.py": OLD}.get) == {"m.py": NEW}
    (tmp_path / "m.py").write_bytes(OLD)
    subprocess.run(["git", "apply", "-"], input=patch.encode(), cwd=tmp_path, check=True,
                   env={"GIT_DIR": "/nonexistent", "HOME": str(tmp_path), "PATH": "/usr/bin"})
    assert (tmp_path / "m.py").read_bytes() == NEW


def test_binary_content_is_marked_for_workspaces_and_refused_for_task_patches():
    blob = b"\x00\x01binary"
    assert "Binary files a/x.bin and b/x.bin differ" in workspace_file_diff(
        "x.bin", ("100644", b"old\n"), ("100644", blob))
    with pytest.raises(BinaryChangeError):
        task_file_diff("x.bin", b"old\n", blob)


def test_empty_files_created_and_deleted_apply():
    created = file_diff("e.py", None, b"")
    assert created == "diff --git a/e.py b/e.py\nnew file mode 100644\n"
    assert apply_patch(created, {}.get) == {"e.py": b""}
    assert apply_patch(file_diff("e.py", b"", None), {"e.py": b""}.get) == {"e.py": None}


def test_the_one_parser_reads_hunks_as_git_splits_lines():
    from codemill.core.diffs import parse_diff

    (change,) = parse_diff(file_diff("m.py", OLD, NEW))
    (hunk,) = change.hunks
    assert (hunk.old_start, hunk.old_len, hunk.new_start, hunk.new_len) == (1, 3, 1, 3)
    # A form feed does not split a line; the last line has no newline ("\ No newline").
    assert hunk.old_text() == OLD.decode() and hunk.new_text() == NEW.decode()
    assert change.removed_lines == ["b = 2"] and change.added_lines == ["b = 3"]
