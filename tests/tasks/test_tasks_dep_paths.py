"""Mining's ``deps changed`` looks only at files an environment build can install from."""

from pathlib import Path

from codemill.repos.detect.hints import read_hints
from codemill.tasks.deps import deps_changed
from codemill.tasks.paths import is_dependency_path


def test_docs_requirements_are_not_dependencies():
    # natsort 8.4.0 deleted docs/requirements.{in,txt}; that must not block mining its past.
    before = {"docs/requirements.txt": b"sphinx\n", "docs/requirements.in": b"sphinx\n",
              "requirements-dev.txt": b"pytest\n"}
    assert deps_changed(before, {"requirements-dev.txt": b"pytest\n"}) == []
    assert deps_changed(before, {"requirements-dev.txt": b"pytest\nhypothesis\n"}) == [
        "requirements-dev.txt"]
    assert deps_changed({}, {"requirements/test.txt": b"x\n"}) == ["requirements/test.txt"]


def test_every_requirement_file_a_build_reads_counts(tmp_path: Path):
    files = ["requirements-dev.txt", "requirements/test.txt", "tests/requirements.txt",
             "ci/requirements-ci.txt", "docs/requirements.txt", "docs/requirements.in"]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("pytest\n")
    read = read_hints(tmp_path, installable=False).requirement_files
    assert read and "docs/requirements.txt" not in read
    assert all(is_dependency_path(rel) for rel in read)
    assert not any(is_dependency_path(rel) for rel in files if rel.startswith("docs/"))
