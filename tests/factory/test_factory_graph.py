"""The asset graph: order, cycles, unknown deps, declarations; cache keys and plan reasons."""

import json

import pytest

from codemill.core.errors import FactoryError
from codemill.factory.cache import build_plan, cache_key
from codemill.factory.graph import Registry, load_modules


def _noop(ctx):
    return []


def _graph(edges: dict[str, tuple[str, ...]], version: str = "1") -> Registry:
    reg = Registry()
    for name, deps in edges.items():
        reg.asset(name, version, deps=deps)(_noop)
    return reg


PIPE = {
    "rewards": ("rollouts", "tasks"),
    "rollouts": ("tasks",),
    "tasks": ("envs",),
    "envs": ("snapshots",),
    "snapshots": (),
    "evals": ("rewards",),
    "notes": (),
}


def test_order_puts_dependencies_first_and_takes_the_upstream_closure():
    reg = _graph(PIPE)
    names = [a.name for a in reg.order(["rewards"])]
    assert names == ["snapshots", "envs", "tasks", "rollouts", "rewards"]
    everything = [a.name for a in reg.order()]
    assert set(everything) == set(PIPE)
    for a in reg.order():
        assert all(everything.index(d) < everything.index(a.name) for d in a.deps)
    assert [a.name for a in reg.order()] == everything  # deterministic
    assert reg.downstream("tasks") == {"rollouts", "rewards", "evals"}
    assert [a.name for a in reg.order("envs")] == ["snapshots", "envs"]  # a single name


def test_cycle_is_one_clear_line():
    reg = _graph({"envs": ("tasks",), "tasks": ("rollouts",), "rollouts": ("envs",)})
    with pytest.raises(FactoryError) as err:
        reg.order(["envs"])
    msg = str(err.value)
    assert msg.startswith("asset cycle: ") and "\n" not in msg
    assert {"envs", "tasks", "rollouts"} <= set(msg.removeprefix("asset cycle: ").split(" -> "))


def test_unknown_assets_and_deps_are_named():
    reg = _graph({"envs": ("snapshotz",)})
    with pytest.raises(FactoryError, match="'envs' depends on unknown asset 'snapshotz'"):
        reg.order()
    with pytest.raises(FactoryError, match=r"unknown asset 'tasks' \(known: envs\)"):
        reg.order(["tasks"])


def test_declarations_are_checked():
    reg = Registry()
    with pytest.raises(FactoryError, match="lowercase"):
        reg.asset("Envs", "1")(_noop)
    with pytest.raises(FactoryError, match="depends on itself"):
        reg.asset("envs", "1", deps=("envs",))(_noop)
    reg.asset("envs", "1")(_noop)
    reg.asset("envs", "2")(_noop)  # the same function declared again replaces it

    def other(ctx):
        return []

    with pytest.raises(FactoryError, match="declared twice"):
        reg.asset("envs", "1")(other)


def test_cache_keys_chain_through_upstream():
    reg = _graph({"snapshots": (), "envs": ("snapshots",)})
    snaps, envs = reg.order()
    k_snap = cache_key(snaps, {}, {})
    k_env = cache_key(envs, {"snapshots": k_snap}, {})
    assert cache_key(envs, {"snapshots": k_snap}, {}) == k_env
    assert cache_key(envs, {"snapshots": k_snap}, {"python": "3.12"}) != k_env
    assert cache_key(envs, {"snapshots": cache_key(snaps, {}, {"x": 1})}, {}) != k_env
    bumped = _graph({"snapshots": (), "envs": ("snapshots",)}, version="2").order()
    assert cache_key(bumped[1], {"snapshots": k_snap}, {}) != k_env


