"""``AgentConfig``: every knob of the agent loop, typed, frozen and documented.

The resolved config is stored with every rollout, so a trajectory can be reproduced: the same
model, config, sandbox state and seed give the same run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from codemill.core.records import SamplingConfig

AGENT_VERSION = "1"
"""Version of the agent loop, prompts and tools; bump when a rollout of the same model
would behave differently (the factory's ``rollouts`` asset keys on it)."""

DEFAULT_TEST_COMMAND = (
    'PY=python3; if [ -x /env/bin/python ]; then PY=/env/bin/python; fi; "$PY" -m pytest -x -q'
)


class AgentConfig(BaseModel):
    """How one agent run is bounded, prompted and sampled."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_turns: int = Field(30, ge=1)
    """Model calls at most; reaching it stops the run with ``max_turns``."""
    max_tokens: int = Field(32_768, ge=1)
    """Completion tokens over the whole run; reaching it stops with ``max_tokens``. Each call
    may sample at most what is left of this budget."""
    wall_time_s: float = Field(1800.0, gt=0)
    """Wall-clock seconds for the whole run; checked before each model call and used to cap
    each command's timeout, so a run overshoots by at most one model call."""
    command_timeout_s: float = Field(120.0, gt=0)
    """Timeout of one tool command inside the sandbox (the process tree is killed)."""
    observation_limit: int = Field(10_000, ge=200)
    """Characters of one tool observation shown to the model; longer output keeps its head
    and tail and notes how many characters were cut."""
    max_format_errors: int = Field(3, ge=1)
    """Consecutive replies without a usable action before the run stops with
    ``format_error``; each one first gets a reminder of the action format."""
    sampling: SamplingConfig = SamplingConfig()
    """Sampling settings of every call. When ``seed`` is set, sample ``i`` of a group uses
    ``seed + i`` so a group's samples differ but each is reproducible."""
    system_template: str | None = None
    """System prompt as a ``string.Template`` with ``$tools``, ``$protocol`` and
    ``$workdir``; None uses ``codemill.agent.prompts.SYSTEM_TEMPLATE``."""
    native_tools: Literal["auto", "on", "off"] = "auto"
    """Pass tool schemas to the backend and read its ``tool_calls`` (``on``), describe the
    text action format in the prompt instead (``off``), or follow the backend's
    ``supports_tools`` attribute (``auto``). Text actions in a reply are parsed either way."""
    test_command: str = DEFAULT_TEST_COMMAND
    """Shell command of the ``run_tests`` tool: the tests visible to the agent. Arguments the
    model gives are appended, each shell-quoted."""
    command_env: tuple[tuple[str, str], ...] = (("PYTHONDONTWRITEBYTECODE", "1"),)
    """Variables added to every command's environment. By default no byte-code is written:
    an edit that keeps a file's size within the second its ``.pyc`` was written would
    otherwise run stale code (pyc validation compares whole-second mtimes and sizes)."""
    workdir: str = "/repo"
    """Where the workspace appears inside the sandbox; shown in the prompt, and absolute
    paths under it are made relative for file tools."""
    search_limit: int = Field(100, ge=1)
    """Matching lines the ``search`` tool returns at most."""
