"""Host-side overlay semantics (no sandbox needed): lookups, whiteouts, opaque dirs, symlink
resolution, writes into the top layer, and the git-style diff."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from codemill.core.errors import SandboxError
from codemill.sandbox.layers import OPAQUE_XATTR, MergedView, is_opaque, write_into_top
from codemill.sandbox.workspace_diff import file_diff, tree_diff, workspace_diff


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


@pytest.fixture
def stack(tmp_path: Path) -> tuple[Path, Path, Path]:
    upper, mid, low = tmp_path / "upper", tmp_path / "mid", tmp_path / "low"
    for d in (upper, mid, low):
        d.mkdir()
    (low / "keep.txt").write_text("low\n")
    (low / "gone.txt").write_text("gone\n")
    (low / "d").mkdir()
    (low / "d" / "low-only").write_text("1\n")
    (low / "o").mkdir()
    (low / "o" / "hidden").write_text("h\n")
    (low / "f2d").write_text("file\n")
    (mid / "d").mkdir()
    (mid / "d" / "mid-only").write_text("2\n")
    (mid / "keep.txt").write_text("mid\n")
    whiteout(mid / "gone.txt")
    (mid / "o").mkdir()
    os.setxattr(mid / "o", OPAQUE_XATTR, b"y")
    (mid / "o" / "visible").write_text("v\n")
    (upper / "f2d").mkdir()
    (upper / "f2d" / "inner").write_text("i\n")
    return upper, mid, low


def test_merged_lookup_follows_overlay_rules(stack):
    view = MergedView(stack)
    assert view.read("keep.txt") == b"mid\n"
    with pytest.raises(FileNotFoundError):
        view.read("gone.txt")
    assert {e.rel[-1] for e in view.walk(("d",))} == {"low-only", "mid-only"}
    assert [e.rel[-1] for e in view.walk(("o",))] == ["visible"]  # opaque hides "hidden"
    assert view.read("f2d/inner") == b"i\n"  # a dir over a file hides the file
    with pytest.raises(IsADirectoryError):
        view.read("d")


def test_symlinks_resolve_inside_only(stack):
    upper = stack[0]
    os.symlink("keep.txt", upper / "rel")
    os.symlink("/repo/d", upper / "abs")
    os.symlink("../outside", upper / "up")
    os.symlink("/etc/passwd", upper / "host")
    os.symlink("loop", upper / "loop")
    view = MergedView(stack)
    assert view.read("rel") == b"mid\n" and view.read("abs/mid-only") == b"2\n"
    for bad in ("up", "host", "loop", "../x", "/etc/passwd", "/repoX/keep.txt", "d/../../x"):
        with pytest.raises(SandboxError):
            view.read(bad)
    assert view.resolve("/repo/./d/../keep.txt") == ("keep.txt",)


def test_write_into_top_replaces_a_whiteout_with_an_opaque_dir(stack, tmp_path):
    upper, mid, low = stack
    whiteout(upper / "d")  # "rm -r d" happened inside
    view = MergedView(stack)
    write_into_top(view, "d/new.txt", b"n", owner=None)
    assert is_opaque(upper / "d")
    assert [e.rel[-1] for e in MergedView(stack).walk(("d",))] == ["new.txt"]
    write_into_top(view, "keep.txt", b"top\n", owner=None)
    assert MergedView(stack).read("keep.txt") == b"top\n"
    assert (mid / "keep.txt").read_text() == "mid\n"
    with pytest.raises(NotADirectoryError):
        write_into_top(MergedView(stack), "keep.txt/x", b"", owner=None)


def test_workspace_diff_sees_hidden_and_changed_files(stack):
    upper, mid, low = stack
    base = MergedView([mid, low])
    full = MergedView(stack)
    patch = workspace_diff(full, base, [upper])
    assert "deleted file mode 100644\n--- a/f2d" in patch
    assert "new file mode 100644\n--- /dev/null\n+++ b/f2d/inner" in patch


def test_file_diff_formats():
    assert file_diff("x", ("100644", b"a\n"), ("100644", b"a\n")) == ""
    no_nl = file_diff("x", ("100644", b"a\nb"), ("100644", b"a\nc"))
    assert no_nl.endswith("-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n")
    assert file_diff("x", ("100644", b"a"), ("100755", b"a")) == (
        "diff --git a/x b/x\nold mode 100644\nnew mode 100755\n")
    assert file_diff("e", None, ("100644", b"")) == "diff --git a/e b/e\nnew file mode 100644\n"
    assert "Binary files a/b and b/b differ" in file_diff("b", ("100644", b"\0"), ("100644", b"1"))


def test_tree_diff_round_trips_through_git(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for d in (old, new):
        (d / "s").mkdir(parents=True)
    lines = [f"line {i}\n" for i in range(40)]
    (old / "s" / "long.txt").write_text("".join(lines))
    lines[5], lines[30] = "changed 5\n", "changed 30\n"
    (new / "s" / "long.txt").write_text("".join(lines[:-1]))
    (old / "gone.txt").write_text("bye\n")
    (new / "made.txt").write_text("hi\n")
    patch = tree_diff(MergedView([new]), MergedView([old]))
    assert patch.count("@@ ") == 5  # one per added/deleted file, three in long.txt
    subprocess.run(["git", "init", "-q", str(old)], check=True)
    subprocess.run(["git", "apply", "-"], cwd=old, input=patch.encode(), check=True)
    assert (old / "s" / "long.txt").read_text() == (new / "s" / "long.txt").read_text()
    assert (old / "made.txt").exists() and not (old / "gone.txt").exists()
