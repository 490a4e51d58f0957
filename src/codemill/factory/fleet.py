"""A fleet run: the main job over many sources, spread over the run's executor.

    result = run_fleet(["pypi:toolz==0.12.0", "../mathx"], RunConfig(source="-"), settings,
                       on_progress=show)
    result.costs      # one RepoCost per source, in input order, failures included

Each source is one item of ``executor.map`` (``settings.executor``: a local process pool,
or Ray tasks on a cluster joined by address). In its worker, the item takes the source in
(``resolve_source``) and materializes ``snapshots -> environments -> tasks`` (and
``rollouts -> rewards`` with ``rollouts=True``) through ``run_pipeline``, with an
in-process executor: the fleet's parallelism is across repositories. Every stage is a cached
asset keyed by content ids, so a rerun of the fleet (or of one source after a crash, or a
task Ray retried on another node) skips what is committed and does not duplicate rows.

Failure contract: one repository's failure (a source that cannot be taken in, a failed
build or stage, a tasks stage that validated no task, a worker that died past Ray's
retries) is its ``RepoCost`` with ``failure`` set; the other repositories go on, and
``run_fleet`` does not raise for it.

Live progress: each item writes a small status file (``<home>/fleet/<fleet id>/<n>.json``:
its current stage, state, stage outcomes, where it runs) as it goes; the driver polls the folder and
hands ``on_progress`` a ``FleetProgress`` (per stage done, failed, running; failures by
reason; ETA). So progress, like snapshots and environments, needs ``settings.home`` on a
filesystem every node shares.

Costs are measured in the worker: wall seconds, CPU seconds of the worker and the
processes it waited for (``getrusage``) plus its sandboxes' (cgroup accounting,
``codemill.sandbox.cgroups``), and from the ledger the
environment's build seconds and bytes on disk and the tasks validated in it. A cached rerun
costs seconds, and says so: its stages are ``cached``.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codemill.core.config import ExecutorConfig, Settings
from codemill.core.ids import new_run_id
from codemill.factory.executor_base import Executor, ItemError
from codemill.factory.run import STAGES

FLEET_STAGES = STAGES[:3]
"""snapshots, environments, tasks: what a fleet run builds for each source by default."""
POLL_S = 0.5


@dataclass
class RepoCost:
    """One source's row of the fleet's cost table."""

    source: str
    status: str = "running"
    """``ok`` or ``failed``."""
    snapshot_id: str | None = None
    env_id: str | None = None
    env_status: str = ""
    build_seconds: float = 0.0
    """The environment's build time as recorded when it was built (a cached one's too)."""
    env_bytes: int = 0
    """The environment's bytes on disk, as measured by its build."""
    tasks_validated: int = 0
    """Accepted tasks in the environment (all runs)."""
    cpu_seconds: float = 0.0
    """CPU time this run spent on the source (user + system, worker and its children)."""
    wall_seconds: float = 0.0
    stages: dict[str, str] = field(default_factory=dict)
    """Stage -> ``success`` | ``cached`` | ``failed`` | ``skipped`` in this run."""
    failure: str | None = None
    failure_kind: str | None = None
    """A short class of the failure for counting (``environment failed``,
    ``tasks: FactoryError``, ``tasks: none validated``, ``source: SourceError``,
    ``worker: WorkerDied``)."""
    host: str = ""
    ray_node: str | None = None
    """The Ray node the item ran on (None outside Ray)."""
    pid: int = 0

    @property
    def tasks_per_cpu_minute(self) -> float | None:
        """Validated tasks per CPU-minute of this run; None unless this run validated them
        (a cached ``tasks`` stage cost nothing here, and its rate would be meaningless)."""
        if self.cpu_seconds <= 0 or self.stages.get("tasks") != "success":
            return None
        return self.tasks_validated / (self.cpu_seconds / 60)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tasks_per_cpu_minute": self.tasks_per_cpu_minute}


@dataclass(frozen=True)
class FleetJob:
    """One item of the fleet's map: picklable, self-contained."""

    index: int
    source: str
    config: dict[str, Any]
    stages: tuple[str, ...]
    settings: Settings
    status_dir: str


@dataclass
class FleetProgress:
    """The fleet as the driver last saw it."""

    total: int
    repos: dict[str, int]
    """``queued``, ``running``, ``ok``, ``failed`` -> number of sources."""
    stages: dict[str, dict[str, int]]
    """Stage -> {``done``, ``failed``, ``running``} (``done`` counts cached stages too)."""
    failures: dict[str, int]
    """Failure kind -> sources."""
    elapsed_s: float
    eta_s: float | None


