"""SWE-bench export loads with `datasets` (JSON and Parquet) and imports back."""

import json

import pytest

from codemill.core.errors import TaskError
from codemill.core.records import TaskKind, TaskSpec
from codemill.tasks.patches import make_diff
from codemill.tasks.records import task_id
from codemill.tasks.swebench import (
    FIELDS,
    from_instance,
    read_instances,
    write_jsonl,
    write_parquet,
)


def _task(n: int) -> TaskSpec:
    broken = make_diff({"m.py": b"x = 1\n"}, {"m.py": f"x = {n}\n".encode()})
    gold = make_diff({"m.py": f"x = {n}\n".encode()}, {"m.py": b"x = 1\n"})
    f2p, p2p = (f"tests/test_m.py::test_{n}",), ("tests/test_m.py::test_ok",)
    return TaskSpec(task_id=task_id("env", broken, "", f2p, p2p), env_id="env",
                    kind=TaskKind.SYNTH, broken_patch=broken, gold_patch=gold,
                    fail_to_pass=f2p, pass_to_pass=p2p, problem_statement=f"issue {n}",
                    hidden_paths=("tests/test_m.py",),
                    metadata={"repo": "https://example.invalid/o/calc.git",
                              "base_commit": "a" * 40, "created_at": "2024-01-02"})


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))


def test_export_loads_with_datasets(tmp_path, hf_offline):
    datasets = pytest.importorskip("datasets")
    tasks = [_task(n) for n in (2, 3)]
    assert write_jsonl(tasks, tmp_path / "t.jsonl") == 2
    assert write_parquet(tasks, tmp_path / "t.parquet") == 2
    for kind, name in (("json", "t.jsonl"), ("parquet", "t.parquet")):
        ds = datasets.load_dataset(kind, data_files=str(tmp_path / name), split="train",
                                   cache_dir=str(tmp_path / "hf" / kind))
        assert ds.num_rows == 2 and set(FIELDS) <= set(ds.column_names)
        row = ds[0]
        assert json.loads(row["FAIL_TO_PASS"]) == ["tests/test_m.py::test_2"]
        assert isinstance(row["PASS_TO_PASS"], str)
        assert row["instance_id"].startswith("calc__codemill-")
        assert row["base_commit"] == "a" * 40 and row["patch"] == tasks[0].gold_patch


def test_import_roundtrip_keeps_identity(tmp_path):
    tasks = [_task(4)]
    write_jsonl(tasks, tmp_path / "t.jsonl")
    back = [from_instance(r, "env") for r in read_instances(tmp_path / "t.jsonl")]
    assert back[0].task_id == tasks[0].task_id and back[0].kind == TaskKind.IMPORTED
    assert back[0].broken_patch == tasks[0].broken_patch


def test_import_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instance_id": "x", "patch": "p", "FAIL_TO_PASS": "not json"}\n')
    with pytest.raises(TaskError, match="x: FAIL_TO_PASS is not a JSON list"):
        [from_instance(r, "env") for r in read_instances(bad)]
    bad.write_text("[1, 2]\n")
    with pytest.raises(TaskError, match="not a JSON object"):
        list(read_instances(bad))
