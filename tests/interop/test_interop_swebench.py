"""SWE-bench round trip on the toy task, with the official ``swebench`` package (no Docker):
exported instances load with its dataset loader and build its ``TestSpec``; its own grading
of the exported eval script, run in codemill's sandbox, agrees with codemill's grader; and
``codemill grade --predictions`` grades a predictions file in SWE-bench's format."""

from __future__ import annotations

import json
import typing

import pytest
from swebench.harness.constants import EvalType
from swebench.harness.grading import get_eval_report
from swebench.harness.log_parsers import PARSER_REGISTRY
from swebench.harness.utils import load_swebench_dataset, make_test_spec
from swebench.types import SWEbenchInstance
from typer.testing import CliRunner

from codemill.cli.main import app
from codemill.core.config import CatalogConfig
from codemill.rewards.grader import grade
from codemill.rollouts.session import open_session
from codemill.store.ledger import Ledger
from codemill.store.rows import record_to_row
from codemill.tasks.patches import file_diff
from codemill.tasks.swebench import to_instance, write_jsonl, write_parquet
from interop.test_interop_serve_cli import record_toy
from rewards.toyproject import BROKEN_OPS

WRONG = file_diff("src/calc/ops.py", BROKEN_OPS.encode(),
                  BROKEN_OPS.replace("return a - b", "return a * b", 1).encode())


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))


def test_exported_instances_load_with_swebench(toy, tmp_path, hf_offline):
    task = toy.task
    write_jsonl([task], tmp_path / "t.jsonl")
    write_parquet([task], tmp_path / "t.parquet")
    for name in ("t.jsonl", "t.parquet"):
        [inst] = load_swebench_dataset(str(tmp_path / name), instance_ids=None)
        inst = dict(inst)
        for key in typing.get_type_hints(SWEbenchInstance):  # its instance schema
            assert isinstance(inst[key], str), key
        spec = make_test_spec(inst)
        assert spec.instance_id == inst["instance_id"] == to_instance(task)["instance_id"]
        assert list(task.fail_to_pass) == spec.FAIL_TO_PASS
        assert list(task.pass_to_pass) == spec.PASS_TO_PASS
        assert spec.log_parser in PARSER_REGISTRY and EvalType(spec.eval_type)
        # its harness found the end marker and records the tests' own exit status
        assert "SWEBENCH_TEST_EXIT_CODE=$?" in spec.eval_script


def swebench_verdict(toy, tmp_path, patch: str) -> bool:
    """SWE-bench's grading of the exported eval script, run in a fork of the task's
    workspace (the broken state) after ``patch`` is applied there."""
    spec = make_test_spec(to_instance(toy.task))
    with open_session(toy.task, toy.env, toy.home, toy.settings) as session:
        session.reset()
        applied = session.fork.run(["git", "apply", "-"], stdin=patch, timeout_s=60)
        assert applied.exit_code == 0, applied.stderr
        # one stream, in order, as the harness's container log is
        res = session.fork.run(["bash", "-c", "exec 2>&1\n" + spec.eval_script],
                               timeout_s=120)
    log = tmp_path / "eval.log"
    log.write_text(res.stdout + res.stderr)
    pred = {"instance_id": spec.instance_id, "model_name_or_path": "t", "model_patch": patch}
    report = get_eval_report(spec, pred, str(log), include_tests_status=True)
    entry = report[spec.instance_id]
    assert entry["patch_successfully_applied"], log.read_text()[-2000:]
    return entry["resolved"]


def test_swebench_grading_of_the_export_agrees_with_codemill(toy, tmp_path):
    for patch, resolved in ((toy.task.gold_patch, True), (WRONG, False)):
        assert swebench_verdict(toy, tmp_path, patch) is resolved
        ours = grade(toy.task, patch, env=toy.env, home=toy.home, settings=toy.settings,
                     rollout_id="swebench-check", policy="t")
        assert ours.resolved is resolved


