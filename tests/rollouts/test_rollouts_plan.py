"""Rollout ids are content ids; a rerun plans only what is missing."""

from codemill.core.records import SamplingConfig, TaskKind, TaskSpec
from codemill.rollouts.plan import RolloutConfig, plan_rollouts, rollout_id, sample_sampling


def task(tid):
    return TaskSpec(task_id=tid, env_id="e", kind=TaskKind.SYNTH, broken_patch="",
                    gold_patch="", fail_to_pass=("t::a",), pass_to_pass=(),
                    problem_statement="fix")


def test_ids_depend_on_what_defines_a_sample():
    s = SamplingConfig(temperature=0.7, seed=1)
    base = rollout_id("t1", "p", s, 0)
    assert base == rollout_id("t1", "p", SamplingConfig(temperature=0.7, seed=1), 0)
    others = {rollout_id("t2", "p", s, 0), rollout_id("t1", "q", s, 0),
              rollout_id("t1", "p", s, 1), rollout_id("t1", "p", SamplingConfig(seed=1), 0)}
    assert base not in others and len(others) == 4


def test_rerun_plans_only_missing_and_never_duplicates():
    cfg = RolloutConfig(group_size=3)
    tasks = [task("t1"), task("t2"), task("t1")]
    first = plan_rollouts(tasks, "p", cfg)
    assert [(i.task.task_id, i.sample_index) for i in first] == [
        ("t1", 0), ("t1", 1), ("t1", 2), ("t2", 0), ("t2", 1), ("t2", 2)]
    assert len({i.rollout_id for i in first}) == 6
    done = {first[0].rollout_id, first[4].rollout_id}
    rest = plan_rollouts(tasks, "p", cfg, existing=done)
    assert [i.rollout_id for i in rest] == [i.rollout_id for i in first if i.rollout_id not in done]
    assert plan_rollouts(tasks, "p", cfg, existing={i.rollout_id for i in first}) == []


def test_per_sample_seed():
    assert sample_sampling(SamplingConfig(seed=10), 3).seed == 13
    assert sample_sampling(SamplingConfig(seed=None), 3).seed is None
