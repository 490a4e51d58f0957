"""The system prompt and the fixed messages the loop sends.

The template is a ``string.Template``: ``$tools`` (one line per tool), ``$protocol`` (how to
act: the text format, or a line saying to call the tools) and ``$workdir``.
"""

from __future__ import annotations

from collections.abc import Sequence
from string import Template

from codemill.agent.actions import protocol_text
from codemill.agent.tools import Tool

SYSTEM_TEMPLATE = """\
You are a software engineer working in a repository at $workdir.
Solve the task by inspecting the code, editing files and running the tests.

Tools:
$tools

$protocol

Work in small steps and look at each result before the next step.
Run the tests before you submit."""

NATIVE_PROTOCOL = "Call the tools to act. Call submit when the task is done."

FORMAT_REMINDER = (
    "Your reply contained no action I could run. Reply with exactly one action, e.g.\n"
    "```bash\nls\n```\nor\n" '<tool name="submit"></tool>'
)


def describe_tools(tools: Sequence[Tool]) -> str:
    lines = []
    for tool in tools:
        props = tool.parameters.get("properties", {})
        required = set(tool.parameters.get("required", ()))
        params = ", ".join(p if p in required else f"{p}?" for p in props)
        lines.append(f"- {tool.name}({params}): {tool.description}")
    return "\n".join(lines)


def system_prompt(template: str | None, tools: Sequence[Tool], *, native: bool,
                  workdir: str) -> str:
    """Render the system prompt; unknown ``$names`` in a custom template stay as written."""
    return Template(template or SYSTEM_TEMPLATE).safe_substitute(
        tools=describe_tools(tools),
        protocol=NATIVE_PROTOCOL if native else protocol_text(),
        workdir=workdir,
    )
