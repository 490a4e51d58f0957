"""Patches made from file states apply with `apply_patch` (git apply on a scratch copy) and
with `git apply` in a real repository."""

import subprocess

import pytest

from codemill.core.errors import TaskError
from codemill.tasks.patches import (
    BinaryChangeError,
    apply_patch,
    changed_lines,
    diff_stats,
    make_diff,
    patch_paths,
)

BEFORE = {
    "pkg/a.py": b"def f():\n    return 1\n\n\nx = 2\n",
    "pkg/gone.py": b"old = True\n",
    "pkg/noeol.py": b"a = 1\nb = 2",
}
AFTER = {
    "pkg/a.py": b"def f():\n    return 2\n\n\nx = 2\n",
    "pkg/gone.py": None,
    "pkg/noeol.py": b"a = 1\nb = 3",
    "pkg/new.py": b"# new\nvalue = 'caf\xc3\xa9'\n",
    "pkg/empty.py": b"",
}


def test_roundtrip_with_our_applier():
    patch = make_diff(BEFORE, AFTER)
    out = apply_patch(patch, BEFORE.get)
    assert out == AFTER
    assert set(patch_paths(patch)) == set(AFTER)
    assert changed_lines(patch)["pkg/a.py"] == {2}
    files, added, removed = diff_stats(patch)
    assert files == 5 and added >= 4 and removed >= 3


def test_git_apply_accepts_our_patches(tmp_path):
    for path, data in BEFORE.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    (tmp_path / "p.diff").write_text(make_diff(BEFORE, AFTER))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    proc = subprocess.run(["git", "apply", "p.diff"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    for path, data in AFTER.items():
        if data is None:
            assert not (tmp_path / path).exists()
        else:
            assert (tmp_path / path).read_bytes() == data


def test_hunks_apply_at_an_offset_and_mismatches_raise():
    lines = b"".join(b"line %d\n" % i for i in range(10))
    patch = make_diff({"m.py": lines}, {"m.py": lines.replace(b"line 5", b"LINE 5")})
    shifted = apply_patch(patch, lambda p: b"z\nz\n" + lines)
    assert shifted["m.py"] == b"z\nz\n" + lines.replace(b"line 5", b"LINE 5")
    # A hunk at the top of a file is anchored there, as git anchors it: no offset.
    top = make_diff({"m.py": b"a\nb\nc\n"}, {"m.py": b"a\nB\nc\n"})
    with pytest.raises(TaskError, match="does not apply"):
        apply_patch(top, lambda p: b"z\nz\na\nb\nc\n")
    with pytest.raises(TaskError, match="does not apply"):
        apply_patch(patch, lambda p: b"x\ny\nz\n")
    with pytest.raises(TaskError, match="does not exist"):
        apply_patch(patch, lambda p: None)


def test_paths_that_leave_the_repository_are_refused():
    created = make_diff({}, {"x.py": b"x = 1\n"}).replace("b/x.py", "b/../x.py")
    with pytest.raises(TaskError, match="invalid path"):  # git's own check
        apply_patch(created, lambda p: None)
    edited = make_diff({"x.py": b"x = 1\n"}, {"x.py": b"x = 2\n"}).replace("/x.py", "/../x.py")
    with pytest.raises(TaskError, match="inside the repository"):  # before writing a file
        apply_patch(edited, lambda p: b"x = 1\n")


def test_binary_changes_are_refused_with_a_reason():
    with pytest.raises(BinaryChangeError, match="binary"):
        make_diff({"img.png": b"\x89PNG\x00\x01"}, {"img.png": b"\x89PNG\x00\x02"})
    with pytest.raises(BinaryChangeError, match="UTF-8"):
        make_diff({"l1.py": "é = 1\n".encode("latin-1")}, {"l1.py": b"x = 1\n"})
