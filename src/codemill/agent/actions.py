"""The text action format, for models without native tool calls, and its forgiving parser.

A reply may hold any number of actions, in order, among free prose:

    ```bash
    pytest -x -q
    ```

    <tool name="edit">
    {"path": "calc.py", "old_str": "a - b", "new_str": "a + b"}
    </tool>

    <tool name="edit">
    <path>calc.py</path>
    <old_str>a - b</old_str>
    <new_str>a + b</new_str>
    </tool>

    <tool name="submit"></tool>

Also accepted: ``sh``/``shell`` fences, a ``<tool_call>{"name": ..., "arguments": {...}}
</tool_call>`` block (the Hermes/Qwen style), ``<tool name="submit"/>``, a missing closing
fence or tag (the block runs to the next action or the end), JSON with trailing commas, raw
newlines in strings, single quotes, or prose around it. A block whose arguments cannot be
read becomes a call carrying ``_parse_error``, so the model is told what went wrong.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from codemill.core.records import ToolCall

PARSE_ERROR = "_parse_error"

_OPEN = re.compile(
    r"<tool\s+name\s*=\s*[\"']?(?P<name>[\w.-]+)[\"']?\s*(?P<selfclose>/)?>"
    r"|<tool_call>"
    r"|^[ \t]*```[ \t]*(?P<lang>bash|sh|shell|console)[ \t]*\n",
    re.IGNORECASE | re.MULTILINE,
)
_FENCE_END = re.compile(r"^[ \t]*```[ \t]*$", re.MULTILINE)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_TAG = re.compile(r"<(?P<key>[A-Za-z_]\w*)>\n?(?P<value>.*?)\n?</(?P=key)>", re.DOTALL)
_JSON_FENCE = re.compile(r"^```[\w-]*[ \t]*\n(.*?)(?:\n```)?\s*$", re.DOTALL)


def protocol_text() -> str:
    """The format as the system prompt explains it (kept short for small models)."""
    return (
        "Act by writing actions in your reply. Run a shell command with a bash block:\n"
        "```bash\nls\n```\n"
        "Call another tool with a tool tag holding JSON arguments, for example:\n"
        '<tool name="view">{"path": "src/app.py"}</tool>\n'
        '<tool name="edit">{"path": "src/app.py", "old_str": "return a - b", '
        '"new_str": "return a + b"}</tool>\n'
        "Arguments may also be given as tags, which is easier for code:\n"
        '<tool name="edit">\n<path>src/app.py</path>\n<old_str>return a - b</old_str>\n'
        "<new_str>return a + b</new_str>\n</tool>\n"
        '<tool name="run_tests"></tool>\n'
        'When the task is done, finish with: <tool name="submit"></tool>'
    )


def loads_lenient(text: str) -> dict[str, Any]:
    """A JSON object from a model's text, forgiving the usual slips; ValueError if none."""
    body = text.strip()
    fenced = _JSON_FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    candidates = [body]
    if "{" in body and "}" in body:
        candidates.append(body[body.index("{") : body.rindex("}") + 1])
    for cand in list(candidates):
        candidates.append(_TRAILING_COMMA.sub(r"\1", cand))
    for cand in candidates:
        try:
            value = json.loads(cand, strict=False)  # strict=False: raw newlines in strings
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    for cand in candidates[1:]:
        if len(cand) > 200_000:
            break
        try:  # single quotes, True/False/None: Python literal syntax
            value = ast.literal_eval(cand)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("arguments are not a JSON object")


def _tool_arguments(name: str, body: str) -> dict[str, Any]:
    body = body.strip()
    if not body:
        return {}
    if body.startswith(("{", "```")):
        return loads_lenient(body)
    tags = {m.group("key"): m.group("value") for m in _TAG.finditer(body)}
    if tags:
        return tags
    if name == "bash":
        return {"command": body}
    return loads_lenient(body)


def _bash_command(body: str) -> str:
    lines = body.strip("\n").splitlines()
    # A console transcript ("$ cmd"): drop the prompts.
    if lines and all(ln.startswith("$ ") for ln in lines if ln.strip()):
        lines = [ln[2:] for ln in lines]
    return "\n".join(lines).strip()


def parse_actions(text: str, id_prefix: str = "call") -> list[ToolCall]:
    """All actions in ``text``, in order; ``[]`` when there are none."""
    calls: list[ToolCall] = []
    pos = 0
    while (m := _OPEN.search(text, pos)) is not None:
        start, name, args = m.end(), m.group("name"), None
        if m.group("lang"):
            end_m = _FENCE_END.search(text, start)
            end, pos = (end_m.start(), end_m.end()) if end_m else (len(text), len(text))
            command = _bash_command(text[start:end])
            if command:
                calls.append(ToolCall(id=f"{id_prefix}_{len(calls)}", name="bash",
                                      arguments={"command": command}))
            continue
        close = "</tool_call>" if name is None else "</tool>"
        if m.group("selfclose"):
            end, pos = start, start
        else:
            end = text.find(close, start)
            if end < 0:  # no closing tag: the block runs to the next action or the end
                nxt = _OPEN.search(text, start)
                end = nxt.start() if nxt else len(text)
                pos = end
            else:
                pos = end + len(close)
        body = text[start:end]
        try:
            if name is None:
                payload = loads_lenient(body)
                name = str(payload.get("name") or "")
                args = payload.get("arguments") or payload.get("parameters") or {}
                if isinstance(args, str):
                    args = loads_lenient(args) if args.strip() else {}
                if not name:
                    raise ValueError("a tool_call needs a name")
            else:
                args = _tool_arguments(name, body)
        except ValueError as exc:
            args = {PARSE_ERROR: f"{exc}; write JSON like {{\"path\": \"a.py\"}}"}
        calls.append(ToolCall(id=f"{id_prefix}_{len(calls)}", name=name or "?", arguments=args))
    return calls
