"""The agent's tools: ``bash``, ``view``, ``edit``, ``search``, ``run_tests``, ``submit``.

Each tool is a small class with a ``name``, an OpenAI-style JSON ``schema`` and
``__call__(ctx, args) -> ToolOutput``. Everything a tool does goes through the ``Sandbox``
protocol (``run``, ``read_file``, ``write_file``), so the same tools work on any sandbox.

Misuse by the model (a missing argument, an edit that does not match, a file that does not
exist) is an observation the model can act on, never an exception. A path the sandbox refuses is
an observation too. Other failures of the sandbox (a command that cannot be started, any
unexpected exception) propagate: the loop records them as a ``sandbox_error`` stop.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from codemill.agent.config import AgentConfig
from codemill.core.errors import SandboxError
from codemill.core.protocols import Sandbox
from codemill.core.records import ExecResult

# A missing file, a directory read as a file, or a path the sandbox refuses (one escaping
# the workspace) is the model's doing: an observation, with the sandbox still usable. Were
# refusals a stop, a policy could turn a failing rollout into a masked one at will.
_FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
                SandboxError)


class ToolUsageError(ValueError):
    """A tool called wrongly; its message is shown to the model as the observation."""


@dataclass(frozen=True)
class ToolOutput:
    """What a tool answered: text for the model, and the own time of its commands."""

    text: str
    command_seconds: float = 0.0
    """Seconds the sandboxed commands themselves ran (``ExecResult.duration_s``)."""
    submitted: bool = False


@dataclass(frozen=True)
class ToolContext:
    sandbox: Sandbox
    config: AgentConfig
    timeout_s: float
    """Timeout of a command now: the configured one, capped by the run's remaining time."""


