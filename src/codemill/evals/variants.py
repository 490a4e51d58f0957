"""Variants: what gets evaluated, named by a model spec.

Any spec ``codemill.agent.models.make_backend`` takes (``smollm2``, ``openai:MODEL@URL``,
``transformers:PATH``, ``scripted:NAME``), a checkpoint ``ckpt:ID`` (its lineage is
checked by the contamination guard), or ``oracle``: a reference policy that is handed
each task's gold patch, applies it and submits. The oracle is a ceiling and a harness
check (every oracle attempt should resolve; one that does not points at the task or the
grader), never a model: it is built here, in-process, from the suite's tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codemill.core.records import Message, TaskSpec

ORACLE = "oracle"


def checkpoint_of(spec: str) -> str | None:
    """The checkpoint id (or prefix) a ``ckpt:ID`` spec names, else None."""
    kind, _, rest = spec.partition(":")
    return rest if kind == "ckpt" and rest else None


def oracle_backend(tasks: Sequence[TaskSpec]) -> Any:
    """The oracle policy over ``tasks`` (matched by problem statement in the prompt)."""
    from codemill.agent.models.scripted import ScriptedBackend

    gold = {t.problem_statement: t.gold_patch for t in tasks}

    def policy(messages: Sequence[Message], tools: object) -> str:
        if any(m.role == "assistant" for m in messages):
            return "I applied the reference fix.\n<tool name=\"submit\"></tool>"
        prompt = next(m.content for m in messages if m.role == "user")
        patch = next((p for s, p in gold.items() if s in prompt), None)
        if patch is None:
            return '<tool name="submit"></tool>'
        return f"```bash\ngit apply <<'CODEMILL_EOF'\n{patch}CODEMILL_EOF\n```"

    return ScriptedBackend(policy, name=ORACLE)