@pytest.fixture
def cli_env(toy, tmp_path, monkeypatch):
    """The toy's environment and task in a ledger of this test's own, for the CLI."""
    for key, value in record_toy(toy).items():
        monkeypatch.setenv(key, value)
    catalog = CatalogConfig(uri=f"sqlite:///{tmp_path / 'catalog.db'}",
                            warehouse=(tmp_path / "warehouse").as_uri())
    monkeypatch.setenv("CODEMILL_CATALOG__URI", catalog.uri)
    monkeypatch.setenv("CODEMILL_CATALOG__WAREHOUSE", catalog.warehouse)
    settings = toy.settings.model_copy(update={"catalog": catalog})
    with Ledger.open(settings) as ledger:
        for table, record in (("environments", toy.env), ("tasks", toy.task)):
            with ledger.writer(table, run_id="test", asset=table, config_hash="") as w:
                w.add(record_to_row(record))
    return settings


def test_grade_predictions(toy, tmp_path, cli_env):
    iid = to_instance(toy.task)["instance_id"]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps(p) + "\n" for p in (
        {"instance_id": iid, "model_name_or_path": "gold", "model_patch": toy.task.gold_patch},
        {"instance_id": iid, "model_name_or_path": "wrong", "model_patch": WRONG},
        {"instance_id": iid, "model_name_or_path": "none", "model_patch": None})))
    res = CliRunner().invoke(app, ["grade", "--predictions", str(preds), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["total"] == 3 and summary["resolved_ids"] == [iid]
    assert summary["unresolved_ids"] == [iid, iid] and summary["empty_patch_ids"] == [iid]
    assert [p["model_name_or_path"] for p in summary["predictions"]] == ["gold", "wrong", "none"]
    with Ledger.open(cli_env) as ledger:
        rows = ledger.read("rewards").to_pylist()
    assert sorted((r["policy"], r["value"]) for r in rows) == [
        ("gold", 1.0), ("none", 0.0), ("wrong", 0.0)]
    assert {r["task_id"] for r in rows} == {toy.task.task_id}
    text = CliRunner().invoke(app, ["grade", "--predictions", str(preds)])
    assert text.exit_code == 0 and "predictions 3  resolved 1  unresolved 2" in text.stdout


@pytest.mark.parametrize("content, message", [
    ('{"instance_id": "x", "model_name_or_path": "m", "model_patch": ""}\nnot json\n',
     "preds.jsonl:2: not JSON"),
    ('{"instance_id": "x", "model_patch": ""}\n', "preds.jsonl:1: model_name_or_path must be"),
    ('[1]\n', "preds.jsonl:1: not a JSON object"),
    ('{"instance_id": "calc__codemill-000000000000", "model_name_or_path": "m", '
     '"model_patch": ""}\n', "no task id 'calc__codemill-000000000000'"),
    ("\n", "no predictions"),
])
def test_a_bad_predictions_file_is_one_line_and_no_rows(tmp_path, cli_env, content, message):
    preds = tmp_path / "preds.jsonl"
    preds.write_text(content)
    res = CliRunner().invoke(app, ["grade", "--predictions", str(preds)])
    assert res.exit_code == 1 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    with Ledger.open(cli_env) as ledger:
        assert "rewards" not in ledger.table_names() or not ledger.read("rewards").num_rows


def test_grade_needs_task_and_patch_or_predictions(tmp_path, cli_env):
    res = CliRunner().invoke(app, ["grade", "abc"])
    assert res.exit_code == 1 and "give TASK and --patch FILE, or --predictions FILE" in res.output
    (tmp_path / "p.jsonl").write_text("{}\n")
    res = CliRunner().invoke(app, ["grade", "abc", "--predictions", str(tmp_path / "p.jsonl")])
    assert res.exit_code == 1 and "give no TASK" in res.output


def test_predictions_as_json_list_or_object(tmp_path):
    from codemill.core.errors import TaskError
    from codemill.tasks.swebench import read_predictions

    pred = {"instance_id": "a__b-1", "model_name_or_path": "m", "model_patch": "diff"}
    (tmp_path / "p.json").write_text(json.dumps({"a__b-1": pred}))
    assert read_predictions(tmp_path / "p.json") == [pred]
    (tmp_path / "p.json").write_text(json.dumps([pred, pred]))
    with pytest.raises(TaskError, match="p.json: prediction 2: a__b-1 predicted again by m"):
        read_predictions(tmp_path / "p.json")
    with pytest.raises(TaskError, match="nope.jsonl: no such file"):
        read_predictions(tmp_path / "nope.jsonl")
