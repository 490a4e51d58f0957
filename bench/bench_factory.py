"""Factory figures: the cost of the graph itself and of each executor's ``map``.

Runbook::

    .venv/bin/python bench/bench_factory.py            # local executors only
    .venv/bin/python bench/bench_factory.py --ray      # also start Ray (2 s, ~500 MB)

In a temporary ledger it materializes a chain of ``--assets`` assets (one row each) and
reports: the first materialization per asset (function + rows + materialization row),
a fully cached rerun (plan + history read + run rows) and a plan alone. Then it maps a
trivial function over ``--items`` items with the in-process executor, a local process
pool (2 workers) and, with ``--ray``, Ray, and reports items/s: pure dispatch overhead,
the floor under any real per-item work.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from codemill.core.config import Settings
from codemill.factory import LocalExecutor, Registry, make_executor, materialize, plan
from record import figure, write_result

FIGURES: list[dict] = []


def chain(n: int) -> Registry:
    reg = Registry()
    names = [f"evals{i}" for i in range(n)]
    for i, name in enumerate(names):
        deps = (names[i - 1],) if i else ()
        reg.add(_asset(name, deps))
    return reg


def _asset(name: str, deps: tuple[str, ...]):  # type: ignore[no-untyped-def]
    from codemill.factory.asset import make_asset

    def fn(ctx):  # type: ignore[no-untyped-def]
        return [{"eval_id": ctx.asset.name, "value": 1.0}]

    fn.__qualname__ = f"bench.{name}"
    return make_asset(fn, name, "1", deps)


def bench_graph(n: int) -> None:
    from codemill.store.ledger import Ledger

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / ".codemill")
        with Ledger.open(settings) as led:
            # An asset writes the table named after it: give evals0..n tables of the
            # evals shape.
            from codemill.store.schemas import TABLES

            for i in range(n):
                led.create_table(f"evals{i}", TABLES["evals"])
            reg = chain(n)
            t0 = time.perf_counter()
            first = materialize(None, {}, settings, registry=reg, ledger=led)
            t1 = time.perf_counter()
            again = materialize(None, {}, settings, registry=reg, ledger=led)
            t2 = time.perf_counter()
            plan(None, {}, settings, registry=reg, ledger=led)
            t3 = time.perf_counter()
        assert first.ok and again.names("cached") == reg.names()
    print(f"{'graph (' + str(n) + ' assets)':<34}{'seconds':>10}")
    print(f"{'first materialize, per asset':<34}{(t1 - t0) / n:>10.3f}")
    print(f"{'cached rerun, whole graph':<34}{t2 - t1:>10.3f}")
    print(f"{'plan alone, whole graph':<34}{t3 - t2:>10.3f}")
    FIGURES.extend([
        figure("first materialization, per asset", (t1 - t0) / n, "s", assets=n),
        figure(f"cached rerun of the {n}-asset chain", t2 - t1, "s"),
        figure(f"plan alone of the {n}-asset chain", t3 - t2, "s")])


def bench_map(items: int, with_ray: bool) -> None:
    print(f"\n{'executor map (' + str(items) + ' items)':<34}{'items/s':>10}{'first s':>10}")
    runs = [("in-process", lambda: LocalExecutor(1)), ("local pool, 2 workers",
                                                      lambda: LocalExecutor(2))]
    if with_ray:
        runs.append(("ray, 2 cpus", lambda: make_executor(
            Settings(executor={"kind": "ray", "workers": 2}))))
    for label, make in runs:
        with make() as ex:
            t0 = time.perf_counter()
            list(ex.map(abs, range(10)))  # start-up: pool processes or Ray workers
            t1 = time.perf_counter()
            out = list(ex.map(abs, range(-items, 0)))
            t2 = time.perf_counter()
        assert out == list(range(items, 0, -1))
        print(f"{label:<34}{items / (t2 - t1):>10.0f}{t1 - t0:>10.2f}")
        FIGURES.append(figure(f"executor map, {label}", items / (t2 - t1), "items/s",
                              items=items, start_up_s=round(t1 - t0, 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=10)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--ray", action="store_true")
    args = ap.parse_args()
    bench_graph(args.assets)
    bench_map(args.items, args.ray)
    write_result("factory", "Factory: the graph and the executors", FIGURES, measures=(
        "In a temporary ledger, a chain of assets (one row each): the first materialization, "
        "a fully cached rerun (plan, history read, run rows) and a plan alone; then a trivial "
        "function mapped over items by each executor: pure dispatch overhead, the floor under "
        "any real per-item work."))


if __name__ == "__main__":
    main()
