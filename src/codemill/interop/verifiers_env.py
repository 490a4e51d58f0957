"""codemill tasks as a verifiers (Prime Intellect, ``verifiers.v1``) taskset and environment.

    # rows: a veRL Parquet from codemill.interop.datasets.save_verl (or `codemill tasks
    # export-verl`); each row names its task, environment, home and settings.
    config = CodemillEnvConfig(
        taskset=CodemillTasksetConfig(id=TASKSET_ID,
                                      path="train.parquet", mode="agent"),
        agent=vf.AgentConfig(harness=vf.HarnessConfig(id="null"),
                             runtime=vf.SubprocessConfig(), client=..., model=...))
    env = vf.load_environment(config)          # CodemillEnv over CodemillTaskset
    async with env.serving():
        episode = await env.run_episode(next(iter(env.taskset)), ctx)
    episode.traces[0].rewards["codemill"].score     # the grader's value

verifiers finds a taskset's classes by importing its id as a top-level module and taking the
one ``Taskset`` and one ``Env`` subclass in its ``__all__``. Importing this module makes
``TASKSET_ID`` such a module in the importing process; a separate ``vf eval`` process needs
the import first (e.g. a one-line ``codemill_verifiers.py`` on its path re-exporting this
module).

The model is verifiers' agent, driven through an ``Interaction`` (the pattern of verifiers'
own TextArena env): the env is the run's user. Each task's prompt is the session's first
messages (agent mode: codemill's agent system prompt and the problem statement; patch mode:
the patch-mode messages); each model reply is one step of a codemill session
(``codemill.rollouts.session``, its own sandbox fork), whose observation is the next user
turn; when the session ends the grader's ``Reward.value`` is recorded on the trace as the
reward ``codemill``. A masked reward (sandbox failure, no verdict) is never recorded as a
score: ``run`` raises, so verifiers marks the episode failed (an error, not a zero). Use a
tool-less harness (``null``): the actions are the text in the reply, run by codemill's tools
in codemill's sandbox, not by the harness.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any, Literal

import pyarrow.parquet as pq
import verifiers.v1 as vf

from codemill.interop.datasets import agent_system_prompt, records_of
from codemill.rollouts.session import SessionConfig, open_session

TASKSET_ID = "codemill_verifiers"
"""The taskset (and env) id for verifiers' configs. verifiers imports a plugin by a top-level
module name, so importing this module registers it under that name too (in this process)."""
REWARD = "codemill"
"""The name of the grader's reward on a verifiers trace."""
__all__ = ["CodemillEnv", "CodemillTaskset"]


class CodemillTasksetConfig(vf.TasksetConfig):
    path: str = ""
    """The veRL Parquet of the tasks (``codemill.interop.datasets.save_verl``)."""
    mode: Literal["agent", "patch"] = "agent"
    """Agent mode (tools in a sandbox fork, many turns) or patch mode (one answer)."""


class CodemillData(vf.TaskData):
    info: dict[str, Any]
    """The row's ``extra_info``: the task, environment and settings records and the home."""
    mode: Literal["agent", "patch"] = "agent"


class CodemillTask(vf.Task[CodemillData, vf.State, vf.TaskConfig]):
    @property
    def key(self) -> str:
        return f"{self.data.info['task_id']}:{self.data.mode}"


class CodemillTaskset(vf.Taskset[CodemillTask, CodemillTasksetConfig]):
    def load(self) -> Iterator[CodemillTask]:
        if not self.config.path:
            raise ValueError("the codemill taskset needs path= a veRL Parquet of tasks")
        for row in pq.read_table(self.config.path).to_pylist():
            info = row["extra_info"]
            if self.config.mode == "patch":
                system, prompt = row["prompt"][0]["content"], row["prompt"][1]["content"]
            else:
                system = agent_system_prompt()
                prompt = records_of(info)[0].problem_statement
            yield CodemillTask(CodemillData(id=info["task_id"], name=info["task_id"][:12],
                                            prompt=prompt, system_prompt=system, info=info,
                                            mode=self.config.mode), self.config.task)


class CodemillEnvConfig(vf.EnvConfig):
    agent: vf.AgentConfig = vf.AgentConfig()
    """The policy's seat."""


class CodemillEnv(vf.Env[CodemillEnvConfig]):
    """One episode: a codemill session stepped by the agent's replies (module docstring)."""

    async def run(self, task: CodemillTask, agents: vf.Agents) -> None:
        data = task.data
        record, env, home, settings = records_of(data.info)
        config = SessionConfig(policy="verifiers",
                               answer_format=data.info.get("answer_format", "lines"))
        session = await asyncio.to_thread(open_session, record, env, home, settings,
                                          data.mode, config=config)
        try:
            first = await asyncio.to_thread(session.reset)
            if [m.content for m in first.messages] != [data.system_prompt, data.prompt]:
                raise ValueError(f"task {record.task_id[:12]}: the taskset's prompt is not "
                                 "the session's (rows from another codemill version?)")
            async with agents.agent.interaction(task) as interaction:
                segment = await interaction.turn()  # a prompted task: the model speaks first
                while not segment.terminated:
                    obs, done = await asyncio.to_thread(session.step, segment.last_reply)
                    if done:
                        break  # the session is over: end the exchange
                    segment = await interaction.turn(obs.text)
            if not session.done:
                raise RuntimeError(f"the agent stopped before the session ended "
                                   f"({session.step_count} step(s)); nothing to grade")
            reward = await asyncio.to_thread(session.grade)
        finally:
            await asyncio.to_thread(session.close)
        if reward.value is None:
            raise RuntimeError(f"masked reward ({reward.error_type}): not a score")
        trace = interaction.trace
        trace.record_reward(REWARD, reward.value, 1.0)
        trace.info["stop_reason"] = str(session.stop_reason)
        trace.info["resolved"] = reward.resolved


# verifiers resolves plugin ids with importlib; a dotted id is not accepted, so alias.
sys.modules.setdefault(TASKSET_ID, sys.modules[__name__])