@dataclass
class FleetResult:
    fleet_id: str
    costs: list[RepoCost]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.status == "ok" for c in self.costs)

    def to_json(self) -> dict[str, Any]:
        return {"fleet_id": self.fleet_id, "ok": self.ok, "seconds": round(self.seconds, 3),
                "repositories": [c.to_json() for c in self.costs]}


def run_fleet(sources: list[str], cfg: Any, settings: Settings, *, rollouts: bool = False,
              executor: Executor | None = None,
              on_progress: Callable[[FleetProgress], None] | None = None,
              poll_s: float = POLL_S) -> FleetResult:
    """Run the main job for every source (``cfg`` is a ``RunConfig``; its ``source`` is
    replaced by each); see the module docstring for the contract."""
    from codemill.factory.executors import make_executor
    from codemill.store.ledger import Ledger

    fleet_id = new_run_id()
    status_dir = Path(settings.home).absolute() / "fleet" / fleet_id
    status_dir.mkdir(parents=True, exist_ok=True)
    stages = STAGES if rollouts else FLEET_STAGES
    base = cfg.model_dump(mode="json")
    jobs = [FleetJob(i, s, {**base, "source": s}, stages, settings, str(status_dir))
            for i, s in enumerate(sources)]
    with Ledger.open(settings) as ledger:
        ledger.start_run(fleet_id, "run --sources", {"sources": sources, "stages": stages,
                                                     "config": base})
    started = time.monotonic()
    stop = threading.Event()
    watcher = None
    if on_progress is not None:
        watcher = threading.Thread(target=_watch, daemon=True, args=(
            status_dir, len(jobs), stages, started, on_progress, stop, poll_s))
        watcher.start()
    costs: list[RepoCost] = []
    own = executor is None
    ex = executor or make_executor(settings)
    try:
        for job, out in zip(jobs, ex.map(fleet_one, jobs), strict=True):
            if isinstance(out, ItemError):  # the worker died past its retries
                out = RepoCost(job.source, status="failed", failure=str(out),
                               failure_kind=f"worker: {out.error_type}")
                _write_status(status_dir, job.index, {
                    "source": job.source, "state": "failed", "stage": None, "stages": {},
                    "failure_kind": out.failure_kind})
            costs.append(out)
    finally:
        if own:
            ex.close()
        stop.set()
        if watcher is not None:
            watcher.join()
    if on_progress is not None:
        on_progress(read_progress(status_dir, len(jobs), stages, started))
    result = FleetResult(fleet_id, costs, time.monotonic() - started)
    with Ledger.open(settings) as ledger:
        ledger.finish_run(fleet_id, "success" if result.ok else "failed", {
            "ok": sum(c.status == "ok" for c in costs),
            "failed": {c.source: c.failure_kind for c in costs if c.status != "ok"}})
    return result


def fleet_one(job: FleetJob) -> RepoCost:
    """One source, in a worker: take it in, materialize its stages, measure what it cost.
    Never raises for the source's own failures; they are the row's ``failure``."""
    from codemill.factory.pipeline import RunConfig
    from codemill.factory.run import resolve_source, run_pipeline

    settings = job.settings.model_copy(update={"executor": ExecutorConfig(workers=1)})
    cost = RepoCost(job.source, host=socket.gethostname(), ray_node=_ray_node(),
                    pid=os.getpid())
    state: dict[str, Any] = {"source": job.source, "state": "running", "stage": "snapshots",
                             "stages": {}, "host": cost.host, "ray_node": cost.ray_node,
                             "pid": cost.pid}
    _write_status(Path(job.status_dir), job.index, state)
    wall, cpu = time.monotonic(), _cpu_seconds()
    try:
        cfg = RunConfig(**job.config)
        snap = resolve_source(cfg, settings)
        cost.snapshot_id = snap.snapshot_id

        def progress(asset: str, done: int, total: int | None) -> None:
            if asset != state["stage"] and asset in job.stages:
                # A stage starts once those before it are done (or cached).
                for name in job.stages[:job.stages.index(asset)]:
                    state["stages"].setdefault(name, "done")
                state["stage"] = asset
                _write_status(Path(job.status_dir), job.index, state)

        result = run_pipeline(cfg, settings, snapshot=snap, progress=progress,
                              command=f"run --sources ({job.source})", stages=job.stages)
        cost.stages = {name: o.status for name, o in result.outcomes.items()}
        failed = [(n, o.error or "") for n, o in result.outcomes.items()
                  if o.status == "failed"]
        if failed:
            name, error = failed[0]
            cost.failure = f"{name}: {error}"
            cost.failure_kind = f"{name}: {error.split(':', 1)[0]}"
        _read_costs(cost, settings)
        if cost.failure is None and "tasks" in job.stages and cost.tasks_validated == 0:
            # The stage ran clean but the repository yields nothing to train or evaluate
            # on: counted with its reason, not as a success.
            cost.failure = "tasks: no task validated in this environment"
            cost.failure_kind = "tasks: none validated"
    except Exception as exc:  # the source's failure is its row; the fleet goes on
        stage = state["stage"] if cost.snapshot_id else "source"
        cost.failure = f"{stage}: {type(exc).__name__}: {exc}".splitlines()[0][:2000]
        cost.failure_kind = f"{stage}: {type(exc).__name__}"
    cost.wall_seconds = round(time.monotonic() - wall, 3)
    cost.cpu_seconds = round(_cpu_seconds() - cpu, 3)
    cost.status = "failed" if cost.failure else "ok"
    _write_status(Path(job.status_dir), job.index, {
        **state, "state": cost.status, "stage": None, "stages": cost.stages,
        "failure_kind": cost.failure_kind})
    return cost


