"""Patch-mode SFT examples: each task's prompt and its gold patch as a line-edit answer.

    examples = expert_examples(tasks, envs=envs, home=home, settings=settings)
    for ex in examples:  # ex.messages (system + user), ex.answer (``N: text`` lines)
        ...              # the trainer renders them with its tokenizer's chat template

The prompt is exactly the one patch-mode rollouts send (``patch_mode.patch_messages`` over
``runner.prepare_patch_contexts``), so a model trained on these examples is asked the same
question at rollout and eval time. The answer comes from the gold patch
(``patch_mode.expert_answer``): a training target, never part of a prompt. A task whose
context failed, or whose gold change touches a line the listing does not show, gives no
example and is counted in ``skipped`` with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codemill.core.config import Settings
from codemill.core.records import EnvSpec, Message, TaskSpec
from codemill.rollouts.patch_mode import expert_answer, patch_messages
from codemill.rollouts.runner import prepare_patch_contexts


@dataclass(frozen=True)
class PatchExample:
    task_id: str
    messages: tuple[Message, ...]
    answer: str


@dataclass
class PatchExamples:
    examples: list[PatchExample]
    skipped: Counter[str] = field(default_factory=Counter)
    """Why tasks gave no example: ``context``, ``gold outside the listing``."""


def expert_examples(tasks: Sequence[TaskSpec], *, envs: Mapping[str, EnvSpec], home: Path,
                    settings: Settings) -> PatchExamples:
    """One example per task whose gold patch can be written as line edits of its listing
    (the prompt asks for line edits)."""
    contexts = prepare_patch_contexts(tasks, envs, Path(home), settings)
    out = PatchExamples([])
    for task in tasks:
        ctx = contexts[task.task_id]
        if ctx.error:
            out.skipped["context"] += 1
            continue
        answer = expert_answer(ctx, task.gold_patch)
        if answer is None:
            out.skipped["gold outside the listing"] += 1
            continue
        out.examples.append(PatchExample(
            task.task_id, tuple(patch_messages(task.problem_statement, ctx)), answer))
    return out
