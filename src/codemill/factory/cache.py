"""Cache keys and plans: what would run, what is cached, and why.

An asset's cache key is ``content_id("asset", name, code_version, upstream, config)`` where
``upstream`` maps each dependency to *its* cache key in the same plan and ``config`` is the
canonical form of the asset's resolved config. Keys chain, so a change anywhere upstream
changes every key below it, and a plan is known before anything runs. Upstream cache keys
are used rather than Iceberg snapshot ids because the latter exist only after a run and
move with unrelated appends (a resumed, incremental asset appends to the same table).

A key recorded in ``materializations`` with status ``success`` is a hit: nothing runs. For
a miss, the reason comes from comparing with the asset's latest materialization: never
materialized, code version changed, upstream changed (which ones), config changed, or the
last attempt with this very key failed. What is *not* in a key: codemill's own git commit
and global settings (sandbox limits, executor); an asset whose output depends on them puts
them in its config.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from codemill.core.errors import FactoryError
from codemill.core.ids import canonical_json, content_id, short_id
from codemill.factory.asset import Asset

SUCCESS = "success"
FAILED = "failed"
VERSION_COLUMN = "asset_version"
"""The column of ``materializations`` holding the asset's own code version (the writer
stamps ``code_version`` with codemill's version on every row)."""


def config_hash(config: Any) -> str:
    return content_id(config if config is not None else {})


def cache_key(asset: Asset, upstream: Mapping[str, str], config: Any) -> str:
    """The content id of one materialization's inputs (see module docstring)."""
    return content_id(
        "asset", asset.name, asset.code_version, dict(upstream), config_hash(config)
    )


@dataclass(frozen=True)
class PlanStep:
    """One asset in a plan: ``run`` or ``cached``, with the reason in words."""

    asset: str
    action: Literal["run", "cached"]
    reason: str
    cache_key: str
    code_version: str
    config_hash: str
    upstream: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """Steps in execution order (dependencies first)."""

    steps: tuple[PlanStep, ...]
    configs: dict[str, Any] = field(default_factory=dict, repr=False)

    def step(self, name: str) -> PlanStep:
        for s in self.steps:
            if s.asset == name:
                return s
        raise FactoryError(f"asset {name!r} is not in this plan")

    @property
    def to_run(self) -> list[str]:
        return [s.asset for s in self.steps if s.action == "run"]

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.steps]


def resolve_configs(
    assets: Iterable[Asset], config: Mapping[str, Any] | None, known: Iterable[str]
) -> dict[str, Any]:
    """Per-asset config for ``assets`` from ``config`` (keyed by asset name); an entry
    naming no registered asset is a typo and raises."""
    config = dict(config or {})
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise FactoryError(f"config given for unknown asset(s): {', '.join(unknown)}")
    return {a.name: config.get(a.name, {}) for a in assets}


def build_plan(
    ordered: list[Asset], configs: Mapping[str, Any], history: list[dict[str, Any]]
) -> Plan:
    """Decide each asset of ``ordered`` against ``history`` (rows of ``materializations``)."""
    by_asset: dict[str, list[dict[str, Any]]] = {}
    for row in history:
        by_asset.setdefault(row["asset"], []).append(row)
    keys: dict[str, str] = {}
    steps = []
    for a in ordered:
        upstream = {dep: keys[dep] for dep in sorted(a.deps)}
        cfg = configs.get(a.name, {})
        key = keys[a.name] = cache_key(a, upstream, cfg)
        action, reason = _decide(a, key, upstream, config_hash(cfg), by_asset.get(a.name, []))
        steps.append(PlanStep(a.name, action, reason, key, a.code_version,
                              config_hash(cfg), upstream))
    return Plan(tuple(steps), dict(configs))


def _decide(
    a: Asset, key: str, upstream: dict[str, str], cfg_hash: str, rows: list[dict[str, Any]]
) -> tuple[Literal["run", "cached"], str]:
    hits = [r for r in rows if r["cache_key"] == key and r["status"] == SUCCESS]
    if hits:
        hit = _latest(hits)
        return "cached", f"materialized by {hit.get('run_id')} at {_when(hit)}"
    if not rows:
        return "run", "new: never materialized"
    last = _latest(rows)
    if last["cache_key"] == key:
        return "run", f"last attempt failed: {last.get('error') or 'no error recorded'}"
    reasons = []
    if last.get(VERSION_COLUMN) != a.code_version:
        reasons.append(f"code version changed {last.get(VERSION_COLUMN)} -> {a.code_version}")
    before = json.loads(last.get("upstream_json") or "{}")
    changed = sorted(d for d in set(before) | set(upstream) if before.get(d) != upstream.get(d))
    if changed:
        reasons.append(f"upstream changed: {', '.join(changed)}")
    if last.get("config_hash") != cfg_hash:
        reasons.append("config changed")
    return "run", "; ".join(reasons) or f"key changed from {short_id(last['cache_key'])}"


def _latest(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return max(rows, key=lambda r: (str(r.get("created_at") or ""), str(r.get("run_id") or "")))


def _when(row: dict[str, Any]) -> str:
    ts = row.get("created_at")
    return ts.isoformat(timespec="seconds") if isinstance(ts, datetime) else str(ts)


def upstream_json(upstream: Mapping[str, str]) -> str:
    return canonical_json(dict(upstream))
