"""The ``vibe_checks`` asset: each variant answers realistic requests on a real repository.

Config: ``env_id`` (a recorded environment), ``variants`` (model specs), ``judge``,
``n_functions``, ``seed``, ``max_turns``, ``max_tokens``. The requests come from the
environment's snapshot (``codemill.evals.vibes``); each variant answers each request with
the same agent users run, in a sandbox over the unchanged snapshot; executable checks run
in fresh sandboxes; the other answers are compared by the judge with the first variant's
(order A = first variant, B = this one). A row per (request, variant); answers recorded
before (same request, variant and budgets) are not asked again (nor re-judged).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from codemill.core.ids import content_id
from codemill.evals import vibes
from codemill.factory.asset import AssetContext
from codemill.factory.eval_inputs import task_envs
from codemill.factory.graph import asset


def _answer(ctx: AssetContext, env: Any, backend: Any, variant: str, req: vibes.VibeRequest,
            cfg: dict[str, Any]) -> tuple[str, str, str | None]:
    from codemill.agent.config import AgentConfig
    from codemill.agent.loop import Agent
    from codemill.core.records import SamplingConfig
    from codemill.envs.installs import sandbox_spec
    from codemill.sandbox.api import open_sandbox

    sampling = SamplingConfig(temperature=0.0, max_tokens=cfg["max_tokens"], seed=0)
    agent = Agent(backend, AgentConfig(max_turns=cfg["max_turns"], sampling=sampling,
                                       max_tokens=cfg["max_turns"] * cfg["max_tokens"],
                                       wall_time_s=600))
    sb = open_sandbox(sandbox_spec(env, ctx.settings.home, ctx.settings.sandbox),
                      ctx.settings.home, backend=ctx.settings.sandbox.backend)
    try:
        traj = agent.run(sb, req.text, rollout_id=content_id("vibe-run", req.request_id,
                                                             variant), policy=variant)
    finally:
        sb.close()
    return vibes.final_answer(traj.steps), traj.diff, traj.error


@asset("vibe_checks", code_version="1", reads=("environments",), requested=True)
def vibe_checks(ctx: AssetContext) -> Iterator[Any]:
    """Answer, check and compare the vibe-check requests of one environment."""
    from codemill.agent.models import make_backend
    from codemill.agent.models.scripted import ScriptedBackend
    from codemill.envs.builder.verdict import make_runner
    from codemill.envs.installs import sandbox_spec, snapshot_dir
    from codemill.rewards.workspace import git_apply
    from codemill.sandbox.api import open_sandbox

    cfg = dict(ctx.config)
    env = task_envs(ctx.read, [cfg["env_id"]])[cfg["env_id"]]
    requests = vibes.make_requests(snapshot_dir(ctx.settings.home, env.snapshot_id),
                                   env.env_id, cfg["n_functions"], cfg["seed"])
    budget = (cfg["max_turns"], cfg["max_tokens"])
    done = {r["vibe_id"]: r for r in ctx.read("vibe_checks", columns=["vibe_id", "answer"],
                                              row_filter=f"env_id == '{env.env_id}'")}
    runner = make_runner(env.test_command, env.env_vars)

    def fresh() -> Any:
        return open_sandbox(sandbox_spec(env, ctx.settings.home, ctx.settings.sandbox),
                            ctx.settings.home, backend=ctx.settings.sandbox.backend)

    baseline: list[set[str]] = []

    def passing() -> set[str]:
        if not baseline:
            with fresh() as sb:
                rep = runner.run(sb, None, timeout_s=600)
            baseline.append({r.node_id for r in rep.results if r.outcome.value == "passed"})
        return baseline[0]

    judge = (ScriptedBackend(vibes.heuristic_preference, name="judge:heuristic")
             if cfg["judge"] == "heuristic" else make_backend(cfg["judge"],
                                                              home=ctx.settings.home))
    answers: dict[tuple[str, str], str] = {}
    for variant in cfg["variants"]:
        backend = None  # loaded only when some request still needs an answer
        for n, req in enumerate(requests, 1):
            ctx.progress(n, len(requests))
            vid = content_id("vibe", req.request_id, variant, budget)
            if vid in done:  # answered before: reuse it for the judge, ask nothing
                answers[(req.request_id, variant)] = done[vid]["answer"] or ""
                continue
            backend = backend or make_backend(variant, home=ctx.settings.home)
            answer, diff, error = _answer(ctx, env, backend, variant, req, cfg)
            answers[(req.request_id, variant)] = answer
            passed, what = vibes.check(req, diff, fresh, runner, passing, git_apply)
            pref, why = None, ""
            first = cfg["variants"][0]
            if passed is None and variant != first:
                pref, why = vibes.preference(judge, req.text, answers[(req.request_id, first)],
                                             answer)
            yield {"vibe_id": vid, "request_id": req.request_id, "kind": req.kind,
                   "variant": variant, "env_id": env.env_id, "request": req.text,
                   "answer": answer, "diff": diff, "check": what, "check_passed": passed,
                   "judge": cfg["judge"] if pref is not None else None,
                   "preference": {"A": "first", "B": "this", "tie": "tie"}.get(pref or ""),
                   "details": json.dumps({"vs": first, "why": why, "error": error,
                                          "function": f"{req.path}::{req.function}"})}
