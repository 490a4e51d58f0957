"""Where an answer edited, against the gold fix (codemill.evals.locate), on diffs made by
the project's own diff writer from real file texts."""

from __future__ import annotations

from codemill.core.diffs import file_diff
from codemill.evals.locate import edited_lines, tally, where_edited

BROKEN = "".join(f"line {i}\n" for i in range(1, 21)).replace("line 10\n", "x = a and b\n")


def edit(line: int, text: str) -> str:
    lines = BROKEN.splitlines(keepends=True)
    lines[line - 1] = text
    return file_diff("pkg/mod.py", BROKEN.encode(), "".join(lines).encode())


def test_lines_are_named_by_path_and_broken_line_number():
    assert edited_lines(edit(10, "x = a or b\n")) == {("pkg/mod.py", 10)}
    inserted = file_diff("pkg/mod.py", BROKEN.encode(),
                         BROKEN.replace("line 4\n", "line 4\nnew\n").encode())
    assert edited_lines(inserted) == {("pkg/mod.py", 4)}
    assert edited_lines("") == set()


def test_each_answer_is_placed_against_the_fix():
    gold = edit(10, "x = a or b\n")
    assert where_edited(edit(10, "x = b and a\n"), gold) == "fix line"
    assert where_edited(edit(12, "oops\n"), gold) == "near"
    assert where_edited(edit(3, "oops\n"), gold) == "elsewhere"
    other_file = file_diff("pkg/other.py", BROKEN.encode(),
                           BROKEN.replace("x = a and b", "x = a or b").encode())
    assert where_edited(other_file, gold) == "elsewhere"
    assert where_edited("", gold) == "no edit"
    assert where_edited(None, gold) == "no edit"
    assert tally([(gold, gold), (None, gold), (edit(3, "z\n"), gold)]) == {
        "fix line": 1, "near": 0, "elsewhere": 1, "no edit": 1}
