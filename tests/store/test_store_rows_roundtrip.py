"""Records survive the trip to a ledger row and back (JSON columns, enums, renames, None)."""

from codemill.core.records import RepoSnapshot, Reward, TaskSpec
from codemill.store.rows import record_to_row, row_to_record


def test_round_trip_of_core_records():
    task = TaskSpec(task_id="a", env_id="b", kind="synth", broken_patch="x", gold_patch="y",
                    fail_to_pass=("t1",), pass_to_pass=(), problem_statement="p",
                    metadata={"k": 1, "weak": False})
    snap = RepoSnapshot(snapshot_id="s", source="x", source_kind="local", path="/p",
                        n_files=1, n_bytes=2, created_at="2020-01-01")
    masked = Reward(reward_id="r", rollout_id="x", task_id="t", env_id="e", value=None,
                    resolved=None, masked=True, flags=("touched_tests",),
                    p2p_regressions=("q",), error_type="infra:sandbox")
    for record in (task, snap, masked):
        row = record_to_row(record)
        row.update(run_id="run-1", created_at="2026-01-01")  # ledger columns are ignored
        assert row_to_record(type(record), row) == record


def test_columns_missing_from_old_rows_take_defaults():
    row = record_to_row(Reward(reward_id="r", rollout_id="x", task_id="t", env_id="e",
                               value=1.0, resolved=True))
    del row["flags"]
    row["grading_seconds"] = None
    back = row_to_record(Reward, row)
    assert back.flags == () and back.grading_seconds == 0.0 and back.value == 1.0
