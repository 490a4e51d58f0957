"""Plan and materialize assets against the ledger.

``plan(targets, config, settings)`` says, per asset in order, ``run`` or ``cached`` and
why (``codemill.factory.cache``). ``materialize(...)`` runs what the plan says:

- each asset's rows go through the batched ledger writer to the table named after it;
- each run asset gets one ``materializations`` row: cache key, asset version, upstream
  keys, config hash, status (``success`` | ``failed``), rows, seconds, error;
- the whole call is a run in ``runs`` (``start_run`` / ``finish_run``); its config holds
  the plan (each asset's action and cache key), so rows tagged with the run's ``run_id``
  trace back to the key they were made under.

Failure contract (chosen): ``materialize`` does not raise for a failed asset. A failed
asset (its function raised, a row was not a record, or a check failed) is recorded with
its error; every asset downstream of it is ``skipped`` (no row: it did not materialize);
independent assets go on. The returned ``MaterializeResult`` has each asset's outcome and
``raise_for_status()`` raises one ``FactoryError`` line for callers who want an exception.
Graph problems (cycle, unknown asset, config for an unknown asset) raise before anything
runs.

Progress: ``progress(asset, done, total)`` is called with ``(asset, 0, None)`` when an asset
starts to run (a cached one never starts), then as the asset reports its items.

Crash safety: a materialization is a hit only once its ``success`` row is committed,
after all its rows. A process killed mid-way leaves committed batches but no such row, so
the next run recomputes the asset; the asset skips what is already there with
``ctx.existing_ids`` and rows are not duplicated. Rows of a failed materialization stay
in the (append-only) table, tagged with its ``run_id``. Two concurrent ``materialize``
calls are not locked against each other; content ids make their rows dedupe.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from codemill.core.config import Settings, load_settings
from codemill.core.errors import FactoryError
from codemill.core.ids import canonical_json, new_run_id
from codemill.factory.asset import Asset, AssetContext, Side
from codemill.factory.cache import (
    FAILED,
    SUCCESS,
    VERSION_COLUMN,
    Plan,
    PlanStep,
    build_plan,
    resolve_configs,
    upstream_json,
)
from codemill.factory.executors import Executor, make_executor
from codemill.factory.graph import REGISTRY, Registry

if TYPE_CHECKING:
    from codemill.store.ledger import Ledger

MATERIALIZATIONS = "materializations"
ProgressFn = Callable[[str, int, "int | None"], None]
log = logging.getLogger("codemill.factory")


@dataclass
class AssetOutcome:
    """What happened to one asset in one ``materialize`` call."""

    asset: str
    status: Literal["success", "cached", "failed", "skipped"]
    cache_key: str
    reason: str
    """The plan's reason for running (or being cached), or why it was skipped."""
    rows: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class MaterializeResult:
    run_id: str
    plan: Plan
    outcomes: dict[str, AssetOutcome] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(o.status in ("success", "cached") for o in self.outcomes.values())

    def names(self, status: str) -> list[str]:
        return [n for n, o in self.outcomes.items() if o.status == status]

    def raise_for_status(self) -> None:
        """Raise one ``FactoryError`` line naming failed (and skipped) assets, if any."""
        if self.ok:
            return
        failed = "; ".join(f"{n} ({self.outcomes[n].error})" for n in self.names("failed"))
        skipped = ", ".join(self.names("skipped"))
        raise FactoryError(f"run {self.run_id}: failed: {failed}"
                           + (f"; skipped: {skipped}" if skipped else ""))

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "ok": self.ok,
                "assets": [asdict(o) for o in self.outcomes.values()]}


@contextmanager
def _opened(settings: Settings | None, ledger: Ledger | None) -> Iterator[tuple[Settings, Ledger]]:
    """The settings and ledger to use; a ledger opened here is closed on the way out."""
    settings = settings or load_settings()
    if ledger is not None:
        yield settings, ledger
        return
    from codemill.store.ledger import Ledger

    with Ledger.open(settings) as own:
        yield settings, own


def read_history(ledger: Ledger, assets: Iterable[str]) -> list[dict[str, Any]]:
    """The ``materializations`` rows of ``assets`` (all statuses, all runs)."""
    names = sorted(set(assets))
    if not names:
        return []
    # Asset names are checked lowercase identifiers, so quoting them here is safe.
    where = "asset in (" + ", ".join(f"'{n}'" for n in names) + ")"
    return ledger.read(MATERIALIZATIONS, row_filter=where).to_pylist()


def plan(
    targets: Iterable[str] | None = None,
    config: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    *,
    registry: Registry = REGISTRY,
    ledger: Ledger | None = None,
) -> Plan:
    """What ``materialize`` would do for ``targets`` (default: every registered asset)
    and their upstream, with ``config`` mapping asset names to their config."""
    ordered = registry.order(targets)
    configs = resolve_configs(ordered, config, registry.names())
    with _opened(settings, ledger) as (_, led):
        history = read_history(led, [a.name for a in ordered])
    return build_plan(ordered, configs, history)


def materialize(
    targets: Iterable[str] | None = None,
    config: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    *,
    registry: Registry = REGISTRY,
    ledger: Ledger | None = None,
    executor: Executor | None = None,
    run_id: str | None = None,
    command: str = "factory materialize",
    progress: ProgressFn | None = None,
) -> MaterializeResult:
    """Run the plan for ``targets``; see the module docstring for the contract."""
    with _opened(settings, ledger) as (resolved, led):
        return _materialize(targets, config, resolved, registry, led, executor, run_id,
                            command, progress)


