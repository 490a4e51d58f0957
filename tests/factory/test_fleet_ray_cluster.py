"""Fleet runs on a real Ray cluster (a head and two worker nodes started with ``ray start``,
``tests/factory/ray_cluster.py``) with a real PostgreSQL catalog (``tests/store/pg_server.py``),
driven the way a user does it: ``codemill run --sources`` in a subprocess with
``CODEMILL_EXECUTOR__KIND=ray`` and the cluster's address.

In file order (one cluster and one catalog for the module):
1. the fleet's repositories run on the worker nodes (the head has no CPUs), both workers
   take part, and every task row is in the catalog exactly once;
2. the whole cluster is stopped and started again: a rerun resumes from the ledger, every
   stage cached, nothing materialized again;
3. a worker node's raylet is SIGKILLed while it builds a repository: Ray retries the item on
   the surviving node and the run completes, every repository ok, every task once.

The nodes share this machine's filesystem: snapshots, environments, the warehouse and the
fleet's status files are under one ``CODEMILL_HOME`` that every node reads at the same path
(a multi-machine cluster needs that home on a shared filesystem)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import pytest

from codemill.core.config import CatalogConfig, Settings

from .fleet_repos import fleet_json, home_env, make_repo, run_cli, sources_file
from .ray_cluster import RayCluster, RayUnavailable

pytestmark = [pytest.mark.network, pytest.mark.slow]

ARGS = ("--tasks", "1", "--features", "0", "--json")


@pytest.fixture(scope="module")
def cluster():
    from conftest import missing_prerequisite

    try:
        import ray  # noqa: F401
    except ImportError:
        missing_prerequisite("ray is not installed: pip install 'codemill[ray]'")
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


def test_rerun_after_the_cluster_restarts_resumes_from_the_ledger(fleet, cluster):
    first = fleet["first"]
    assert first, "runs after the first test of the module"
    before = _worker_nodes(cluster)
    cluster.restart()
    assert not before & _worker_nodes(cluster), "the same nodes: not restarted"
    out = run_cli(fleet["root"], fleet["env"](), "--sources", str(first["listing"]), *ARGS)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = fleet_json(out)["repositories"]
    for row, old in zip(rows, first["rows"], strict=True):
        assert row["status"] == "ok" and set(row["stages"].values()) == {"cached"}, row
        assert (row["env_id"], row["tasks_validated"]) == (old["env_id"],
                                                           old["tasks_validated"])
    tasks, mats = _ledger(fleet["settings"])
    assert _successes(mats) == first["successes"]  # not one stage materialized again
    assert sorted(t["task_id"] for t in tasks) == first["tasks"]


def test_a_worker_node_killed_mid_run_loses_nothing(fleet, cluster):
    repos = [make_repo(fleet["root"], name) for name in ("gamma", "delta")]
    listing = fleet["root"] / "sources-fault.txt"
    listing.write_text("".join(f"{r}\n" for r in repos))
    workers = _worker_nodes(cluster)
    (fleet["home"] / "fleet").mkdir(parents=True, exist_ok=True)
    before = {p.name for p in (fleet["home"] / "fleet").iterdir()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "codemill.cli.main", "run", "--sources", str(listing), *ARGS],
        cwd=fleet["root"], env={"PATH": "/usr/bin:/bin", **fleet["env"]()},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    try:
        # Wait until an item is building an environment on a worker node, then kill that
        # node's raylet (and with it the node's workers and their sandboxes).
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            for folder in (fleet["home"] / "fleet").iterdir():
                if folder.name in before:
                    continue
                for status in folder.glob("*.json"):
                    try:
                        state = json.loads(status.read_text())
                    except ValueError:
                        continue
                    if state["state"] == "running" and state["stage"] == "environments" \
                            and state.get("ray_node") in workers:
                        victim = state["ray_node"]
                        break
        assert victim is not None, "no item reached a build on a worker node"
        cluster.kill_raylet(victim)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    rows = json.loads(stdout)["repositories"]
    assert [r["source"] for r in rows] == [str(r) for r in repos]
    assert all(r["status"] == "ok" and r["tasks_validated"] >= 1 for r in rows), rows
    survivor = workers - {victim}
    assert victim not in _worker_nodes(cluster)
    # The killed node's item was retried on the survivor, which finished every item.
    assert {r["ray_node"] for r in rows} == survivor
    tasks, mats = _ledger(fleet["settings"])
    counts = Counter(t["task_id"] for t in tasks)
    assert all(n == 1 for n in counts.values()), counts
    mine = {r["env_id"] for r in rows}
    assert sum(t["env_id"] in mine for t in tasks) == sum(r["tasks_validated"] for r in rows)
    # One success per asset and key: a retried item's stages are not recorded twice.
    done = Counter(m["cache_key"] for m in mats if m["status"] == "success")
    assert all(n == 1 for n in done.values()), done
