"""One answer to "is this a test" (mining, synthesis, grading, validation agree)."""

from __future__ import annotations

from codemill.core.testpaths import is_test_path, is_test_support
from codemill.repos.history import is_test_path as history_is_test_path
from codemill.rewards.paths import is_test_file, task_test_paths
from codemill.tasks.paths import is_test_path as tasks_is_test_path
from codemill.tasks.validate import in_source_module

PATHS = ["tests/test_a.py", "pkg/tests/helpers.py", "testing/util.py", "pkg/test_x.py",
         "pkg/x_test.py", "conftest.py", "tests.py", "pkg/mod.py", "docs/usage.rst",
         "test/data.json", "src/pkg/testing.py"]


def test_every_layer_gives_the_same_answer():
    for p in PATHS:
        assert is_test_path(p) == history_is_test_path(p) == tasks_is_test_path(p) \
            == is_test_file(p), p


def test_support_files_are_data_and_testing_helpers_not_code_under_test():
    assert is_test_support("data/expected.txt") and is_test_support("golden/out.json")
    assert is_test_support("src/pkg/testing.py") and is_test_support("pkg/testdata/x.py")
    assert is_test_support("pkg/test_utils.py") and is_test_support("fixtures/conf.py")
    assert not is_test_support("src/pkg/ops.py") and not is_test_support("pkg/__pycache__/x")


def test_doctests_of_source_modules_grade_nothing():
    assert in_source_module("semver.py::semver.VersionInfo.__getitem__")
    assert not in_source_module("tests/test_a.py::test_x")
    assert not in_source_module("docs/usage.rst::usage.rst")
    paths = task_test_paths([], [], ["semver.py::semver.compare", "test_semver.py::test_x"])
    assert paths == frozenset({"test_semver.py"})


def test_a_hidden_source_module_is_never_a_task_test_path():
    paths = task_test_paths([], ["semver.py", "docs/usage.rst", "test_semver.py"],
                            ["docs/usage.rst::usage.rst"])
    assert paths == frozenset({"docs/usage.rst", "test_semver.py"})
