"""Expert trajectories: a validated task's gold patch, acted out in the agent's own format.

``expert_script(task, rng)`` writes the replies an engineer who knows the fix would send,
in the text action format the agent parses (``codemill.agent.actions``): look at the
failure or the code first (run the tests, list the tree, search for a name, view the file;
which ones and in what order vary with ``rng``), view the code around each change, edit it
with the ``edit`` tool (one replacement per hunk, with enough context to match once), run
the tests again (usually), submit. Prose lines vary too, so a model learns to act, not to
recite one transcript.

The replies are replayed through the real agent loop in a real sandbox and graded by the
real grader (``codemill.factory.training``); only those earning reward 1 are kept. The
script never reads hidden tests: it knows only the gold patch of source files.
"""

from __future__ import annotations

import json
import random
import re

from codemill.core.diffs import new_path, parse_diff, strip_level
from codemill.core.records import TaskSpec

OPENERS = (
    "Let me run the tests first to see what fails.",
    "First I will look at the failing tests.",
    "I'll start by running the test suite.",
)
LOOKS = (
    "Let me look at the code.",
    "Now let me view the relevant part of {path}.",
    "I'll read {path} around the failing code.",
)
EDITS = (
    "I see the problem. Let me fix it.",
    "This is the bug; I'll edit it.",
    "Here is the fix.",
)
CHECKS = (
    "Let me run the tests again.",
    "Now I'll check that the tests pass.",
)
SUBMITS = (
    "The fix is done. Submitting.",
    "Tests pass now, so I'll submit.",
)
_NAME = re.compile(r"\bdef\s+(\w+)|\bclass\s+(\w+)")


def _tool(name: str, args: dict[str, object] | None = None) -> str:
    body = json.dumps(args, ensure_ascii=False) if args else ""
    return f'<tool name="{name}">{body}</tool>'


def _edit(args: dict[str, object]) -> str:
    """The edit call with its arguments as tags: code needs no JSON escaping there."""
    body = "".join(f"<{k}>{v}</{k}>\n" if k == "path" else f"<{k}>\n{v}\n</{k}>\n"
                   for k, v in args.items())
    return f'<tool name="edit">\n{body}</tool>'


def _bash(command: str) -> str:
    return f"```bash\n{command}\n```"


def edits_of(gold_patch: str) -> list[tuple[str, dict[str, object], int]]:
    """``(path, edit arguments, first changed line)`` per hunk of the gold patch; a new
    file is written whole. Deleted files are not expressible and yield nothing."""
    out: list[tuple[str, dict[str, object], int]] = []
    changes = parse_diff(gold_patch)
    strip = strip_level(changes)
    for change in changes:
        path = new_path(change, strip)
        if path is None:
            return []
        if change.old_path is None:
            text = "".join(h.new_text() for h in change.hunks)
            out.append((path, {"path": path, "file_text": text}, 1))
            continue
        for hunk in change.hunks:
            out.append((path, {"path": path, "old_str": hunk.old_text(),
                               "new_str": hunk.new_text()}, hunk.old_start))
    return out


def expert_script(task: TaskSpec, rng: random.Random) -> list[str] | None:
    """The replies of one expert run on ``task`` (module docstring); None when the gold
    patch cannot be expressed with the edit tool."""
    edits = edits_of(task.gold_patch)
    if not edits:
        return None
    replies: list[str] = []
    openers = ["tests", "tree", "search"]
    rng.shuffle(openers)
    for kind in openers[: rng.choice((1, 1, 2))]:
        if kind == "tests":
            replies.append(f"{rng.choice(OPENERS)}\n{_tool('run_tests')}")
        elif kind == "tree":
            replies.append(f"Let me see the files.\n{_bash('ls')}")
        else:
            m = _NAME.search(str(edits[0][1].get("old_str") or ""))
            name = next((g for g in (m.groups() if m else ()) if g), None)
            if name:
                replies.append(f"Let me find `{name}`.\n"
                               + _tool("search", {"pattern": f"def {name}"}))
    seen: set[str] = set()
    for path, args, line in edits:
        if path not in seen and "file_text" not in args:
            seen.add(path)
            lo = max(1, line - rng.choice((3, 5, 10)))
            view = {"path": path, "start_line": lo, "end_line": line + rng.choice((10, 15, 25))}
            replies.append(rng.choice(LOOKS).format(path=path) + "\n" + _tool("view", view))
        replies.append(f"{rng.choice(EDITS)}\n{_edit(args)}")
    if rng.random() < 0.85:
        replies.append(f"{rng.choice(CHECKS)}\n{_tool('run_tests')}")
    replies.append(f"{rng.choice(SUBMITS)}\n{_tool('submit')}")
    return replies
