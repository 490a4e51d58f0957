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

SWE-bench 5's harness builds a ``TestSpec`` from four more fields, written too (``V5``):
``eval_script`` (apply the test patch, run the selected tests between SWE-bench's output
markers with ``pytest -rA``, take the test patch back out: run from the repository root in
an environment where the project is installed, after the prediction is applied),
``log_parser`` (``parse_log_pytest``), ``eval_type`` (``pass_and_fail``) and ``image``,
left empty: codemill runs an instance in its own environment (``codemill_env_id``), not
in a SWE-bench Docker image. A task whose test ids are not pytest node ids gets an empty
``eval_script`` and ``log_parser``.

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
import shlex
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
V5 = ("image", "log_parser", "eval_type", "eval_script")
"""The fields SWE-bench 5's ``make_test_spec`` reads beyond ``FIELDS``."""
EXTRA = ("codemill_task_id", "codemill_env_id", "codemill_kind", "codemill_broken_patch")
START_TEST_OUTPUT, END_TEST_OUTPUT = ">>>>> Start Test Output", ">>>>> End Test Output"
"""SWE-bench's markers: its grading parses only the log between them."""
_EOF = "EOF_CODEMILL_TEST_PATCH"


def eval_script(task: TaskSpec) -> str:
    """The instance's ``eval_script`` (module docstring); empty for non-pytest test ids."""
    ids = [*task.fail_to_pass, *task.pass_to_pass]
    if not ids or not all("::" in i for i in ids):
        return ""
    patch = task.test_patch.rstrip("\n")
    lines = ["#!/bin/bash", "set -uxo pipefail"]
    if patch:
        lines += [f"git apply --verbose - <<'{_EOF}'", patch, _EOF]
    lines += [f": '{START_TEST_OUTPUT}'",
              "python -m pytest -rA -p no:cacheprovider " + " ".join(map(shlex.quote, ids)),
              f": '{END_TEST_OUTPUT}'"]
    if patch:
        lines += [f"git apply --verbose -R - <<'{_EOF}'", patch, _EOF]
    return "\n".join(lines) + "\n"


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
    script = eval_script(task)
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
        "image": "",
        "log_parser": "parse_log_pytest" if script else "",
        "eval_type": "pass_and_fail",
        "eval_script": script,
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
    cols = {name: pa.array([r[name] for r in rows], type=pa.string())
            for name in FIELDS + V5 + EXTRA}
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


PREDICTION_KEYS = ("instance_id", "model_name_or_path", "model_patch")
"""A SWE-bench prediction: the instance, who made it, and the diff (empty or null for
no change)."""


def read_predictions(path: Path) -> list[dict[str, str]]:
    """Predictions in SWE-bench's format from ``.jsonl`` (one object a line) or ``.json``
    (a list, or an object keyed by instance id), each with ``PREDICTION_KEYS``
    (``model_patch`` null read as empty). ``TaskError`` naming the file and line for a
    missing file, a line that is not a JSON object, a missing or non-text field, or an
    instance predicted twice by one model."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8", errors="replace")
    entries: list[tuple[str, Any]] = []
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaskError(f"{path}: not JSON: {exc.msg} (line {exc.lineno})") from None
        items = list(data.values()) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise TaskError(f"{path}: expected a list of predictions or an object of them")
        entries = [(f"{path}: prediction {n}", item) for n, item in enumerate(items, 1)]
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append((f"{path}:{n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise TaskError(f"{path}:{n}: not JSON: {exc.msg}") from None
    preds: list[dict[str, str]] = []
    seen: dict[tuple[str, str], str] = {}
    for where, item in entries:
        if not isinstance(item, dict):
            raise TaskError(f"{where}: not a JSON object")
        if item.get("model_patch", "") is None:
            item = {**item, "model_patch": ""}
        for key in PREDICTION_KEYS:
            if not isinstance(item.get(key), str) or (key != "model_patch" and not item[key]):
                raise TaskError(f"{where}: {key} must be "
                                f"{'text' if key == 'model_patch' else 'non-empty text'}")
        key2 = (item["instance_id"], item["model_name_or_path"])
        if key2 in seen:
            raise TaskError(f"{where}: {key2[0]} predicted again by {key2[1]} "
                            f"(first at {seen[key2]})")
        seen[key2] = where
        preds.append({k: item[k] for k in PREDICTION_KEYS})
    if not preds:
        raise TaskError(f"{path}: no predictions")
    return preds