def _read_costs(cost: RepoCost, settings: Settings) -> None:
    """The environment's build cost and its validated tasks, from the ledger. An
    environment that did not come out usable is the repository's failure, and its reason
    says more than the downstream stage that could not start."""
    from codemill.factory.lookup import env_rows
    from codemill.store.reader import LedgerReader

    with LedgerReader.open(settings) as ledger:
        rows = env_rows(ledger, f"snapshot_id == '{cost.snapshot_id}'")
        if not rows:
            return
        usable = [r for r in rows if r["status"] == "usable"]
        row = (usable or rows)[0]
        cost.env_id, cost.env_status = row["env_id"], row["status"]
        cost.build_seconds = float(row.get("build_seconds") or 0.0)
        cost.env_bytes = int(row.get("disk_bytes") or 0)
        tasks = ledger.read("tasks", columns=["task_id"],
                            row_filter=f"env_id == '{cost.env_id}'").column("task_id")
        cost.tasks_validated = len(set(tasks.to_pylist()))
    if not usable:
        reason = (row.get("reason") or "").splitlines()[0:1]
        cost.failure = f"environment {row['status']}" + (f": {reason[0]}" if reason else "")
        cost.failure_kind = f"environment {row['status']}"


def _cpu_seconds() -> float:
    """This process's CPU, its waited-for children's, and its sandboxes' (which run in
    cgroups of their own, not as children ``getrusage`` sees)."""
    from codemill.sandbox.cgroups import sandboxes_cpu_seconds

    total = sandboxes_cpu_seconds()
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _ray_node() -> str | None:
    ray = sys.modules.get("ray")  # imported by the Ray worker running this item, if any
    if ray is None or not ray.is_initialized():
        return None
    return str(ray.get_runtime_context().get_node_id())


def _write_status(folder: Path, index: int, state: dict[str, Any]) -> None:
    tmp = folder / f".{index}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, folder / f"{index}.json")  # readers never see half a file


def read_progress(folder: Path, total: int, stages: tuple[str, ...], started: float
                  ) -> FleetProgress:
    """The fleet's progress from its status files (``run_fleet`` writes them)."""
    states: list[dict[str, Any]] = []
    for path in folder.glob("*.json"):
        try:
            states.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # replaced while read: next poll
    repos = Counter(s["state"] for s in states)
    per_stage = {name: {"done": 0, "failed": 0, "running": 0} for name in stages}
    for s in states:
        for name, status in s.get("stages", {}).items():
            if name in per_stage:
                key = "done" if status in ("success", "cached", "done") else "failed"
                per_stage[name][key] += status != "skipped"
        if s["state"] == "running" and s.get("stage") in per_stage:
            per_stage[s["stage"]]["running"] += 1
    finished = repos["ok"] + repos["failed"]
    elapsed = time.monotonic() - started
    eta = elapsed / finished * (total - finished) if finished else None
    return FleetProgress(
        total=total,
        repos={"queued": total - len(states), "running": repos["running"],
               "ok": repos["ok"], "failed": repos["failed"]},
        stages=per_stage,
        failures=dict(Counter(s["failure_kind"] for s in states
                              if s["state"] == "failed" and s.get("failure_kind"))),
        elapsed_s=elapsed, eta_s=eta)


def _watch(folder: Path, total: int, stages: tuple[str, ...], started: float,
           on_progress: Callable[[FleetProgress], None], stop: threading.Event,
           poll_s: float) -> None:
    while not stop.wait(poll_s):
        on_progress(read_progress(folder, total, stages, started))
