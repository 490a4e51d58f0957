"""The text action format: what small models write, parsed forgivingly."""

from codemill.agent.actions import PARSE_ERROR, loads_lenient, parse_actions
from codemill.agent.tools import trim


def names(calls):
    return [c.name for c in calls]


def test_bash_fence_among_prose():
    calls = parse_actions("I will list files.\n```bash\nls -la\n```\nThen look.")
    assert names(calls) == ["bash"]
    assert calls[0].arguments == {"command": "ls -la"}


def test_missing_closing_fence_runs_to_the_end():
    calls = parse_actions("Run it:\n```bash\npython -m pytest -x\n")
    assert calls[0].arguments == {"command": "python -m pytest -x"}


def test_python_fence_is_not_an_action():
    assert parse_actions("Here is the fix:\n```python\nx = 1\n```\n") == []


def test_console_prompts_are_dropped():
    calls = parse_actions("```console\n$ cd src\n$ ls\n```")
    assert calls[0].arguments["command"] == "cd src\nls"


def test_tool_tag_with_json_trailing_commas_and_raw_newlines():
    text = ('<tool name="edit">\n{"path": "a.py", "old_str": "def f():\n    return 1",'
            ' "new_str": "def f():\n    return 2",}\n</tool>')
    (call,) = parse_actions(text)
    assert call.name == "edit"
    assert call.arguments["old_str"] == "def f():\n    return 1"
    assert call.arguments["new_str"].endswith("return 2")


def test_tool_tag_with_xml_arguments_keeps_code_verbatim():
    # Indentation is kept; one newline next to each tag is layout, not content.
    text = ('<tool name="edit">\n<path>calc.py</path>\n<old_str>\n    if a:\n'
            "        return a - b\n</old_str>\n<new_str>    return a + b</new_str>\n</tool>")
    (call,) = parse_actions(text)
    assert call.arguments == {"path": "calc.py", "old_str": "    if a:\n        return a - b",
                              "new_str": "    return a + b"}


def test_multiple_calls_keep_their_order():
    text = ("First:\n```bash\nls\n```\n"
            '<tool name="view">{"path": "x.py"}</tool>\n'
            "<tool name='run_tests'></tool>\n<tool name=submit/>")
    calls = parse_actions(text)
    assert names(calls) == ["bash", "view", "run_tests", "submit"]
    assert len({c.id for c in calls}) == 4


def test_missing_closing_tag_ends_at_the_next_action():
    text = '<tool name="view">{"path": "x.py"}\n```bash\nls\n```'
    calls = parse_actions(text)
    assert names(calls) == ["view", "bash"]
    assert calls[0].arguments == {"path": "x.py"}


def test_hermes_style_tool_call():
    text = '<tool_call>\n{"name": "view", "arguments": {"path": "README.md"}}\n</tool_call>'
    (call,) = parse_actions(text)
    assert (call.name, call.arguments) == ("view", {"path": "README.md"})


def test_python_literal_arguments_and_fenced_json():
    (call,) = parse_actions("<tool name=\"view\">{'path': 'a.py', 'start_line': 3}</tool>")
    assert call.arguments == {"path": "a.py", "start_line": 3}
    (call,) = parse_actions('<tool name="view">\n```json\n{"path": "b.py"}\n```\n</tool>')
    assert call.arguments == {"path": "b.py"}


def test_unreadable_arguments_become_a_parse_error_call():
    (call,) = parse_actions('<tool name="edit">{"path": "a.py", "old_str": </tool>')
    assert call.name == "edit" and PARSE_ERROR in call.arguments


def test_bash_tool_tag_with_plain_body():
    (call,) = parse_actions('<tool name="bash">grep -rn foo .</tool>')
    assert call.arguments == {"command": "grep -rn foo ."}


def test_no_action_in_plain_prose():
    assert parse_actions("I think the bug is in calc.py, line 3.") == []


def test_loads_lenient_finds_the_object_in_prose():
    assert loads_lenient('Sure! {"a": [1, 2,],} hope this helps') == {"a": [1, 2]}


def test_trim_keeps_head_and_tail_and_notes_the_cut():
    text = "".join(f"line {i}\n" for i in range(2000))
    out = trim(text, 500)
    assert len(out) <= 500
    assert out.startswith("line 0\n") and out.rstrip().endswith("line 1999")
    cut = int(out.split("[... ")[1].split(" characters cut")[0])
    kept = len(out) - len(out[out.index("\n[... "): out.index("cut ...]\n") + 9])
    assert cut == len(text) - kept
    assert trim("short", 500) == "short"
