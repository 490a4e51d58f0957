"""An eval is scored on every attempt it planned: a lost or ungraded one is a masked row."""

from __future__ import annotations

from types import SimpleNamespace

from codemill.evals.measures import score
from codemill.factory.evaluation import _lost_rollout, _sample_row


def test_lost_and_ungraded_attempts_are_counted_as_masked():
    suite = SimpleNamespace(suite_id="s")
    member = SimpleNamespace(task_id="t", project="calc", kind="synth", difficulty="easy")
    graded = {"rollout_id": "r0", "sample_index": 0, "stop_reason": "submitted"}
    ungraded = {"rollout_id": "r1", "sample_index": 1, "stop_reason": "submitted"}
    lost = _lost_rollout(SimpleNamespace(rollout_id="r2", sample_index=2))
    reward = {"resolved": True, "masked": False, "flags": "[]", "error_type": None}
    rows = [_sample_row("e", suite, "v", member, graded, reward, [], False),
            _sample_row("e", suite, "v", member, ungraded, None, [], False),
            _sample_row("e", suite, "v", member, lost, None, [], False, lost=True)]
    assert [r["error_type"] for r in rows] == [None, "infra:ungraded", "infra:worker"]
    sc = score(rows, 1)
    assert (sc.attempts, sc.graded, sc.masked) == (3, 1, 2)
    assert sc.masked_reasons == {"infra:ungraded": 1, "infra:worker": 1}