def test_plan_reasons_against_the_latest_materialization():
    reg = _graph({"snapshots": (), "envs": ("snapshots",)})
    first = build_plan(reg.order(), {}, [])
    assert [(s.action, s.reason) for s in first.steps] == [("run", "new: never materialized")] * 2
    history = [
        {"asset": s.asset, "cache_key": s.cache_key, "asset_version": s.code_version,
         "upstream_json": json.dumps(s.upstream), "config_hash": s.config_hash,
         "status": "success", "run_id": "run-1", "created_at": "2026-01-01T00:00:00"}
        for s in first.steps
    ]
    again = build_plan(reg.order(), {}, history)
    assert again.to_run == [] and "run-1" in again.step("envs").reason
    changed = build_plan(reg.order(), {"snapshots": {"sources": ["a"]}}, history)
    assert changed.step("snapshots").reason == "config changed"
    assert changed.step("envs").reason == "upstream changed: snapshots"
    v2 = build_plan(_graph({"snapshots": (), "envs": ("snapshots",)}, "2").order(), {}, history)
    assert v2.step("snapshots").reason == "code version changed 1 -> 2"
    failed = [dict(history[0], status="failed", error="boom", created_at="2026-01-02")]
    retry = build_plan(reg.order()[:1], {}, failed)
    assert retry.step("snapshots").reason == "last attempt failed: boom"


def test_load_modules_by_path_registers_and_reports_missing(tmp_path):
    with pytest.raises(FactoryError, match="not found"):
        load_modules([str(tmp_path / "nope.py")], pipeline=False)
    with pytest.raises(FactoryError, match="cannot import asset module 'no_such_mod_x'"):
        load_modules(["no_such_mod_x"], pipeline=False)


def test_reads_are_edges_that_pull_nothing_into_a_plan():
    """A ``reads`` upstream is in the graph (downstream, checked names) but is never run
    on the reader's behalf; a ``requested`` asset runs only when named."""
    reg = _graph({"snapshots": (), "tasks": ("snapshots",), "rewards": ("tasks",)})
    reg.asset("checkpoints", "1", reads=("tasks", "rewards"), requested=True)(_noop)
    reg.asset("evals", "1", reads=("checkpoints",), requested=True)(_noop)
    assert [a.name for a in reg.order()] == ["snapshots", "tasks", "rewards"]
    assert [a.name for a in reg.order(["evals"])] == ["evals"]
    assert [a.name for a in reg.order(["checkpoints", "tasks"])] == [
        "checkpoints", "snapshots", "tasks"]
    assert reg.downstream("tasks") == {"rewards", "checkpoints", "evals"}
    reg.asset("judgments", "1", reads=("evalz",), requested=True)(_noop)
    with pytest.raises(FactoryError, match="'judgments' reads unknown asset 'evalz'"):
        reg.order(["judgments"])
    with pytest.raises(FactoryError, match="both as a dep and as a read"):
        reg.asset("x", "1", deps=("tasks",), reads=("tasks",))(_noop)


def test_codemill_assets_come_from_one_list_with_their_upstream_declared():
    """``load_modules()`` registers every codemill asset from ``ASSET_MODULES``; the jobs
    users request (suites, evals, judgments, vibe checks, checkpoints) declare what they
    read, and "every asset" is the pipeline alone."""
    from codemill.factory.graph import REGISTRY

    load_modules()
    assert REGISTRY.names() == sorted([
        "snapshots", "environments", "tasks", "rollouts", "rewards", "suites", "evals",
        "judgments", "vibe_checks", "checkpoints"])
    reads = {n: set(REGISTRY.get(n).reads) for n in REGISTRY.names()}
    assert reads["checkpoints"] == {"tasks", "rewards"}
    assert reads["evals"] >= {"suites", "checkpoints"} and reads["suites"] == {"tasks"}
    assert reads["judgments"] == {"evals"}
    assert [a.name for a in REGISTRY.order()] == [
        "snapshots", "environments", "tasks", "rollouts", "rewards"]
    assert {"checkpoints", "evals", "judgments"} <= REGISTRY.downstream("rewards")
