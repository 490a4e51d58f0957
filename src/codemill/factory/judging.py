"""The ``judgments`` asset: a judge's rubric scores of an eval's attempts.

Config: ``eval_id`` and ``judge`` (``heuristic`` or any model spec). Reads the eval's
samples, each rollout's final assistant message and diff, and the task's statement; asks
the judge (``codemill.evals.judge``); yields one ``judgments`` row per attempt not judged
before by this judge and rubric. The execution outcome is copied from the sample for
agreement; rewards are never written here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from codemill.core.errors import FactoryError
from codemill.evals.judge import judge_one, judgment_id, make_judge
from codemill.factory.asset import AssetContext
from codemill.factory.eval_inputs import quoted
from codemill.factory.graph import asset


@asset("judgments", code_version="1", reads=("evals",), requested=True)
def judgments(ctx: AssetContext) -> Iterator[Any]:
    """Judge every attempt of one eval with one judge."""
    cfg = dict(ctx.config)
    eval_id, judge = cfg["eval_id"], cfg["judge"]
    samples = {s["rollout_id"]: s for s in
               ctx.read("eval_samples", row_filter=f"eval_id == '{eval_id}'")}
    if not samples:
        raise FactoryError(f"eval {eval_id[:12]} has no attempts to judge")
    done = ctx.existing_ids("judgments", "judgment_id")
    todo = {rid: s for rid, s in samples.items() if judgment_id(rid, judge) not in done}
    if not todo:
        return
    where = f"rollout_id in ({quoted(todo)})"
    rollouts = {r["rollout_id"]: r for r in
                ctx.read("rollouts", columns=["rollout_id", "diff", "task_prompt"],
                         row_filter=where)}
    final: dict[str, tuple[int, str]] = {}
    for s in ctx.read("steps", columns=["rollout_id", "step_index", "role", "content"],
                      row_filter=where):
        if s["role"] == "assistant" and s["step_index"] >= final.get(s["rollout_id"],
                                                                       (-1, ""))[0]:
            final[s["rollout_id"]] = (s["step_index"], s["content"] or "")
    backend = make_judge(judge, home=ctx.settings.home)
    for n, (rid, sample) in enumerate(sorted(todo.items()), 1):
        ctx.progress(n, len(todo))
        ro = rollouts.get(rid, {})
        yield judge_one(backend, judge, rollout_id=rid, task_id=sample["task_id"],
                        variant=sample["variant"], problem=ro.get("task_prompt") or "",
                        final_message=final.get(rid, (0, ""))[1], diff=ro.get("diff") or "",
                        resolved=None if sample["masked"] else sample["resolved"]).row()
