"""The core contracts. Each is small; many implementations live in the layers above.

A name -> import-path registry (``codemill.core.registry``) picks implementations, so the
agent (which imports only ``core``) works with any sandbox and any model backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from codemill.core.records import (
    ExecResult,
    Message,
    ModelReply,
    Reward,
    SamplingConfig,
    TaskSpec,
    TestReport,
)


@runtime_checkable
class Sandbox(Protocol):
    """An isolated, writable workspace over a read-only environment.

    Paths are relative to the workspace root (the repository) unless absolute inside the
    sandbox's view. Every method is safe to call with hostile input; a sandbox never lets a
    command touch the host. ``close`` releases everything (mounts, processes, temp dirs).
    """

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        offline: bool = False,
    ) -> ExecResult:
        """Run ``argv`` in the workspace. ``offline``: this command gets no network and a
        read-only view of everything but the workspace, whatever the sandbox's spec allows (a
        build running the project's code); a backend without isolation cannot honour it and
        says so in its docstring."""
        ...

    def read_file(self, path: str) -> bytes: ...

    def write_file(self, path: str, data: bytes) -> None: ...

    def diff(self) -> str:
        """Unified diff of the workspace against the state it was forked from."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ModelBackend(Protocol):
    """A chat model. ``tools`` are OpenAI-style JSON schemas; backends without native tool
    calling return text, and the agent parses its text format."""

    name: str

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, object]] | None = None,
        sampling: SamplingConfig | None = None,
    ) -> ModelReply: ...


@runtime_checkable
class TestRunner(Protocol):
    """Runs a test suite (or a selection) in a sandbox and parses the harness's own result
    file; never the code's stdout."""

    __test__ = False  # type: ignore[misc]  # tells pytest not to collect it; not a member
    parser_version: str

    def command(self, selection: Sequence[str] | None = None) -> tuple[str, ...]: ...

    def run(
        self,
        sandbox: Sandbox,
        selection: Sequence[str] | None = None,
        *,
        timeout_s: float = 600.0,
    ) -> TestReport: ...


@runtime_checkable
class Grader(Protocol):
    """Turns a task and a candidate diff into a reward, without trusting the workspace."""

    harness_version: str

    def grade(self, task: TaskSpec, diff: str, *, rollout_id: str, policy: str = "") -> Reward:
        ...
