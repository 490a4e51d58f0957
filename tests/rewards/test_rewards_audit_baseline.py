"""The gold run's audit evidence is the baseline a candidate's is compared with, and it is
kept per task for the process's life: a second candidate of the same task with run-time
evidence is judged against the kept baseline, with the same reward, without running the
gold state again. Runs the grader for real on the toy task (bwrap)."""

from __future__ import annotations

from codemill.rewards import flags as F
from codemill.rewards.grader import AuditBaselines, grade_detailed
from codemill.tasks.patches import file_diff

from .toyproject import BROKEN_OPS, FILES

# The fix, with its module run through exec of text (what code generators do): audit
# evidence the gold state does not have.
EXEC_FIX = "exec('def _made():\\n    return 1\\n')\n\n\n" + FILES["src/calc/ops.py"]


def test_a_second_candidate_is_judged_against_the_kept_gold_baseline(toy):
    task = toy.task.model_copy(update={"task_id": toy.task.task_id + "-audit-baseline"})
    diff = file_diff("src/calc/ops.py", BROKEN_OPS.encode(), EXEC_FIX.encode())
    first, second = (grade_detailed(task, diff, env=toy.env, home=toy.home,
                                    settings=toy.settings, rollout_id=f"exec-{i}",
                                    policy="exec") for i in range(2))
    for g in (first, second):
        assert g.reward.value == 0.0 and F.AUDIT["exec"] in g.reward.flags, (g.reward, g.notes)
    assert first.gold_ran and not second.gold_ran
    assert first.reward.flags == second.reward.flags


def test_the_kept_baselines_are_bounded_and_least_recently_used_go_first():
    kept = AuditBaselines(size=2)
    kept.put(("a",), ("exec:x",))
    kept.put(("b",), ())
    assert kept.get(("a",)) == ("exec:x",)  # a is now the most recent
    kept.put(("c",), ("frame:y",))
    assert kept.get(("b",)) is None and kept.get(("a",)) == ("exec:x",)
    assert kept.get(("c",)) == ("frame:y",)
