"""Reading diffs: git and plain formats, prefixes, renames, binaries, quoted paths."""

from codemill.core.diffs import parse_diff, strip_level, touched_paths

GIT_DIFF = """\
diff --git a/src/calc.py b/src/calc.py
index 1111111..2222222 100644
--- a/src/calc.py
+++ b/src/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
diff --git a/tests/conftest.py b/tests/conftest.py
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/tests/conftest.py
@@ -0,0 +1 @@
+import pytest
diff --git a/tests/test_old.py b/tests/test_old.py
deleted file mode 100644
index 4444444..0000000
--- a/tests/test_old.py
+++ /dev/null
@@ -1 +0,0 @@
-def test_x(): pass
diff --git a/a.txt b/b.txt
similarity index 100%
rename from a.txt
rename to b.txt
diff --git a/pkg/x.pyc b/pkg/x.pyc
new file mode 100644
index 0000000..5555555
Binary files /dev/null and b/pkg/x.pyc differ
diff --git "a/sp ace/\\303\\251.py" "b/sp ace/\\303\\251.py"
--- "a/sp ace/\\303\\251.py"
+++ "b/sp ace/\\303\\251.py"
@@ -1 +1 @@
-x = 1
+x = 2
"""


def test_git_diff_files_and_kinds():
    changes = parse_diff(GIT_DIFF)
    assert strip_level(changes) == 1
    assert touched_paths(changes) == [
        "src/calc.py", "tests/conftest.py", "tests/test_old.py", "a.txt", "b.txt",
        "pkg/x.pyc", "sp ace/é.py",
    ]
    calc, conftest, old, rename, pyc, quoted = changes
    assert calc.added_lines == ["    return a + b"] and calc.removed_lines == ["    return a - b"]
    assert conftest.created and not conftest.deleted and conftest.new_mode == "100644"
    assert old.deleted and old.removed_lines == ["def test_x(): pass"]
    assert (rename.old_path, rename.new_path) == ("a/a.txt", "b/b.txt")
    assert pyc.binary and pyc.created
    assert quoted.added_lines == ["x = 2"]


def test_plain_unified_diff_without_prefixes():
    text = (
        "--- src/calc.py\t2024-01-01 00:00:00\n+++ src/calc.py\t2024-01-02 00:00:00\n"
        "@@ -1 +1 @@\n-a\n+b\n"
    )
    changes = parse_diff(text)
    assert strip_level(changes) == 0
    assert touched_paths(changes) == ["src/calc.py"]
    assert changes[0].added_lines == ["b"]


def test_garbage_is_empty_not_an_error():
    assert parse_diff("hello\nworld\n") == []
    assert parse_diff("") == []


def test_sections_split_per_file():
    from codemill.rewards.workspace import sections

    parts = sections(GIT_DIFF)
    assert len(parts) == 6
    assert "".join(parts) == GIT_DIFF
    x = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    y = "--- a/y.py\n+++ b/y.py\n@@ -1 +1 @@\n-c\n+d\n"
    assert sections(x + y) == [x, y]
