"""materialize/plan against a real temp Iceberg ledger: hits, invalidation, failures."""

import json

import pytest

from codemill.core.errors import BuildError, FactoryError
from codemill.core.ids import content_id
from codemill.core.records import RepoSnapshot, SourceKind
from codemill.factory import Registry, materialize, plan

from .work import square_or_fail


def _pipeline(calls: list, env_version: str = "1", env_fails: bool = False) -> Registry:
    """snapshots -> environments -> tasks, and rewards beside them on snapshots."""
    reg = Registry()

    @reg.asset("snapshots", "1")
    def snapshots(ctx):
        calls.append("snapshots")
        for i in range(ctx.config.get("n", 3)):
            yield RepoSnapshot(snapshot_id=content_id("snap", i), source=f"s{i}",
                               source_kind=SourceKind.LOCAL, path=f"/x/{i}", n_files=i,
                               n_bytes=0, created_at="2024-01-01")

    @reg.asset("environments", env_version, deps=("snapshots",))
    def environments(ctx):
        calls.append("environments")
        if env_fails:
            raise BuildError("no interpreter", "python 9.9 not found")
        for snap in ctx.upstream("snapshots").to_pylist():
            yield {"env_id": content_id("env", snap["snapshot_id"], env_version),
                   "snapshot_id": snap["snapshot_id"], "status": "usable"}

    @reg.asset("tasks", "1", deps=("environments",))
    def tasks(ctx):
        calls.append("tasks")
        envs = ctx.upstream("environments", columns=["env_id"]).column("env_id").to_pylist()
        return [{"task_id": content_id("task", e), "env_id": e, "kind": "synth"} for e in envs]

    @reg.asset("rewards", "1", deps=("snapshots",))
    def rewards(ctx):
        calls.append("rewards")
        return [{"reward_id": "r1", "value": None, "masked": True}]

    return reg


def _count(ledger, table):
    return ledger.read(table).num_rows


def test_second_materialize_is_a_cache_hit(settings, ledger):
    calls = []
    reg = _pipeline(calls)
    first = materialize(["tasks"], {"snapshots": {"n": 3}}, settings, registry=reg,
                        ledger=ledger)
    assert first.ok and calls == ["snapshots", "environments", "tasks"]
    assert [o.status for o in first.outcomes.values()] == ["success"] * 3
    assert [o.rows for o in first.outcomes.values()] == [3, 3, 3]
    snap = ledger.read("snapshots").to_pylist()[0]
    assert snap["source_date"] == "2024-01-01" and snap["run_id"] == first.run_id
    sizes = {t: _count(ledger, t) for t in ("snapshots", "environments", "tasks")}

    again = materialize(["tasks"], {"snapshots": {"n": 3}}, settings, registry=reg,
                        ledger=ledger)
    assert calls == ["snapshots", "environments", "tasks"]  # nothing ran
    assert [o.status for o in again.outcomes.values()] == ["cached"] * 3
    assert all(first.run_id in o.reason for o in again.outcomes.values())
    assert {t: _count(ledger, t) for t in sizes} == sizes
    mats = ledger.read("materializations").to_pylist()
    assert len(mats) == 3 and {m["status"] for m in mats} == {"success"}
    assert {m["asset_version"] for m in mats} == {"1"} and all(m["run_id"] == first.run_id
                                                              for m in mats)
    runs = ledger.recent_runs()
    assert {r["run_id"]: r["status"] for r in runs} == {first.run_id: "success",
                                                       again.run_id: "success"}
    started = [r for r in ledger.read("runs").to_pylist() if r["run_id"] == first.run_id]
    plan_json = json.loads(started[0]["config_json"])["plan"]
    assert plan_json["tasks"] == {"action": "run", "cache_key": first.outcomes["tasks"].cache_key}


