"""Frozen record types shared by every layer: the nouns of the flow in DESIGN.md.

Records are values: frozen pydantic models with tuples for sequences, so they hash, compare
and serialize deterministically (``codemill.core.ids.content_id`` accepts them). Ids are
computed by the domain packages from what defines each thing and stored on the record.
Columns of the ledger tables mirror these fields; ``codemill.store`` maps them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    """Base of all records: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --- execution --------------------------------------------------------------------------


class ExecResult(Record):
    """What one command did inside a sandbox."""

    exit_code: int | None
    """Process exit status; negative for a signal; None when it never started."""
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    timed_out: bool = False
    """The wall-clock limit was reached and the whole process tree was killed."""
    killed_reason: str | None = None
    """Why the harness killed it, when it did: ``timeout``, ``memory``, ``pids``."""
    truncated: bool = False
    """Output was longer than the cap and was cut (the cut is noted in the text)."""
    stderr_truncated: bool = False
    """stderr itself was cut: a graded run's result stream lives there, so records in the
    cut middle are lost."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


# --- repositories and environments --------------------------------------------------------


class SourceKind(StrEnum):
    LOCAL = "local"
    GIT = "git"
    PYPI = "pypi"


class RepoSnapshot(Record):
    """A content-addressed source tree at one version, stored once."""

    snapshot_id: str
    """sha256 over the sorted (path, mode, blob hash) list of the tree."""
    source: str
    """What the user typed: a path, a git URL[@rev], or ``pypi:NAME==VERSION``."""
    source_kind: SourceKind
    commit: str | None = None
    """The git commit the tree came from, when there was one; for a PyPI release the
    sdist's ``sha256:<hex>`` (what the source resolved to)."""
    path: str
    """Where the stored tree lies on disk (read-only; never edited in place)."""
    n_files: int
    n_bytes: int
    n_skipped: int = 0
    """Entries left out of the stored tree: symlinks leading out of it, ``.git``, special
    files, submodules."""
    name: str = ""
    """A human name for the project (distribution or directory name)."""
    created_at: str = ""
    """Commit or release date (ISO 8601) when known; used to resolve deps by era."""


class EnvStatus(StrEnum):
    USABLE = "usable"
    FAILED = "failed"
    NO_TESTS = "no_tests"
    FLAKY = "flaky"


class EnvSpec(Record):
    """An executable environment: a snapshot plus an interpreter plus resolved deps."""

    env_id: str
    """content_id(snapshot_id, python, lock_hash, builder_version)."""
    snapshot_id: str
    python: str
    """Interpreter version, e.g. ``3.11.2``."""
    python_path: str
    lock_hash: str
    lock: str = ""
    """The resolved requirements (``name==version`` lines), as installed."""
    builder_version: str
    venv_path: str
    """The installed environment on disk; shared by environments with the same lock."""
    test_command: tuple[str, ...] = ()
    status: EnvStatus
    reason: str = ""
    """Why the environment is not usable, in words a person can act on."""
    build_seconds: float = 0.0
    n_tests: int = 0
    n_passing: int = 0
    n_flaky: int = 0
    env_vars: tuple[tuple[str, str], ...] = ()
    """Extra variables the tests need (e.g. pretend versions for setuptools-scm)."""


# --- tests -----------------------------------------------------------------------------


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


class TestCaseResult(Record):
    """One test's verdict in one run."""

    __test__ = False

    node_id: str
    """Stable across runs: ``path/to/test_file.py::Class::test_name[param]``."""
    outcome: Outcome
    duration_s: float = 0.0
    message: str = ""
    """Short failure message (first lines of the assertion or error)."""


class TestReport(Record):
    """The result of one test-suite run, parsed from the harness's own result file."""

    __test__ = False

    command: tuple[str, ...]
    exit_code: int | None
    duration_s: float
    timed_out: bool = False
    results: tuple[TestCaseResult, ...] = ()
    parser_version: str = ""
    error: str | None = None
    """Set when the run produced no trustworthy results (no result file, crash, timeout)."""
    output_tail: str = ""
    audit: tuple[str, ...] = ()
    """``class:detail`` of what non-test workspace code did during a streamed run
    (``codemill.testing.stream``); empty when the run was not streamed."""

    @property
    def ran(self) -> bool:
        """Positive evidence that the suite ran: a result file with at least one test."""
        return self.error is None and len(self.results) > 0

    def outcomes(self) -> dict[str, Outcome]:
        return {r.node_id: r.outcome for r in self.results}

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)


# --- tasks -----------------------------------------------------------------------------


class TaskKind(StrEnum):
    MINED = "mined"
    SYNTH = "synth"
    FEATURE = "feature"
    IMPORTED = "imported"


class TaskSpec(Record):
    """A task: a broken state of an environment plus the tests that prove it fixed.

    The broken state is ``snapshot + broken_patch``; the gold state is the snapshot itself
    plus ``test_patch`` (for mined tasks, the commit). ``gold_patch`` turns broken into gold
    (source files only); ``test_patch`` holds test files withheld from the agent and
    restored by the grader.
    """

    task_id: str
    """content_id(env_id, broken_patch, test_patch, fail_to_pass, pass_to_pass)."""
    env_id: str
    kind: TaskKind
    broken_patch: str
    """Unified diff from the snapshot to the broken state (source only)."""
    gold_patch: str
    """Unified diff from the broken state to the fixed state (source only)."""
    test_patch: str = ""
    """Unified diff adding or changing the tests that grade the task (hidden)."""
    fail_to_pass: tuple[str, ...]
    pass_to_pass: tuple[str, ...]
    problem_statement: str
    hidden_paths: tuple[str, ...] = ()
    """Paths the agent must not see or change (test files restored at grading)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Difficulty features and provenance: lines/files changed, operator, commit, etc."""


