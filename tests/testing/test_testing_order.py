"""``collection_order``: a selection runs in the order a whole-suite run reaches it."""

from __future__ import annotations

from codemill.testing.order import collection_order, run_order

# The shape of a real suite (humanize 4.9.0, tests/test_i18n.py): a module-level test reads
# a module attribute that tests of a later class overwrite. Run sorted, the class's tests
# ("TestActivate" < "test_...") come first and the module-level test fails.
I18N = '''import importlib


def test_default_locale_path_defined__file__():
    i18n = importlib.import_module("humanize.i18n")
    assert i18n._get_default_locale_path() is not None


class TestActivate:
    def test_default_locale_path_null__file__(self):
        i18n = importlib.import_module("humanize.i18n")
        i18n.__file__ = None

    @staticmethod
    def test_a_static():
        pass
'''
OTHER = "def test_b():\n    pass\n\n\ndef test_a():\n    pass\n"


def test_tests_run_in_file_order_and_files_in_directory_order():
    files = {"tests/test_i18n.py": I18N, "tests/test_other.py": OTHER,
             "tests/sub/test_deep.py": OTHER}
    sorted_ids = sorted([
        "tests/test_i18n.py::TestActivate::test_default_locale_path_null__file__",
        "tests/test_i18n.py::TestActivate::test_a_static",
        "tests/test_i18n.py::test_default_locale_path_defined__file__",
        "tests/test_other.py::test_a", "tests/test_other.py::test_b",
        "tests/sub/test_deep.py::test_a",
    ])
    read: list[str] = []
    assert collection_order(sorted_ids, lambda p: read.append(p) or files.get(p)) == [
        "tests/sub/test_deep.py::test_a",  # a directory's entries by name: "sub" < "test_..."
        "tests/test_i18n.py::test_default_locale_path_defined__file__",
        "tests/test_i18n.py::TestActivate::test_default_locale_path_null__file__",
        "tests/test_i18n.py::TestActivate::test_a_static",
        "tests/test_other.py::test_b", "tests/test_other.py::test_a",
    ]
    assert sorted(read) == sorted(files)  # each file read once


def test_variants_and_what_cannot_be_placed_keep_their_relative_order():
    ids = ["t.py::test_b[2]", "t.py::test_gone", "t.py::test_b[1]", "t.py::test_a[x::y]",
           "doc.rst::line 3", "broken.py::test_z"]
    files = {"t.py": OTHER, "broken.py": "def test_z(:\n"}
    assert collection_order(ids, files.get) == [
        "broken.py::test_z", "doc.rst::line 3",
        "t.py::test_b[2]", "t.py::test_b[1]", "t.py::test_a[x::y]", "t.py::test_gone"]


def test_the_listed_order_wins_and_unlisted_ids_follow_their_file():
    listed = ["b/test_x.py::test_2", "b/test_x.py::test_1", "a/test_y.py::test_9"]
    picked = ["a/test_y.py::test_9", "b/test_x.py::test_1", "b/test_x.py::test_new[p]",
              "c/test_z.py::test_0", "b/test_x.py::test_2"]
    assert run_order(picked, listed) == [
        "b/test_x.py::test_2", "b/test_x.py::test_1", "b/test_x.py::test_new[p]",
        "a/test_y.py::test_9", "c/test_z.py::test_0"]