def test_code_version_or_config_change_reruns_and_invalidates_downstream(settings, ledger):
    calls = []
    cfg = {"snapshots": {"n": 2}}
    materialize(None, cfg, settings, registry=_pipeline(calls), ledger=ledger)
    assert sorted(calls) == ["environments", "rewards", "snapshots", "tasks"]

    v2 = _pipeline(calls, env_version="2")
    p = plan(["tasks"], cfg, settings, registry=v2, ledger=ledger)
    assert [(s.asset, s.action) for s in p.steps] == [
        ("snapshots", "cached"), ("environments", "run"), ("tasks", "run")]
    assert p.step("environments").reason == "code version changed 1 -> 2"
    assert p.step("tasks").reason == "upstream changed: environments"
    calls.clear()
    res = materialize(None, cfg, settings, registry=v2, ledger=ledger)
    assert calls == ["environments", "tasks"] and res.outcomes["rewards"].status == "cached"

    calls.clear()
    bigger = {"snapshots": {"n": 4}}
    p = plan(None, bigger, settings, registry=v2, ledger=ledger)
    assert p.step("snapshots").reason == "config changed"
    assert p.step("rewards").reason == "upstream changed: snapshots"
    res = materialize(None, bigger, settings, registry=v2, ledger=ledger)
    assert res.ok and sorted(calls) == ["environments", "rewards", "snapshots", "tasks"]

    # Keys are content ids: going back to an earlier config is a hit again.
    assert plan(None, cfg, settings, registry=v2, ledger=ledger).to_run == []
    with pytest.raises(FactoryError, match="unknown asset.*: snapshotz"):
        plan(None, {"snapshotz": {}}, settings, registry=v2, ledger=ledger)


def test_failed_asset_is_recorded_and_stops_only_its_downstream(settings, ledger):
    calls = []
    res = materialize(None, {}, settings, registry=_pipeline(calls, env_fails=True),
                      ledger=ledger)
    assert not res.ok
    status = {n: o.status for n, o in res.outcomes.items()}
    assert status == {"snapshots": "success", "environments": "failed", "tasks": "skipped",
                      "rewards": "success"}
    assert res.outcomes["environments"].error == (
        "BuildError: no interpreter: python 9.9 not found")
    assert res.outcomes["tasks"].reason == "upstream environments failed"
    assert "tasks" not in calls
    mats = {m["asset"]: m for m in ledger.read("materializations").to_pylist()}
    assert set(mats) == {"snapshots", "environments", "rewards"}
    assert mats["environments"]["status"] == "failed" and mats["environments"]["rows"] == 0
    assert "no interpreter" in mats["environments"]["error"]
    run = ledger.recent_runs()[0]
    assert run["status"] == "failed"
    assert json.loads(run["summary_json"])["tasks"]["status"] == "skipped"
    with pytest.raises(FactoryError) as err:
        res.raise_for_status()
    assert "failed: environments (BuildError" in str(err.value)
    assert "skipped: tasks" in str(err.value) and "\n" not in str(err.value)

    # Fixed without a version bump: the same key failed last time, so it runs again.
    fixed = _pipeline(calls)
    p = plan(None, {}, settings, registry=fixed, ledger=ledger)
    assert p.step("environments").reason.startswith("last attempt failed: BuildError")
    assert p.to_run == ["environments", "tasks"]
    assert materialize(None, {}, settings, registry=fixed, ledger=ledger).ok


def test_checks_and_bad_rows_fail_the_asset(settings, ledger):
    reg = Registry()

    def has_rows(rows):
        return len(rows) > 0 or "no rows"

    @reg.asset("snapshots", "1", checks=(has_rows,))
    def snapshots(ctx):
        return []

    @reg.asset("tasks", "1")
    def tasks(ctx):
        yield 42

    res = materialize(None, {}, settings, registry=reg, ledger=ledger)
    assert res.outcomes["snapshots"].error == "FactoryError: check has_rows failed: no rows"
    assert res.outcomes["tasks"].error == (
        "FactoryError: asset 'tasks' produced a int value; expected a record or a dict")


def test_asset_fans_out_on_the_executor(settings, ledger):
    reg = Registry()

    @reg.asset("evals", "1")
    def evals(ctx):
        seen = []
        for i, r in enumerate(ctx.executor.map(square_or_fail, range(6),
                                               progress=ctx.progress)):
            seen.append(r)
            value = None if isinstance(r, Exception) else float(r)
            yield {"eval_id": str(i), "value": value, "details": str(r)}

    progress = []
    res = materialize(None, {}, settings, registry=reg, ledger=ledger,
                      progress=lambda name, done, total: progress.append((name, done, total)))
    assert res.ok and res.outcomes["evals"].rows == 6
    rows = sorted(ledger.read("evals").to_pylist(), key=lambda r: r["eval_id"])
    assert [r["value"] for r in rows] == [0.0, 1.0, 4.0, None, 16.0, 25.0]
    assert "ValueError" in rows[3]["details"]
    assert progress[-1] == ("evals", 6, 6)
