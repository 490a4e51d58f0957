"""Each tool against a real bwrap sandbox over the tiny repository."""

import pytest

from codemill.agent.config import AgentConfig
from codemill.agent.tools import (
    Bash,
    Edit,
    RunTests,
    Search,
    ToolContext,
    ToolUsageError,
    View,
    default_tools,
)

from .conftest import TEST_COMMAND


@pytest.fixture
def ctx(sandbox):
    return ToolContext(sandbox, AgentConfig(test_command=TEST_COMMAND, search_limit=3), 30.0)


def test_schemas_are_openai_functions():
    tools = default_tools()
    names = [t.schema()["function"]["name"] for t in tools]
    assert names == ["bash", "view", "edit", "search", "run_tests", "submit"]
    for tool in tools:
        params = tool.schema()["function"]["parameters"]
        assert params["type"] == "object"
        assert set(params["required"]) <= set(params["properties"])


def test_bash_reports_streams_and_exit_code(ctx):
    out = Bash()(ctx, {"command": "echo out; echo err >&2; exit 3"})
    assert out.text == "out\nerr\n[exit code 3]"
    assert out.command_seconds > 0


def test_bash_sees_the_workspace_as_cwd(ctx):
    assert "calc.py" in Bash()(ctx, {"command": "ls"}).text


def test_view_file_range_and_absolute_path(ctx):
    out = View()(ctx, {"path": "/repo/calc.py", "start_line": 2, "end_line": 2})
    assert out.text == "     2\t    return a - b"
    with pytest.raises(ToolUsageError, match="inside the workspace"):
        View()(ctx, {"path": "/etc/passwd"})


def test_view_directory_lists_two_levels(ctx):
    text = View()(ctx, {"path": "."}).text
    assert "./calc.py" in text and "./pkg/__init__.py" in text


def test_edit_insert_and_create(ctx, sandbox):
    Edit()(ctx, {"path": "calc.py", "insert_line": 0, "new_str": "import math"})
    Edit()(ctx, {"path": "calc.py", "insert_line": 7, "new_str": "# end"})
    lines = sandbox.read_file("calc.py").decode().splitlines()
    assert lines[0] == "import math" and lines[-1] == "# end"
    out = Edit()(ctx, {"path": "pkg/sub/new.py", "file_text": "X = 1\n"})
    assert out.text == "wrote pkg/sub/new.py (1 lines)"
    assert sandbox.read_file("pkg/sub/new.py") == b"X = 1\n"
    with pytest.raises(ToolUsageError, match="insert_line must be in 0..8"):
        Edit()(ctx, {"path": "calc.py", "insert_line": 99, "new_str": "x"})
    with pytest.raises(ToolUsageError, match="give old_str"):
        Edit()(ctx, {"path": "calc.py", "new_str": "x"})


def test_edit_replace_shows_the_changed_region(ctx):
    text = Edit()(ctx, {"path": "calc.py", "old": "a * b", "new": "b * a"}).text
    assert "     6\t    return b * a" in text


def test_search_fixed_string_regex_and_cap(ctx):
    assert Search()(ctx, {"pattern": "a - b"}).text == "./calc.py:2:    return a - b"
    assert "no matches" in Search()(ctx, {"pattern": "zzz_nothing"}).text
    regex = Search()(ctx, {"pattern": r"def (add|mul)", "regex": True}).text
    assert regex.count("calc.py") == 2
    capped = Search()(ctx, {"pattern": "a"}).text
    assert capped.count("\n") == 3 and "more matches not shown" in capped


def test_run_tests_with_a_selection(ctx):
    out = RunTests()(ctx, {"args": "test_calc.TestCalc.test_mul"}).text
    assert out.endswith("[exit code 0]") and "Ran 1 test" in out
