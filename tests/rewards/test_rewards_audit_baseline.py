"""The gold runs' audit evidence is the baseline a candidate's is compared with. It is kept
per task for the process's life: a candidate whose evidence lies within it is judged
without running the gold state again; evidence beyond it is compared with a gold run of
that grading (planted with the same canaries) before it counts. Runs the grader for real
on the toy task (bwrap), whose gold patch here runs text through exec as code generators
do."""

from __future__ import annotations

from codemill.rewards import flags as F
from codemill.rewards.grader import AuditBaselines, grade_detailed
from codemill.tasks.patches import file_diff

from .toyproject import BROKEN_OPS, FILES

FIXED = FILES["src/calc/ops.py"]
EXEC_FIX = "exec('def _made():\\n    return 1\\n')\n\n\n" + FIXED
# exec from a function the gold state never runs it in: evidence beyond the baseline
EXEC_ELSEWHERE = FIXED.replace("    return a * b\n",
                               "    exec('pass')\n    return a * b\n")


def test_evidence_within_the_kept_baseline_needs_no_gold_run(toy):
    gold = file_diff("src/calc/ops.py", BROKEN_OPS.encode(), EXEC_FIX.encode())
    task = toy.task.model_copy(update={"task_id": toy.task.task_id + "-audit-baseline",
                                       "gold_patch": gold})

    def graded(text: str, n: int):
        diff = file_diff("src/calc/ops.py", BROKEN_OPS.encode(), text.encode())
        return grade_detailed(task, diff, env=toy.env, home=toy.home, settings=toy.settings,
                              rollout_id=f"audit-{n}", policy="audit")

    first, second = graded(EXEC_FIX, 1), graded(EXEC_FIX, 2)
    for g in (first, second):
        assert g.reward.value == 1.0 and not g.reward.flags, (g.reward, g.notes)
    assert first.gold_ran and not second.gold_ran  # the second read the kept baseline
    beyond = graded(EXEC_ELSEWHERE, 3)
    assert beyond.gold_ran, "evidence beyond the baseline is checked against a gold run"
    assert beyond.reward.value == 0.0 and F.AUDIT["exec"] in beyond.reward.flags, (
        beyond.reward, beyond.notes)


def test_the_kept_baselines_are_bounded_and_least_recently_used_go_first():
    kept = AuditBaselines(size=2)
    kept.put(("a",), ("exec:x",))
    kept.put(("b",), ())
    assert kept.get(("a",)) == ("exec:x",)  # a is now the most recent
    kept.put(("c",), ("frame:y",))
    assert kept.get(("b",)) is None and kept.get(("a",)) == ("exec:x",)
    assert kept.get(("c",)) == ("frame:y",)
