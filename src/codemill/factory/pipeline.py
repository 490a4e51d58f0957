"""The main job's assets: source -> snapshots -> environments -> tasks -> rollouts -> rewards.

Every asset takes the same ``RunConfig`` slice it depends on, selects its upstream rows by
content id, skips ids already recorded (so a crashed run resumes without duplicates) and
returns records; ``codemill.factory.materialize`` persists them. ``codemill run`` and
``make demo`` materialize the whole chain; ``codemill factory plan`` shows what is cached.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from codemill.core.errors import FactoryError
from codemill.core.records import EnvSpec, RepoSnapshot
from codemill.factory.asset import AssetContext, Side
from codemill.factory.graph import asset


class RunConfig(BaseModel):
    """What ``codemill run`` was asked to do; each asset hashes only the fields it uses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    """A local dir, ``git-url[@rev]`` or ``pypi:NAME[==VERSION]``."""
    python: str | None = None
    """Interpreter version to build with; None lets the builder choose."""


def _cfg(ctx: AssetContext) -> dict[str, Any]:
    cfg = ctx.config
    return cfg.model_dump() if isinstance(cfg, BaseModel) else dict(cfg or {})


def _say(ctx: AssetContext) -> Any:
    return lambda message: ctx.logger.info("%s: %s", ctx.asset.name, message)


@asset("snapshots", code_version="1")
def snapshots(ctx: AssetContext) -> Iterator[RepoSnapshot]:
    """Take the source in as a content-addressed snapshot."""
    from codemill.repos.sources import snapshot_source

    cfg = _cfg(ctx)
    snap = snapshot_source(cfg["source"], ctx.settings.home, progress=_say(ctx))
    if snap.snapshot_id not in ctx.existing_ids("snapshots", "snapshot_id"):
        yield snap


def snapshot_for(ctx: AssetContext, source: str) -> RepoSnapshot:
    """The latest snapshot row of ``source`` (the upstream asset just made or cached it)."""
    from codemill.repos.sources import snapshot_source

    # Re-resolving is cheap (content-addressed, stored once) and returns the full record.
    return snapshot_source(source, ctx.settings.home)


@asset("environments", code_version="1", deps=("snapshots",))
def environments(ctx: AssetContext) -> Iterator[Any]:
    """Build (or reuse) the environment of the snapshot, with its baseline test results."""
    from codemill.envs.builder import build_env
    from codemill.store.rows import test_result_rows

    cfg = _cfg(ctx)
    snap = snapshot_for(ctx, cfg["source"])
    known = find_env_for_snapshot(ctx.settings.home, snap.snapshot_id)
    if known is not None and known.env_id in ctx.existing_ids("environments", "env_id"):
        return  # built and recorded before (e.g. by `codemill env build`)
    result = build_env(snap, ctx.settings.home, ctx.settings, progress=_say(ctx),
                       python=cfg.get("python"))
    env = result.env
    if env.env_id in ctx.existing_ids("environments", "env_id"):
        return
    yield env
    for i, report in enumerate(result.reports):
        for row in test_result_rows(report, env_id=env.env_id, run_index=i, phase="baseline"):
            yield Side("test_results", row)


def find_env_for_snapshot(home: Path, snapshot_id: str, *,
                          usable_only: bool = True) -> EnvSpec | None:
    """The environment recorded on disk for ``snapshot_id``, if any: a usable one, or with
    ``usable_only=False`` any whose install finished (its tests may fail: a repository a
    user wants fixed often has failing tests)."""
    from codemill.envs.envstore import load_records

    envs = [e for e in load_records(home)
            if e.snapshot_id == snapshot_id and Path(e.venv_path).is_dir() and e.lock_hash]
    usable = [e for e in envs if e.status.value == "usable"]
    pool = usable if usable_only or usable else envs
    return pool[-1] if pool else None


def require_env(home: Path, snapshot_id: str) -> EnvSpec:
    env = find_env_for_snapshot(home, snapshot_id)
    if env is None:
        raise FactoryError(f"no usable environment for snapshot {snapshot_id[:12]}")
    return env
