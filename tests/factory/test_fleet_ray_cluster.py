"""Fleet runs on a real Ray cluster (a head and two worker nodes started with ``ray start``,
``tests/factory/ray_cluster.py``) with a real PostgreSQL catalog (``tests/store/pg_server.py``),
driven the way a user does it: ``codemill run --sources`` in a subprocess with
``CODEMILL_EXECUTOR__KIND=ray`` and the cluster's address.

The fleet's repositories run on the worker nodes (the head has no CPUs), both workers take
part, and every task row is in the catalog exactly once.

The nodes share this machine's filesystem: snapshots, environments, the warehouse and the
fleet's status files are under one ``CODEMILL_HOME`` that every node reads at the same path
(a multi-machine cluster needs that home on a shared filesystem)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from codemill.core.config import CatalogConfig, Settings

from .fleet_repos import fleet_json, home_env, make_repo, run_cli, sources_file
from .ray_cluster import RayCluster, RayUnavailable

pytestmark = [pytest.mark.network, pytest.mark.slow]

ARGS = ("--tasks", "1", "--features", "0", "--json")


@pytest.fixture(scope="module")
def cluster():
    from conftest import missing_prerequisite

    pytest.importorskip("ray")
    c = RayCluster(workers=2, cpus_per_worker=1)
    try:
        c.start()
    except RayUnavailable as exc:
        c.close()
        missing_prerequisite(str(exc))
    yield c
    c.close()
    assert not c.pids(), "cluster processes left behind"


@pytest.fixture(scope="module")
def catalog_uri():
    from conftest import missing_prerequisite
    from store.pg_server import PgUnavailable, pg_server

    try:
        with pg_server() as uri:
            yield uri
    except PgUnavailable as exc:
        missing_prerequisite(str(exc))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, cluster, catalog_uri):
    """The module's home, its environment for the CLI and a settings object to read with."""
    root = tmp_path_factory.mktemp("fleet")
    home = root / "home"
    warehouse = (root / "warehouse").resolve().as_uri()

    def env() -> dict[str, str]:
        return home_env(home, CODEMILL_CATALOG__URI=catalog_uri,
                        CODEMILL_CATALOG__WAREHOUSE=warehouse, CODEMILL_EXECUTOR__KIND="ray",
                        CODEMILL_EXECUTOR__RAY_ADDRESS=cluster.address,
                        **cluster.client_env())

    settings = Settings(home=home, catalog=CatalogConfig(uri=catalog_uri, warehouse=warehouse))
    return {"root": root, "home": home, "env": env, "settings": settings, "first": {}}


def _worker_nodes(cluster):
    """Node ids of the live worker nodes, from Ray's own view (a driver in a subprocess)."""
    code = (f"import json, ray; ray.init(address={cluster.address!r}, log_to_driver=False); "
            "print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive'] "
            "and n['Resources'].get('CPU')]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin", **cluster.client_env()})
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _ledger(settings):
    from codemill.store.reader import LedgerReader

    with LedgerReader.open(settings, create=False) as reader:
        tasks = reader.read("tasks", columns=["task_id", "env_id"]).to_pylist()
        mats = reader.read("materializations").to_pylist()
    return tasks, mats


def _successes(mats):
    return sorted(m["cache_key"] for m in mats if m["status"] == "success")


def test_fleet_runs_on_the_worker_nodes_through_postgres(fleet, cluster):
    repos = [make_repo(fleet["root"], "alpha"), make_repo(fleet["root"], "beta")]
    listing = sources_file(fleet["root"], repos)
    started = time.monotonic()
    out = run_cli(fleet["root"], fleet["env"](), "--sources", str(listing), *ARGS)
    assert out.returncode == 0, out.stderr[-3000:]
    result = fleet_json(out)
    workers = _worker_nodes(cluster)
    assert len(workers) == 2
    rows = result["repositories"]
    assert all(r["status"] == "ok" and r["tasks_validated"] >= 1 for r in rows), rows
    # Every item ran on a worker node (the head has no CPUs), each node took one: a node
    # has one CPU and both items were in flight at once.
    assert {r["ray_node"] for r in rows} == workers
    assert not (fleet["home"] / "catalog.db").exists(), "the SQLite default was used"
    tasks, mats = _ledger(fleet["settings"])
    ids = [t["task_id"] for t in tasks]
    assert len(ids) == len(set(ids)) == sum(r["tasks_validated"] for r in rows)
    assert {t["env_id"] for t in tasks} == {r["env_id"] for r in rows}
    fleet["first"] = {"listing": listing, "rows": rows, "successes": _successes(mats),
                      "tasks": sorted(ids), "seconds": time.monotonic() - started}
