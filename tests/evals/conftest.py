"""A real ledger in a temp dir seeded, through the factory, with the toy project's
snapshot, environment and two tasks (``tests/rewards/toyproject.py``)."""

from __future__ import annotations

import pytest

from codemill.core.config import CatalogConfig
from codemill.core.ids import content_id
from codemill.core.records import TaskKind, TaskSpec
from codemill.factory.graph import Registry
from codemill.factory.materialize import materialize
from codemill.tasks.patches import file_diff

OPS = "src/calc/ops.py"


def sub_task(env, ops_text: str) -> TaskSpec:
    """A second toy task: ``sub`` adds; its visible test fails."""
    broken = ops_text.replace("return a - b", "return a + b")
    bp = file_diff(OPS, ops_text.encode(), broken.encode())
    gp = file_diff(OPS, broken.encode(), ops_text.encode())
    f2p, p2p = ("tests/test_ops.py::test_sub",), ("tests/test_ops.py::test_mul",)
    return TaskSpec(task_id=content_id(env.env_id, bp, "", f2p, p2p), env_id=env.env_id,
                    kind=TaskKind.SYNTH, broken_patch=bp, gold_patch=gp, fail_to_pass=f2p,
                    pass_to_pass=p2p, problem_statement="calc.sub(5, 3) returns 8; it "
                    "should return 2.", hidden_paths=(),
                    metadata={"lines_changed": 2, "files_changed": 1, "strength": "strong"})


def seed(settings, rows_by_table: dict[str, list]) -> None:
    """Record rows through the factory: one test asset per table."""
    reg = Registry()
    for table, rows in rows_by_table.items():
        reg.asset(table, "test")(lambda ctx, rows=rows: iter(rows))
    # the rows' content is the config, so seeding other rows later is not a cache hit
    config = {table: {"rows": content_id(rows)} for table, rows in rows_by_table.items()}
    result = materialize(list(rows_by_table), config, settings, registry=reg, command="seed")
    result.raise_for_status()


@pytest.fixture
def world(toy, tmp_path):
    from rewards.toyproject import FILES, _snapshot_record

    wh = tmp_path / "warehouse"
    wh.mkdir()
    settings = toy.settings.model_copy(update={"catalog": CatalogConfig(
        uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=wh.as_uri())})
    snap = _snapshot_record(toy.home)
    tasks = [toy.task, sub_task(toy.env, FILES[OPS])]
    seed(settings, {"snapshots": [snap], "environments": [toy.env], "tasks": tasks})
    return settings, snap, tasks
