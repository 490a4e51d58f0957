"""veRL's custom reward function over codemill's grader (patch mode).

    # veRL config, with the Parquet from ``codemill.interop.datasets.save_verl``:
    custom_reward_function:
      path: <site-packages>/codemill/interop/verl_reward.py
      name: compute_score

veRL calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` once per
response. The response is read as a patch-mode answer (``codemill.rollouts.patch_mode``: line
edits or search/replace blocks against the listing the prompt showed), turned into a diff and
graded by codemill's grader in a sandbox fork of the task's environment: hidden tests
restored, FAIL_TO_PASS and PASS_TO_PASS run. This is one episode of a patch-mode session
(``codemill.rollouts.session``), so the score is what codemill's own rollout gives the same
answer: 1.0 resolved, 0.0 not (an unreadable answer too).

A masked reward (the sandbox failed, or the grader reached no verdict) is ``nan``, never 0.0:
codemill does not turn an error into a reward. Drop those samples (or fail the step) rather
than train on them. A row from another ``data_source``, or whose ``ground_truth`` is not the
task its ``extra_info`` names, raises ``ValueError``.

The module imports codemill only; the file loads by path (veRL's ``spec_from_file_location``)
as long as codemill is installed in the reward worker's environment, and the worker can reach
the ``home`` the rows name (the environments and the patch-context cache live there).
"""

from __future__ import annotations

import math
from typing import Any

from codemill.interop.datasets import DATA_SOURCE, records_of
from codemill.rollouts.session import SessionConfig, open_session

__all__ = ["compute_score"]


def compute_score(data_source: str, solution_str: str, ground_truth: str,
                  extra_info: dict[str, Any] | None = None) -> float:
    """The grader's value of ``solution_str`` as a patch-mode answer to the row's task
    (see the module docstring)."""
    if data_source != DATA_SOURCE:
        raise ValueError(f"not a codemill row: data_source {data_source!r}")
    if not extra_info or extra_info.get("task_id") != ground_truth:
        raise ValueError(f"extra_info does not name the task {ground_truth!r}: export the "
                         "rows with codemill.interop.datasets.save_verl")
    task, env, home, settings = records_of(extra_info)
    config = SessionConfig(answer_format=extra_info.get("answer_format", "lines"),
                           policy="verl")
    with open_session(task, env, home, settings, "patch", config=config) as session:
        session.reset()
        session.step(solution_str)
        reward = session.grade()
    return math.nan if reward.value is None else float(reward.value)
