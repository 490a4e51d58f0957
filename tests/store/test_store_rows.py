"""Core records to rows, and each record type written to its table and read back."""

from __future__ import annotations

import json

import pytest

from codemill.core.records import (
    EnvSpec,
    EnvStatus,
    Message,
    ModelReply,
    Outcome,
    RepoSnapshot,
    Reward,
    SourceKind,
    Step,
    StopReason,
    TaskKind,
    TaskSpec,
    TestCaseResult,
    TestReport,
    ToolCall,
    Trajectory,
)
from codemill.store.rows import record_to_row, step_rows, table_for, test_result_rows
from codemill.store.schemas import TABLES

SNAP = RepoSnapshot(snapshot_id="s1", source="https://x/y.git@v1", source_kind=SourceKind.GIT,
                    commit="abc", path="/store/s1", n_files=3, n_bytes=99, name="y",
                    created_at="2021-02-03T04:05:06+00:00")
ENV = EnvSpec(env_id="e1", snapshot_id="s1", python="3.11.2", python_path="/usr/bin/python3",
              lock_hash="l1", lock="a==1\n", builder_version="b1", venv_path="/envs/l1",
              test_command=("python", "-m", "pytest"), status=EnvStatus.USABLE, n_tests=4,
              env_vars=(("SETUPTOOLS_SCM_PRETEND_VERSION", "1.0"),))
TASK = TaskSpec(task_id="t1", env_id="e1", kind=TaskKind.SYNTH, broken_patch="-a\n+b\n",
                gold_patch="-b\n+a\n", fail_to_pass=("t.py::a",), pass_to_pass=("t.py::b",),
                problem_statement="fix it", metadata={"operator": "flip", "lines": 1})
REPLY = ModelReply(message=Message(role="assistant", content="ls", tool_calls=(
    ToolCall(id="c1", name="bash", arguments={"cmd": "ls"}),)), prompt_tokens=10,
    completion_tokens=5, finish_reason="tool_calls", token_ids=(1, 2), logprobs=(-0.5, -0.1))
TRAJ = Trajectory(rollout_id="r1", task_id="t1", policy="scripted", steps=(
    Step(index=0, reply=REPLY, observations=(Message(role="tool", content="a.py",
                                                     tool_call_id="c1"),)),
    Step(index=1, reply=REPLY)), stop_reason=StopReason.SUBMITTED, diff="+x")
REWARD = Reward(reward_id="w1", rollout_id="r1", task_id="t1", env_id="e1", value=None,
                resolved=None, masked=True, error_type="infra:sandbox",
                flags=("touched_tests",), test_command=("pytest",))
REPORT = TestReport(command=("pytest", "-q"), exit_code=1, duration_s=1.5, parser_version="p1",
                    results=(TestCaseResult(node_id="t.py::a", outcome=Outcome.FAILED,
                                            message="boom"),
                             TestCaseResult(node_id="t.py::b", outcome=Outcome.PASSED)))


def test_records_map_to_flat_rows_of_their_table():
    for record in (SNAP, ENV, TASK, TRAJ, REWARD, REPORT.results[0]):
        row = record_to_row(record)
        table = table_for(record)
        assert set(row) <= set(TABLES[table].names), (table, set(row) - set(TABLES[table].names))
        assert all(not isinstance(v, (dict, list, tuple)) for v in row.values())
    env = record_to_row(ENV)
    assert env["status"] == "usable" and type(env["status"]) is str
    assert json.loads(env["test_command"]) == ["python", "-m", "pytest"]
    assert json.loads(env["env_vars"]) == [["SETUPTOOLS_SCM_PRETEND_VERSION", "1.0"]]
    assert record_to_row(SNAP)["source_date"] == SNAP.created_at  # not the row's created_at
    assert "created_at" not in record_to_row(SNAP)
    assert json.loads(record_to_row(TASK)["metadata"]) == {"lines": 1, "operator": "flip"}


def test_trajectory_is_a_rollout_row_plus_step_rows():
    row = record_to_row(TRAJ)
    assert "steps" not in row
    assert (row["n_steps"], row["prompt_tokens"], row["completion_tokens"]) == (2, 20, 10)
    assert row["stop_reason"] == "submitted"
    steps = step_rows(TRAJ)
    assert [s["step_index"] for s in steps] == [0, 1]
    assert json.loads(steps[0]["tool_calls"])[0]["arguments"] == {"cmd": "ls"}
    assert json.loads(steps[0]["observations"])[0]["content"] == "a.py"
    assert json.loads(steps[0]["token_ids"]) == [1, 2]
    with pytest.raises(TypeError, match="step_rows"):
        record_to_row(TRAJ.steps[0])


def test_test_report_rows_carry_report_fields():
    rows = test_result_rows(REPORT, env_id="e1", run_index=2, phase="baseline")
    assert [r["node_id"] for r in rows] == ["t.py::a", "t.py::b"]
    assert rows[0]["outcome"] == "failed" and rows[0]["message"] == "boom"
    assert {r["run_index"] for r in rows} == {2}
    assert {r["exit_code"] for r in rows} == {1}
    assert json.loads(rows[1]["command"]) == ["pytest", "-q"]


def test_every_record_round_trips_through_its_table(shared_ledger):
    run = "run-rows-roundtrip"
    batches = {
        "snapshots": [record_to_row(SNAP)], "environments": [record_to_row(ENV)],
        "tasks": [record_to_row(TASK)], "rollouts": [record_to_row(TRAJ)],
        "steps": step_rows(TRAJ), "rewards": [record_to_row(REWARD)],
        "test_results": test_result_rows(REPORT, env_id="e1"),
    }
    for table, rows in batches.items():
        with shared_ledger.writer(table, run_id=run, asset=table, config_hash="c") as w:
            w.add_many(rows)
        back = shared_ledger.read(table, row_filter=f"run_id == '{run}'").to_pylist()
        assert len(back) == len(rows), table
        for got in back:
            assert got["code_version"] and got["created_at"].tzinfo is not None
        # Compare as sets of the written columns: storage order is not part of the contract.
        assert sorted(repr(sorted((k, g[k]) for k in rows[0])) for g in back) == sorted(
            repr(sorted(w.items())) for w in rows), table
    reward = shared_ledger.read("rewards", row_filter=f"run_id == '{run}'").to_pylist()[0]
    assert reward["value"] is None and reward["masked"] is True  # masked, never a zero


def test_unknown_record_type_has_no_table():
    with pytest.raises(TypeError, match="no ledger table"):
        record_to_row(REPLY)