def trim(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters, noting the cut."""
    if len(text) <= limit:
        return text
    note_room = 80
    keep = max(limit - note_room, 2)
    head, tail = keep // 2, keep - keep // 2
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters cut ...]\n{text[-tail:]}"


def format_exec(res: ExecResult) -> str:
    """stdout, then stderr, then a status line the model can rely on."""
    parts = [p.rstrip("\n") for p in (res.stdout, res.stderr) if p]
    if res.timed_out:
        parts.append(f"[timed out after {res.duration_s:.0f}s; the command was killed]")
    elif res.exit_code is None:
        parts.append("[the command could not be started]")
    else:
        parts.append(f"[exit code {res.exit_code}]")
    return "\n".join(parts)


def _arg(args: Mapping[str, Any], *names: str, required: bool = True) -> Any:
    for name in names:
        if args.get(name) is not None:
            return args[name]
    if required:
        raise ToolUsageError(f"missing argument {names[0]!r}")
    return None


def _relpath(path: Any, workdir: str) -> str:
    """Workspace-relative form of ``path``; absolute paths must lie under ``workdir``."""
    if not isinstance(path, str) or not path.strip():
        raise ToolUsageError("'path' must be a non-empty string")
    path = path.strip()
    root = workdir.rstrip("/")
    if path == root:
        return "."
    if path.startswith(root + "/"):
        return path[len(root) + 1 :] or "."
    if path.startswith("/"):
        raise ToolUsageError(f"{path}: use a path inside the workspace {workdir}")
    return path


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ToolUsageError(f"{name!r} must be an integer, got {value!r}") from None


def _numbered(lines: list[str], first: int) -> str:
    return "\n".join(f"{n:6d}\t{line}" for n, line in enumerate(lines, start=first))


class Tool:
    """Base: subclasses set the class attributes and implement ``__call__``."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, Any]]

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The OpenAI ``tools`` entry for this tool."""
        return {
            "type": "function",
            "function": {
                "name": cls.name,
                "description": cls.description,
                "parameters": cls.parameters,
            },
        }

    def __call__(self, ctx: ToolContext, args: Mapping[str, Any]) -> ToolOutput:
        raise NotImplementedError


def _props(required: list[str], **props: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": t, "description": d} for k, (t, d) in props.items()},
        "required": required,
    }


def _run_shell(ctx: ToolContext, command: str) -> ToolOutput:
    # ``bash -c``, not ``-lc``: a login shell sources /etc/profile, which resets PATH on
    # Debian and would hide the environment's /env/bin that the sandbox puts first.
    res = ctx.sandbox.run(["bash", "-c", command], timeout_s=ctx.timeout_s,
                          env=dict(ctx.config.command_env))
    return ToolOutput(format_exec(res), command_seconds=res.duration_s)


class Bash(Tool):
    name = "bash"
    description = "Run a shell command in the repository and see its output and exit code."
    parameters = _props(["command"], command=("string", "The bash command to run."))

    def __call__(self, ctx: ToolContext, args: Mapping[str, Any]) -> ToolOutput:
        command = _arg(args, "command", "cmd")
        if not isinstance(command, str) or not command.strip():
            raise ToolUsageError("'command' must be a non-empty string")
        return _run_shell(ctx, command)


class View(Tool):
    name = "view"
    description = (
        "Show a file with line numbers (optionally only lines start_line..end_line), "
        "or list a directory two levels deep."
    )
    parameters = _props(
        ["path"],
        path=("string", "File or directory, relative to the repository root."),
        start_line=("integer", "First line to show (1-based)."),
        end_line=("integer", "Last line to show (inclusive)."),
    )
    _LIST = 'cd -- "$1" && find . -maxdepth 2 -not -path "*/.*" | LC_ALL=C sort | head -n 400'

    def __call__(self, ctx: ToolContext, args: Mapping[str, Any]) -> ToolOutput:
        path = _relpath(_arg(args, "path", "file", "filename"), ctx.config.workdir)
        try:
            data = ctx.sandbox.read_file(path)
        except SandboxError as exc:
            raise ToolUsageError(str(exc)) from None
        except _FILE_ERRORS:
            # A directory (or nothing at all): let the shell list it or say it is missing.
            res = ctx.sandbox.run(["bash", "-c", self._LIST, "view", path],
                                  timeout_s=min(ctx.timeout_s, 30))
            return ToolOutput(format_exec(res), command_seconds=res.duration_s)
        if b"\0" in data[:8192]:
            return ToolOutput(f"{path}: binary file, {len(data)} bytes")
        lines = data.decode("utf-8", errors="replace").splitlines()
        start = _int(args.get("start_line") or 1, "start_line")
        end = _int(args.get("end_line") or len(lines), "end_line")
        if end < 0:
            end = len(lines)
        start, end = max(start, 1), min(end, len(lines))
        if not lines:
            return ToolOutput(f"{path}: empty file")
        if start > end:
            raise ToolUsageError(f"{path} has {len(lines)} lines; bad range {start}..{end}")
        return ToolOutput(_numbered(lines[start - 1 : end], start))


class Edit(Tool):
    name = "edit"
    description = (
        "Edit a file. Replace: give old_str (must match exactly once) and new_str. "
        "Insert: give insert_line (0 = top) and new_str. Create or overwrite: give file_text."
    )
    parameters = _props(
        ["path"],
        path=("string", "File to edit, relative to the repository root."),
        old_str=("string", "Exact text to replace; it must occur exactly once."),
        new_str=("string", "Replacement text, or the text to insert."),
        insert_line=("integer", "Insert new_str after this line (0 inserts at the top)."),
        file_text=("string", "Whole content of a file to create or overwrite."),
    )

    def __call__(self, ctx: ToolContext, args: Mapping[str, Any]) -> ToolOutput:
        path = _relpath(_arg(args, "path", "file", "filename"), ctx.config.workdir)
        file_text = _arg(args, "file_text", "content", required=False)
        if file_text is not None:
            _write(ctx, path, str(file_text))
            return ToolOutput(f"wrote {path} ({len(str(file_text).splitlines())} lines)")
        if all(args.get(k) is None for k in ("old_str", "old", "old_string", "insert_line")):
            raise ToolUsageError("give old_str and new_str (replace), insert_line and new_str "
                                 "(insert), or file_text (create)")
        try:
            text = ctx.sandbox.read_file(path).decode("utf-8")
        except _FILE_ERRORS as exc:
            raise ToolUsageError(f"{path}: cannot read: {exc}; to create a file give "
                                 "file_text") from None
        except UnicodeDecodeError:
            raise ToolUsageError(f"{path}: not a UTF-8 text file") from None
        new = str(_arg(args, "new_str", "new", "new_string", "text"))
        if args.get("insert_line") is not None:
            lines = text.splitlines(keepends=True)
            at = _int(args["insert_line"], "insert_line")
            if not 0 <= at <= len(lines):
                raise ToolUsageError(f"insert_line must be in 0..{len(lines)}")
            if lines and at == len(lines) and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            block = new if new.endswith("\n") else new + "\n"
            updated = "".join(lines[:at]) + block + "".join(lines[at:])
            first = at + 1
        else:
            old = str(_arg(args, "old_str", "old", "old_string"))
            count = text.count(old) if old else 0
            if count != 1:
                why = "does not occur" if count == 0 else f"occurs {count} times"
                raise ToolUsageError(f"old_str {why} in {path}; it must match exactly once "
                                     "(copy it exactly, with more context if needed)")
            updated = text.replace(old, new, 1)
            first = text[: text.index(old)].count("\n") + 1
        _write(ctx, path, updated)
        shown = updated.splitlines()
        lo, hi = max(first - 3, 1), min(first + new.count("\n") + 3, len(shown))
        return ToolOutput(f"edited {path}:\n{_numbered(shown[lo - 1 : hi], lo)}")


def _write(ctx: ToolContext, path: str, text: str) -> None:
    try:
        ctx.sandbox.write_file(path, text.encode())
    except _FILE_ERRORS as exc:
        raise ToolUsageError(f"{path}: cannot write: {exc}") from None


class Search(Tool):
    name = "search"
    description = "Find lines containing a text (fixed string unless regex=true) in files."
    parameters = _props(
        ["pattern"],
        pattern=("string", "Text to look for."),
        path=("string", "Directory or file to search (default: the whole repository)."),
        regex=("boolean", "Treat pattern as an extended regular expression."),
    )

    def __call__(self, ctx: ToolContext, args: Mapping[str, Any]) -> ToolOutput:
        pattern = str(_arg(args, "pattern", "query", "text"))
        path = _relpath(args.get("path") or ".", ctx.config.workdir)
        mode = "-E" if args.get("regex") else "-F"
        argv = ["grep", "-rnI", mode, "--exclude-dir=.git", "-e", pattern, "--", path]
        res = ctx.sandbox.run(argv, timeout_s=min(ctx.timeout_s, 60))
        if res.exit_code == 1 and not res.stderr:
            return ToolOutput(f"no matches for {pattern!r}", res.duration_s)
        if res.exit_code != 0:
            return ToolOutput(format_exec(res), res.duration_s)
        lines = res.stdout.splitlines()
        limit = ctx.config.search_limit
        more = f"\n[{len(lines) - limit} more matches not shown]" if len(lines) > limit else ""
        return ToolOutput("\n".join(lines[:limit]) + more, res.duration_s)


class RunTests(Tool):
    name = "run_tests"
    description = "Run the repository's visible tests; optionally give test paths or options."
    parameters = _props([], args=("string", "Extra arguments, e.g. a test file path."))

    def __call__(self, ctx: ToolContext, args: Mapping[str, Any]) -> ToolOutput:
        extra = args.get("args") or args.get("paths") or ""
        try:
            tokens = extra if isinstance(extra, list) else shlex.split(str(extra))
        except ValueError as exc:
            raise ToolUsageError(f"cannot parse args: {exc}") from None
        command = " ".join([ctx.config.test_command, *(shlex.quote(str(t)) for t in tokens)])
        return _run_shell(ctx, command)


class Submit(Tool):
    name = "submit"
    description = "Finish: your changes in the repository are your answer."
    parameters = _props([])

    def __call__(self, ctx: ToolContext, args: Mapping[str, Any]) -> ToolOutput:
        return ToolOutput("submitted", submitted=True)


def default_tools() -> tuple[Tool, ...]:
    """The standard tool set, in the order the prompt lists them."""
    return (Bash(), View(), Edit(), Search(), RunTests(), Submit())
