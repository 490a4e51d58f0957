"""One grading per distinct patch-mode answer of a stream: identical replies share a verdict.

    verdicts = SharedVerdicts()
    reward = verdicts.reward(traj, grade_it)   # from any number of rollout threads

A GRPO group samples one prompt G times, and a policy that has learned the answer format
often writes the same reply several times; grading runs the project's tests in a sandbox,
the slowest part of a patch-mode rollout. Two patch-mode rollouts of one task with the same
reply text have the same diff and the same trajectory as far as the grader can see (one
turn, no tools), so the grader's verdict on one is the verdict on both. The first rollout
of each (task, reply) is graded; the others wait for it and get a reward row of their own
with its verdict (own ``reward_id`` and ``rollout_id``, ``grading_seconds`` 0 and the
``shared_verdict`` flag, so a reader can tell a shared verdict from a graded one). A masked
verdict (an infrastructure failure) is never shared: the next identical reply is graded
itself. Agent-mode rollouts are never shared (their trajectories differ in what the grader
scans). Lives for one stream of rollouts, in one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from codemill.core.diffs import text_bytes
from codemill.core.ids import bytes_id, content_id
from codemill.core.records import Reward, Trajectory
from codemill.rewards.flags import SHARED_VERDICT


@dataclass
class _Slot:
    done: threading.Event = field(default_factory=threading.Event)
    reward: Reward | None = None


class SharedVerdicts:
    """Thread-safe map from (task, reply text) to the first grading's reward."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, str], _Slot] = {}
        self.graded = 0
        self.shared = 0

    def reward(self, traj: Trajectory, grade_it: Callable[[], Reward]) -> Reward:
        """``grade_it()`` for the first rollout of its (task, reply); a copy of that
        verdict for the next ones (module docstring)."""
        key = (traj.task_id, _reply_key(traj))
        with self._lock:
            slot = self._slots.get(key)
            owner = slot is None
            if slot is None:
                slot = self._slots[key] = _Slot()
        if owner:
            try:
                slot.reward = grade_it()
            finally:
                slot.done.set()
            with self._lock:
                self.graded += 1
                if slot.reward is None or slot.reward.masked:  # the next one grades itself
                    del self._slots[key]
            return slot.reward
        slot.done.wait()
        first = slot.reward
        if first is None or first.masked:
            with self._lock:
                self.graded += 1
            return grade_it()
        with self._lock:
            self.shared += 1
        return first.model_copy(update={
            "reward_id": content_id("reward", traj.rollout_id, traj.task_id,
                                    bytes_id(text_bytes(traj.diff)), first.harness_version,
                                    first.parser_version, SHARED_VERDICT, first.rollout_id),
            "rollout_id": traj.rollout_id, "policy": traj.policy, "grading_seconds": 0.0,
            "flags": (*first.flags, SHARED_VERDICT)})


def _reply_key(traj: Trajectory) -> str:
    """The reply text and the diff read from it: what the grader sees of a patch-mode turn."""
    return content_id("reply", [s.reply.message.content or "" for s in traj.steps], traj.diff)