def _materialize(
    targets: Iterable[str] | None, config: Mapping[str, Any] | None, settings: Settings,
    registry: Registry, ledger: Ledger, executor: Executor | None, run_id: str | None,
    command: str, progress: ProgressFn | None,
) -> MaterializeResult:
    targets = list(targets or [])
    the_plan = plan(targets, config, settings, registry=registry, ledger=ledger)
    run_id = run_id or new_run_id()
    result = MaterializeResult(run_id, the_plan)
    own: list[Executor] = []

    def get_executor() -> Executor:
        if executor is not None:
            return executor
        if not own:
            own.append(make_executor(settings))
        return own[0]

    ledger.start_run(run_id, command, {
        "targets": sorted(targets),
        "plan": {s.asset: {"action": s.action, "cache_key": s.cache_key}
                 for s in the_plan.steps},
        "config": json.loads(canonical_json(the_plan.configs)),
        "settings_hash": settings.config_hash,
    })
    status = "failed"  # stays so if the ledger itself fails under us
    try:
        for step in the_plan.steps:
            result.outcomes[step.asset] = _one(
                registry.get(step.asset), step, result, the_plan, settings, ledger,
                get_executor, progress,
            )
        status = "success" if result.ok else "failed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        for ex in own:
            ex.close()
        ledger.finish_run(run_id, status, {
            name: {"status": o.status, "rows": o.rows, "error": o.error}
            for name, o in result.outcomes.items()
        })
    return result


def _one(
    asset: Asset, step: PlanStep, result: MaterializeResult, the_plan: Plan,
    settings: Settings, ledger: Ledger, get_executor: Callable[[], Executor],
    progress: ProgressFn | None,
) -> AssetOutcome:
    blocked = [d for d in sorted(asset.deps)
               if result.outcomes[d].status in ("failed", "skipped")]
    if blocked:
        why = ", ".join(f"{d} {result.outcomes[d].status}" for d in blocked)
        return AssetOutcome(asset.name, "skipped", step.cache_key, f"upstream {why}")
    if step.action == "cached":
        return AssetOutcome(asset.name, "cached", step.cache_key, step.reason)
    ctx = AssetContext(
        asset=asset, run_id=result.run_id, cache_key=step.cache_key,
        config=the_plan.configs.get(asset.name, {}), upstream_keys=dict(step.upstream),
        settings=settings, logger=logging.getLogger(f"codemill.factory.{asset.name}"),
        _reader=ledger, _executor_factory=get_executor, _on_progress=progress,
    )
    log.info("materializing %s (%s)", asset.name, step.reason)
    if progress is not None:  # the stage starts: (name, 0, None) before any item is done
        progress(asset.name, 0, None)
    started = time.monotonic()
    counted = [0]  # rows produced, also known when the asset fails half-way
    error = None
    try:
        _write_rows(asset, ctx, ledger, step, counted)
    except Exception as exc:  # a failing asset is recorded; its siblings go on
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:2000]
    rows = counted[0]
    seconds = round(time.monotonic() - started, 3)
    status = SUCCESS if error is None else FAILED
    with ledger.writer(MATERIALIZATIONS, run_id=result.run_id, asset=asset.name,
                       config_hash=step.config_hash) as w:
        w.add({
            "cache_key": step.cache_key, "asset": asset.name,
            VERSION_COLUMN: asset.code_version, "upstream_json": upstream_json(step.upstream),
            "config_hash": step.config_hash, "status": status, "rows": rows,
            "seconds": seconds, "error": error,
        })
    return AssetOutcome(asset.name, "success" if error is None else "failed",
                        step.cache_key, step.reason, rows, seconds, error)


def _as_row(asset: Asset, item: Any) -> dict[str, Any]:
    from codemill.store.rows import record_to_row

    if isinstance(item, BaseModel):
        return record_to_row(item)
    if isinstance(item, Mapping):
        return dict(item)
    raise FactoryError(f"asset {asset.name!r} produced a {type(item).__name__} value; "
                       "expected a record or a dict")


def _write_rows(asset: Asset, ctx: AssetContext, ledger: Ledger, step: PlanStep,
                counted: list[int]) -> None:
    """Stream the asset's rows into its table (counting them in ``counted[0]``) and its
    ``Side`` rows into theirs, then run its checks on the main rows."""
    kept: list[dict[str, Any]] = []
    with ExitStack() as stack:
        def open_writer(table: str) -> Any:
            return stack.enter_context(ledger.writer(
                table, run_id=ctx.run_id, asset=asset.name, config_hash=step.config_hash))

        writers: dict[str, Any] = {asset.name: open_writer(asset.name)}
        for item in asset.fn(ctx) or ():
            if isinstance(item, Side):
                if item.table not in writers:
                    writers[item.table] = open_writer(item.table)
                writers[item.table].add(_as_row(asset, item.row))
                continue
            row = _as_row(asset, item)
            writers[asset.name].add(row)
            counted[0] += 1
            if asset.checks:
                kept.append(row)
    for check in asset.checks:
        name = getattr(check, "__name__", repr(check))
        try:
            verdict = check(kept)
        except Exception as exc:  # a check that crashes fails the asset, named
            raise FactoryError(f"check {name} raised {type(exc).__name__}: {exc}") from exc
        if verdict is False or isinstance(verdict, str):
            detail = f": {verdict}" if isinstance(verdict, str) else ""
            raise FactoryError(f"check {name} failed{detail}")
