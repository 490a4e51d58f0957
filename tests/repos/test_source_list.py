"""A fleet's sources file: comments and blanks ignored, duplicates dropped, the first bad
line named with its file and number."""

from __future__ import annotations

import pytest

from codemill.core.errors import SourceError
from codemill.repos.source_list import parse_source_list, read_source_list


def test_sources_in_order_without_comments_blanks_or_duplicates(tmp_path):
    (tmp_path / "proj").mkdir()
    text = ("# fleet\n\npypi:toolz==0.12.0\n  pypi:six  \nhttps://github.com/o/r.git@v1\n"
            f"git@github.com:o/r.git\n{tmp_path / 'proj'}\npypi:six\n")
    assert parse_source_list(text) == [
        "pypi:toolz==0.12.0", "pypi:six", "https://github.com/o/r.git@v1",
        "git@github.com:o/r.git", str(tmp_path / "proj")]


@pytest.mark.parametrize("line", ["pypi:", "pypi:toolz==", "pypi:a b", "/no/such/dir",
                                  "two words", "toolz"])
def test_a_bad_line_is_one_error_naming_it(tmp_path, line):
    path = tmp_path / "fleet.txt"
    path.write_text(f"pypi:six\n# ok\n{line}\n")
    with pytest.raises(SourceError) as err:
        read_source_list(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert "\n" not in str(err.value)


def test_an_unreadable_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="cannot read the sources file"):
        read_source_list(tmp_path / "missing.txt")
