"""The eval statistics on constructed data: estimators against closed forms, the paired
test against hand-computed values, the contamination guard on lineage rows."""

from __future__ import annotations

import json
import math

import pytest

from codemill.evals import contamination as C
from codemill.evals.compare import compare
from codemill.evals.measures import score
from codemill.evals.stats import cohen_kappa, mcnemar_exact, mean_pass_at_k, pass_at_k
from codemill.evals.suites import SuiteSelection, SuiteTask, difficulty, select_tasks


@pytest.mark.parametrize("n,c,k", [(10, 3, 1), (10, 3, 5), (20, 1, 10), (5, 0, 2), (7, 7, 3)])
def test_pass_at_k_matches_the_closed_form(n, c, k):
    # P(at least one of k draws without replacement passes) = 1 - prod_{i<k} (n-c-i)/(n-i)
    closed = 1 - math.prod((n - c - i) / (n - i) for i in range(k))
    assert pass_at_k(n, c, k) == pytest.approx(closed)
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_suite_pass_at_k_averages_tasks_and_skips_short_ones():
    counts = [(4, 1), (4, 0), (2, 2)]
    # k=3: the task with 2 samples has no estimate and is left out
    assert mean_pass_at_k(counts, 3) == pytest.approx((pass_at_k(4, 1, 3) + 0.0) / 2)
    assert mean_pass_at_k([(1, 0)], 2) is None


def _s(task, i, resolved, masked=False, project="p"):
    return {"task_id": task, "sample_index": i, "resolved": None if masked else resolved,
            "masked": masked, "project": project, "kind": "synth", "difficulty": "easy",
            "tokens": 10, "model_seconds": 1.0, "sandbox_seconds": 2.0,
            "stop_reason": "submitted", "error_type": "infra:sandbox" if masked else None}


def test_score_keeps_masked_out_of_the_rate_and_counts_them():
    rows = [_s("a", 0, True), _s("a", 1, False), _s("b", 0, False), _s("b", 1, True, True)]
    sc = score(rows, k=2)
    assert (sc.attempts, sc.graded, sc.masked) == (4, 3, 1)
    assert sc.pass1.successes == 1 and sc.pass1.n == 3  # the masked one is not a failure
    assert sc.masked_rate == 0.25 and sc.masked_reasons == {"infra:sandbox": 1}
    assert sc.pass_k[1].n_tasks == 1  # task b has one graded attempt: no pass@2 for it
    assert sc.pass_k[1].value == pytest.approx(1.0)
    assert sc.cost.tokens_per_resolved == 40 and sc.cost.tokens == 10
    assert sc.pass1.low < 1 / 3 < sc.pass1.high


def test_mcnemar_exact_against_hand_values():
    assert mcnemar_exact(0, 0) == 1.0
    # 0 vs 6 discordant: 2 * (1/2)^6
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    # 1 vs 9: 2 * (1 + 10) / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(5, 5) == 1.0


def test_paired_comparison_on_constructed_data():
    tasks = [f"t{i:02d}" for i in range(20)]
    a = [_s(t, 0, i < 5) for i, t in enumerate(tasks)]          # A solves t00-t04
    b = [_s(t, 0, 2 <= i < 14) for i, t in enumerate(tasks)]    # B solves t02-t13
    b[19] = _s("t19", 0, None, masked=True)
    cmp = compare("A", a, "B", b)
    assert cmp.pairs == 19 and cmp.dropped_masked == 1
    assert (cmp.only_a, cmp.only_b) == (2, 9)
    assert cmp.p_value == pytest.approx(mcnemar_exact(2, 9))
    assert cmp.diff == pytest.approx((12 - 5) / 19)
    assert cmp.diff_low < cmp.diff < cmp.diff_high
    assert cmp.diff_low > 0  # 9 vs 2 flips over 19 tasks: the interval excludes zero
    assert [f.task_id for f in cmp.flips] == ["t00", "t01"] + [f"t{i:02d}" for i in
                                                               range(5, 14)]
    same = compare("A", a, "A2", a)
    assert same.diff == 0 and same.p_value == 1.0 and not same.flips


def test_cohen_kappa():
    assert cohen_kappa([(True, True), (False, False)]) == 1.0
    assert cohen_kappa([(True, False), (False, True)]) == -1.0
    assert cohen_kappa([(True, True)] * 3) is None


def _task(tid, env, project):
    return SuiteTask(task_id=tid, env_id=env, project=project, kind="synth",
                     difficulty="easy", strength="strong")


def test_contamination_guard_follows_the_parent_chain_and_refuses():
    suite = [_task("t1", "e1", "toolz"), _task("t2", "e2", "semver"),
             _task("t3", "e3", "iniconfig")]
    env_snapshot = {"e1": "s1", "e2": "s2", "e3": "s3", "e9": "s9"}
    projects = {"s1": "toolz", "s2": "semver", "s3": "iniconfig", "s9": "semver"}
    rows = [
        {"checkpoint_id": "sft1", "parent_id": None, "task_ids": json.dumps(["t1"]),
         "snapshot_ids": "[]", "env_ids": json.dumps(["e1"])},
        # the GRPO child trained on another version of semver (snapshot s9)
        {"checkpoint_id": "grpo2", "parent_id": "sft1", "task_ids": "[]",
         "snapshot_ids": json.dumps(["s9"]), "env_ids": "[]"},
        {"checkpoint_id": "clean", "parent_id": None, "task_ids": json.dumps(["x"]),
         "snapshot_ids": "[]", "env_ids": "[]"},
    ]
    report = C.check("grpo2", rows, suite, env_snapshot=env_snapshot,
                     snapshot_project=projects)
    assert report.chain == ("grpo2", "sft1")
    assert report.tasks == ("t1",) and report.snapshots == ("s1",)
    assert report.projects == ("semver", "toolz") and report.affected == ("t1", "t2")
    with pytest.raises(C.ContaminationError, match="2 suite task"):
        C.guard(report, allow_contaminated=False)
    C.guard(report, allow_contaminated=True)  # allowed: marked, not refused
    ok = C.check("clean", rows, suite, env_snapshot=env_snapshot, snapshot_project=projects)
    assert not ok.contaminated and ok.lineage_known
    assert not C.check(None, rows, suite, env_snapshot={}, snapshot_project={}).lineage_known
    with pytest.raises(Exception, match="no row"):
        C.check("ghost", rows, suite, env_snapshot=env_snapshot, snapshot_project=projects)


def test_selection_filters_and_stratified_limit():
    tasks = [_task(f"a{i}", "e", "toolz") for i in range(10)] + \
            [_task(f"b{i}", "e", "semver") for i in range(3)]
    picked = select_tasks(tasks, SuiteSelection(limit=6, sample_seed=1))
    assert len(picked) == 6 and sum(t.project == "semver" for t in picked) == 3
    assert picked == select_tasks(tasks, SuiteSelection(limit=6, sample_seed=1))
    assert {t.project for t in select_tasks(tasks, SuiteSelection(projects=("semver",)))} == \
        {"semver"}
    assert difficulty({"lines_changed": 2, "files_changed": 1}) == "easy"
    assert difficulty({"lines_changed": 30, "files_changed": 1}) == "hard"
