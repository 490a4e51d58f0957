"""Interchange with the SWE-bench instance format (JSONL and Parquet).

One instance per task, with SWE-bench's fields and types: ``instance_id``, ``repo``,
``base_commit``, ``patch`` (the gold patch), ``test_patch``, ``problem_statement``,
``hints_text``, ``created_at``, ``version``, ``environment_setup_commit``, and
``FAIL_TO_PASS``/``PASS_TO_PASS`` as JSON-encoded lists of test ids (strings, as the
published datasets store them).

SWE-bench's base state is a commit. A mined task's base is its parent commit, so the
instance is standard. A synthesized or feature task's base is the snapshot's commit *plus*
a bug; that bug travels in the extra field ``codemill_broken_patch`` (apply it after
checking out ``base_commit``), next to ``codemill_task_id``, ``codemill_env_id`` and
``codemill_kind``. Consumers that ignore extra fields still load the file.

``repo`` and ``base_commit`` come from the task's own metadata (a mined task knows its
repository and parent commit) or else from the snapshot its environment was built from
(``source_fields``): a git source gives its URL and commit; a PyPI release gives
``pypi:NAME``, its version and ``sha256:<sdist hash>``; a local directory gives its path
and its git commit when the snapshot has one, else the snapshot's content id (the tree
hash: there is no commit to check out). Every command that takes a task accepts the
``instance_id`` written here (``codemill.factory.lookup.find_task``).

Import reads such files back into ``TaskSpec``s of kind ``imported`` for one environment;
``codemill tasks validate`` then checks their labels like any other task's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from codemill.core.errors import TaskError
from codemill.core.records import RepoSnapshot, SourceKind, TaskKind, TaskSpec
from codemill.repos.sources import split_rev
from codemill.tasks.patches import patch_paths
from codemill.tasks.paths import is_test_path
from codemill.tasks.records import task_id

FIELDS = (
    "instance_id", "repo", "base_commit", "patch", "test_patch", "problem_statement",
    "hints_text", "created_at", "version", "FAIL_TO_PASS", "PASS_TO_PASS",
    "environment_setup_commit",
)
EXTRA = ("codemill_task_id", "codemill_env_id", "codemill_kind", "codemill_broken_patch")


def source_fields(snapshot: RepoSnapshot | None) -> dict[str, str]:
    """``repo``, ``base_commit`` and ``version`` of a snapshot (see the module docstring)."""
    if snapshot is None:
        return {}
    if snapshot.source_kind == SourceKind.PYPI:
        name, _, version = snapshot.source.removeprefix("pypi:").partition("==")
        return {"repo": f"pypi:{name}", "base_commit": snapshot.commit or snapshot.snapshot_id,
                "version": version}
    location, _ = split_rev(snapshot.source)
    return {"repo": location, "base_commit": snapshot.commit or snapshot.snapshot_id}


def to_instance(task: TaskSpec, snapshot: RepoSnapshot | None = None) -> dict[str, str]:
    """The SWE-bench instance of ``task`` (every value a string); ``snapshot`` is the one
    its environment was built from, for ``repo``/``base_commit`` the task does not know."""
    md = {**source_fields(snapshot), **{k: v for k, v in task.metadata.items() if v}}
    repo = str(md.get("repo") or md.get("project") or "")
    slug = repo.rstrip("/").split("/")[-1].removesuffix(".git").removeprefix("pypi:")
    return {
        "instance_id": f"{slug or 'repo'}__codemill-{task.task_id[:12]}",
        "repo": repo,
        "base_commit": str(md.get("base_commit") or ""),
        "patch": task.gold_patch,
        "test_patch": task.test_patch,
        "problem_statement": task.problem_statement,
        "hints_text": "",
        "created_at": str(md.get("created_at") or ""),
        "version": str(md.get("version") or ""),
        "FAIL_TO_PASS": json.dumps(list(task.fail_to_pass)),
        "PASS_TO_PASS": json.dumps(list(task.pass_to_pass)),
        "environment_setup_commit": "",
        "codemill_task_id": task.task_id,
        "codemill_env_id": task.env_id,
        "codemill_kind": str(task.kind),
        "codemill_broken_patch": task.broken_patch,
    }


Snapshots = Mapping[str, RepoSnapshot]
"""``env_id -> snapshot`` of the environments the tasks belong to."""


def write_jsonl(tasks: Iterable[TaskSpec], path: Path, snapshots: Snapshots | None = None
                ) -> int:
    """Write instances as JSON Lines; returns how many."""
    n = 0
    snaps = snapshots or {}
    with Path(path).open("w", encoding="utf-8") as fh:
        for t in tasks:
            fh.write(json.dumps(to_instance(t, snaps.get(t.env_id)), ensure_ascii=False)
                     + "\n")
            n += 1
    return n


def write_parquet(tasks: Iterable[TaskSpec], path: Path, snapshots: Snapshots | None = None
                  ) -> int:
    """Write instances as one Parquet file (all columns strings); returns how many."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    snaps = snapshots or {}
    rows = [to_instance(t, snaps.get(t.env_id)) for t in tasks]
    cols = {name: pa.array([r[name] for r in rows], type=pa.string()) for name in FIELDS + EXTRA}
    pq.write_table(pa.table(cols), str(path))
    return len(rows)


def _test_ids(value: Any, field: str, iid: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            raise TaskError(f"{iid}: {field} is not a JSON list") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TaskError(f"{iid}: {field} must be a list of test ids")
    return tuple(value)


def from_instance(row: Mapping[str, Any], env_id: str) -> TaskSpec:
    """A ``TaskSpec`` (kind ``imported``) for environment ``env_id`` from one instance."""
    iid = str(row.get("instance_id") or "?")
    for need in ("patch", "FAIL_TO_PASS"):
        if not row.get(need):
            raise TaskError(f"{iid}: missing {need}")
    f2p = _test_ids(row["FAIL_TO_PASS"], "FAIL_TO_PASS", iid)
    p2p = _test_ids(row.get("PASS_TO_PASS") or "[]", "PASS_TO_PASS", iid)
    broken = str(row.get("codemill_broken_patch") or "")
    test_patch = str(row.get("test_patch") or "")
    hidden = tuple(sorted({p for p in patch_paths(test_patch) if is_test_path(p)}))
    meta = {k: row.get(k) for k in ("instance_id", "repo", "base_commit", "version",
                                    "created_at", "hints_text") if row.get(k)}
    meta["source_kind"] = "imported"
    return TaskSpec(
        task_id=task_id(env_id, broken, test_patch, f2p, p2p),
        env_id=env_id, kind=TaskKind.IMPORTED, broken_patch=broken,
        gold_patch=str(row["patch"]), test_patch=test_patch, fail_to_pass=f2p,
        pass_to_pass=p2p, problem_statement=str(row.get("problem_statement") or ""),
        hidden_paths=hidden, metadata=meta,
    )


def read_instances(path: Path) -> Iterator[dict[str, Any]]:
    """Instances from a ``.jsonl`` or ``.parquet`` file."""
    path = Path(path)
    if not path.exists():
        raise TaskError(f"{path}: no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from pq.read_table(str(path)).to_pylist()
        return
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskError(f"{path}:{n}: not JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise TaskError(f"{path}:{n}: not a JSON object")
            yield row
