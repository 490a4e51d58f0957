"""The factory's write path for commands (``factory.record``) and the one lookup
(``factory.lookup``), on a real ledger in a temp dir: rows recorded, tagged with their
asset, found again by id, prefix and SWE-bench ``instance_id``; the export fills ``repo``
and ``base_commit`` for git, PyPI and local sources; the CLI's read side cannot write."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from codemill.core.errors import BuildError, FactoryError, TaskError
from codemill.core.records import (
    EnvSpec,
    EnvStatus,
    Message,
    ModelReply,
    RepoSnapshot,
    SourceKind,
    Step,
    StopReason,
    TaskKind,
    TaskSpec,
    ToolCall,
    Trajectory,
)
from codemill.factory.lookup import env_for_snapshot, find_env, find_task, load_tasks
from codemill.factory.record import recorded_run
from codemill.store.reader import LedgerReader
from codemill.store.rows import step_rows, trajectory_from_rows
from codemill.tasks.records import task_id
from codemill.tasks.swebench import read_instances, to_instance, write_jsonl

SNAPS = {
    "git": RepoSnapshot(snapshot_id="a" * 64, source="https://example.invalid/o/calc.git@v1",
                        source_kind=SourceKind.GIT, commit="c" * 40, path="/x", n_files=1,
                        n_bytes=1, name="calc"),
    "pypi": RepoSnapshot(snapshot_id="b" * 64, source="pypi:toolz==0.12.0",
                         source_kind=SourceKind.PYPI, commit="sha256:" + "d" * 64, path="/y",
                         n_files=1, n_bytes=1, name="toolz"),
    "local": RepoSnapshot(snapshot_id="e" * 64, source="/work/proj",
                          source_kind=SourceKind.LOCAL, path="/z", n_files=1, n_bytes=1,
                          name="proj"),
}


def _env(kind: str, venv: str) -> EnvSpec:
    snap = SNAPS[kind]
    return EnvSpec(env_id=snap.snapshot_id[:1] * 8 + "0" * 56, snapshot_id=snap.snapshot_id,
                   python="3.11.2", python_path="/usr/bin/python3", lock_hash="f" * 64,
                   builder_version="1", venv_path=venv, status=EnvStatus.USABLE)


def _task(env_id: str, n: int, **meta: str) -> TaskSpec:
    f2p = (f"tests/test_m.py::test_{n}",)
    return TaskSpec(task_id=task_id(env_id, f"broken {n}", "", f2p, ()), env_id=env_id,
                    kind=TaskKind.SYNTH, broken_patch=f"broken {n}", gold_patch="gold",
                    fail_to_pass=f2p, pass_to_pass=(), problem_statement=f"issue {n}",
                    metadata=meta)


@pytest.fixture
def recorded(settings, tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    envs = {k: _env(k, str(venv)) for k in SNAPS}
    tasks = [_task(envs["git"].env_id, 1), _task(envs["pypi"].env_id, 2),
             _task(envs["local"].env_id, 3, instance_id="psf__requests-1234")]
    with recorded_run(settings, "test", {"n": len(tasks)}) as rec:
        for kind in SNAPS:
            rec.add(SNAPS[kind])
            rec.add(envs[kind])
        for t in tasks:
            rec.add(t)
        rec.summary["tasks"] = len(tasks)
        run_id = rec.run_id
    return envs, tasks, run_id


def test_recorded_rows_carry_their_assets_and_the_run(settings, recorded):
    envs, tasks, run_id = recorded
    with LedgerReader.open(settings) as reader:
        assert not hasattr(reader, "writer") and not hasattr(reader, "start_run")
        rows = reader.read("environments").to_pylist()
        assert {r["run_id"] for r in rows} == {run_id}
        for table, asset in (("environments", "environments"), ("tasks", "tasks"),
                             ("snapshots", "snapshots")):
            summary = reader.load_table(table).current_snapshot().summary
            assert (summary["asset"], summary["run_id"]) == (asset, run_id)
        runs = [r for r in reader.recent_runs() if r["run_id"] == run_id]
        assert runs and runs[0]["status"] == "ok"
        assert json.loads(runs[0]["summary_json"]) == {"tasks": 3}
        assert {t.task_id for t in load_tasks(reader)} == {t.task_id for t in tasks}
        env = env_for_snapshot(reader, SNAPS["pypi"].snapshot_id)
        assert env == envs["pypi"]
        assert find_env(reader, envs["git"].env_id[:6]) == envs["git"]
        with pytest.raises(BuildError, match="no environment with id 0000"):
            find_env(reader, "0000")
    with pytest.raises(FactoryError, match="not recorded by commands"), \
            recorded_run(settings, "bad", {}) as rec:
        rec.add({"x": 1}, "materializations")


def test_find_task_by_id_prefix_and_instance_id(settings, recorded):
    envs, tasks, _ = recorded
    with LedgerReader.open(settings) as reader:
        git_task, pypi_task, local_task = tasks
        assert find_task(reader, git_task.task_id) == git_task
        assert find_task(reader, pypi_task.task_id[:10]) == pypi_task
        exported = to_instance(pypi_task, SNAPS["pypi"])["instance_id"]
        assert exported == f"toolz__codemill-{pypi_task.task_id[:12]}"
        assert find_task(reader, exported) == pypi_task
        assert find_task(reader, "psf__requests-1234") == local_task  # an imported id
        with pytest.raises(TaskError, match="no task id"):
            find_task(reader, "calc__codemill-000000000000")


def test_export_fills_repo_and_base_commit_for_every_source_kind(settings, recorded,
                                                                   tmp_path):
    envs, tasks, _ = recorded
    snaps = {envs[k].env_id: SNAPS[k] for k in SNAPS}
    assert write_jsonl(tasks, tmp_path / "t.jsonl", snaps) == 3
    by_task = {r["codemill_task_id"]: r for r in read_instances(tmp_path / "t.jsonl")}
    git, pypi, local = (by_task[t.task_id] for t in tasks)
    assert (git["repo"], git["base_commit"]) == ("https://example.invalid/o/calc.git",
                                                 "c" * 40)
    assert (pypi["repo"], pypi["version"], pypi["base_commit"]) == (
        "pypi:toolz", "0.12.0", "sha256:" + "d" * 64)
    assert (local["repo"], local["base_commit"]) == ("/work/proj", "e" * 64)


def test_cli_takes_an_instance_id(settings, recorded):
    _, tasks, _ = recorded
    iid = to_instance(tasks[0], SNAPS["git"])["instance_id"]
    env = {**os.environ, "CODEMILL_HOME": str(settings.home)}
    out = subprocess.run([sys.executable, "-m", "codemill.cli.main", "tasks", "show", iid,
                          "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["task_id"] == tasks[0].task_id


def test_trajectory_reads_back_from_its_rows():
    call = ToolCall(id="1", name="bash", arguments={"cmd": "ls"})
    traj = Trajectory(
        rollout_id="r1", task_id="t1", policy="p", stop_reason=StopReason.SUBMITTED,
        diff="--- a\n+++ b\n", steps=(Step(index=0, reply=ModelReply(
            message=Message(role="assistant", content="hi", tool_calls=(call,)),
            prompt_tokens=3, completion_tokens=2, token_ids=(1, 2), logprobs=(-0.5, -0.1)),
            observations=(Message(role="tool", content="a b", tool_call_id="1"),)),))
    from codemill.store.rows import record_to_row

    assert trajectory_from_rows(record_to_row(traj), step_rows(traj)) == traj


def test_baseline_runs_read_back_from_test_results_rows():
    from codemill.core.records import Outcome, TestCaseResult, TestReport
    from codemill.store.rows import reports_from_rows, test_result_rows
    from codemill.testing.baseline import summarize

    def report(outcome: Outcome) -> TestReport:
        return TestReport(command=("python", "-m", "pytest"), exit_code=1, duration_s=1.5,
                          parser_version="junit", results=(
                              TestCaseResult(node_id="t.py::a", outcome=Outcome.PASSED,
                                             duration_s=0.5),
                              TestCaseResult(node_id="t.py::b", outcome=outcome)))

    runs = [report(Outcome.PASSED), report(Outcome.FAILED)]
    rows = [row for i, r in enumerate(runs)
            for row in test_result_rows(r, env_id="e", run_index=i, phase="baseline")]
    back = reports_from_rows(rows)
    assert back == runs
    base = summarize(back)
    assert base.flaky == {"t.py::b"} and base.passing == {"t.py::a"}
    assert base.runs == 2 and base.cost(["t.py::a"]) == 0.5