# --- agent -----------------------------------------------------------------------------


class SamplingConfig(Record):
    """How to sample from a model."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    """Sample among the k likeliest tokens only; 0 = off (RL samples with top_k=0, top_p=1
    so the recorded full-vocabulary log-probs are the sampler's own)."""
    max_tokens: int = 1024
    seed: int | None = None
    n: int = 1


class ToolCall(Record):
    """A model's request to run one tool."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(Record):
    """One chat message in the OpenAI shape."""

    role: str
    """``system``, ``user``, ``assistant`` or ``tool``."""
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


class ModelReply(Record):
    """What a backend returned for one completion."""

    message: Message
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""
    latency_s: float = 0.0
    token_ids: tuple[int, ...] = ()
    """Sampled token ids when the backend exposes them (local models; for RL)."""
    logprobs: tuple[float, ...] = ()
    """Per sampled token: log_softmax(logits / temperature) over the full vocabulary
    (temperature 1 when greedy), whatever top-p/top-k filtering the sampler applied."""
    prompt_token_ids: tuple[int, ...] = ()
    """Token-exact backends: the prompt tokens this call appended to the conversation's
    token sequence: the whole prompt on a fresh conversation, else only what follows the
    previous reply's sampled ids (the end of that turn, the observations, the next turn's
    header). The model's earlier tokens are never re-tokenized from text."""
    prompt_offset: int = 0
    """Where ``prompt_token_ids`` start in the conversation's token sequence: 0 for a fresh
    conversation; for a continued one, the previous reply's offset plus its prompt and
    sampled token counts (``codemill.agent.tokens`` checks this chain)."""
    tokenizer_hash: str = ""
    """sha256 of the tokenizer's vocabulary and chat template (token-exact backends)."""


class Step(Record):
    """One turn of an agent: the model's reply and what the tools answered."""

    index: int
    reply: ModelReply
    observations: tuple[Message, ...] = ()
    tool_seconds: float = 0.0
    harness_seconds: float = 0.0
    """Time the loop itself spent, excluding the model and the tools' commands."""


class StopReason(StrEnum):
    SUBMITTED = "submitted"
    MAX_TURNS = "max_turns"
    MAX_TOKENS = "max_tokens"
    WALL_TIME = "wall_time"
    MODEL_ERROR = "model_error"
    SANDBOX_ERROR = "sandbox_error"
    FORMAT_ERROR = "format_error"


class TokenTrace(Record):
    """A rollout as the model saw it, token for token: what RL trainers consume.

    ``prompt_ids`` is the first prompt. ``completion_ids`` holds everything after it, in
    order: each turn's sampled tokens (``loss_mask`` 1) and the tokens the harness inserted
    between turns (end-of-turn, tool observations, next header; ``loss_mask`` 0).
    ``logprobs`` are the sampler's per-token log-probs (0.0 where the mask is 0). The
    columns map one-to-one to TRL ``rollout_func`` (prompt_ids, completion_ids, logprobs,
    env_mask), veRL agent-loop (prompt_ids, response_ids, response_mask,
    response_logprobs) and SkyRL generator output (prompt_token_ids, response_ids,
    loss_masks, rollout_logprobs).
    """

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    loss_mask: tuple[int, ...]
    logprobs: tuple[float, ...]
    turns: tuple[tuple[int, int], ...] = ()
    """Per model turn, ``(start, end)`` of its sampled tokens in ``completion_ids``."""
    tokenizer_hash: str = ""
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0


class Trajectory(Record):
    """A whole agent run: messages, steps, why it stopped and the final diff."""

    rollout_id: str
    task_id: str
    policy: str
    sample_index: int = 0
    system_prompt: str = ""
    task_prompt: str = ""
    steps: tuple[Step, ...] = ()
    stop_reason: StopReason
    diff: str = ""
    wall_seconds: float = 0.0
    error: str | None = None
    tokens: TokenTrace | None = None
    """The token-exact record when the backend is token-exact (local models), else None.
    Stored in the ``trajectories`` table, not as a ``rollouts`` column."""


# --- rewards ---------------------------------------------------------------------------


class Reward(Record):
    """A graded rollout. ``value`` is None when masked: an error is never a zero."""

    reward_id: str
    rollout_id: str
    task_id: str
    env_id: str
    policy: str = ""
    value: float | None
    resolved: bool | None
    f2p_passed: int = 0
    f2p_total: int = 0
    p2p_regressions: tuple[str, ...] = ()
    masked: bool = False
    error_type: str | None = None
    """Why the reward is masked: ``infra:sandbox``, ``infra:no_results``, ..."""
    flags: tuple[str, ...] = ()
    """Hack signals: ``touched_tests``, ``touched_test_config``, ``withheld_access``, ..."""
    test_command: tuple[str, ...] = ()
    parser_version: str = ""
    harness_version: str = ""
    grading_seconds: float = 0.0

    @property
    def f2p_fraction(self) -> float | None:
        return None if self.f2p_total == 0 else self.f2p_passed / self.f2p_total
