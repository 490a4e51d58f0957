"""The report shows what a user ran, without any suite: after rollouts are recorded on an
environment, ``codemill report`` lists the environment (source, status, pass fraction), its
tasks by kind, every rollout with its reward and flags, and opens a trajectory."""

from __future__ import annotations

from codemill.report.data import collect
from codemill.report.html import render
from codemill.rollouts.plan import RolloutConfig
from codemill.rollouts.runner import run_rollouts
from codemill.store.rows import record_to_row, step_rows

from .conftest import seed


def test_runs_without_a_suite_are_in_the_report(world, toy):
    settings, snap, tasks = world
    before = render(collect(settings))
    assert "no run recorded yet" not in before and "no suite defined yet" in before
    batch = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=settings,
                         model="scripted:look-then-submit", config=RolloutConfig(group_size=2))
    assert len(batch.results) == 2
    # Recorded as the pipeline's rollouts asset writes them (the env id set on the row).
    rows = [{**record_to_row(r.trajectory), "env_id": toy.env.env_id} for r in batch.results]
    seed(settings, {"rollouts": rows,
                    "steps": [s for r in batch.results for s in step_rows(r.trajectory)],
                    "rewards": [r.reward for r in batch.results]})

    data = collect(settings)
    assert data.suites == []
    [run] = [r for r in data.runs if r.env_id == toy.env.env_id]
    assert run.source == snap.source and run.n_tests == toy.env.n_tests
    assert sum(run.tasks_by_kind.values()) == len(tasks)
    assert len(run.rollouts) == 2
    assert all(ro["reward"].get("value") == 0.0 for ro in run.rollouts)
    assert len(run.trajectories) == 1 and run.trajectories[0]["steps"]
    html = render(data)
    assert f"Environment {toy.env.env_id[:12]}" in html and "rollouts: 2" in html
    assert html.count("<td>scripted:look-then-submit</td>") == 2
    assert "details class='traj'" in html and "no suite defined yet" in html
