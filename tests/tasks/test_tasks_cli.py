"""`codemill tasks ...` end to end: mine a real fix, resume, list, export, import."""

import json

import pytest
from typer.testing import CliRunner

from codemill.cli.main import app


@pytest.fixture
def cli(calc_env, monkeypatch):
    settings, repo, env = calc_env
    monkeypatch.setenv("CODEMILL_HOME", str(settings.home))
    monkeypatch.chdir(settings.home.parent)
    runner = CliRunner()

    def run(*args):
        res = runner.invoke(app, list(args))
        assert res.exit_code == 0, res.output
        return res.stdout

    return run, repo, env


def test_mine_resume_export_import(cli, tmp_path):
    run, repo, env = cli
    quick = ["--runs", "2", "--mutants", "2", "--json"]
    out = json.loads(run("tasks", "mine", env.env_id[:12], "--repo", str(repo), *quick))
    assert len(out["tasks"]) == 1
    funnel = out["funnel"]
    assert funnel["candidates"] == 2 and funnel["not_flaky"] == 1
    assert funnel["rejected"] == {"root commit": 1}

    again = json.loads(run("tasks", "mine", env.env_id[:12], "--repo", str(repo), *quick))
    assert again["tasks"] == [] and again["funnel"]["skipped_known"] == 2
    assert again["funnel"]["candidates"] == 0

    rows = json.loads(run("tasks", "ls", "--json"))
    mined = [r for r in rows if r["kind"] == "mined"]
    assert [r["task_id"] for r in mined] == out["tasks"]
    shown = json.loads(run("tasks", "show", out["tasks"][0][:10], "--json"))
    assert shown["fail_to_pass"] == ["tests/test_high.py::test_clamp_high"]
    assert "tests/test_calc.py::test_add" in shown["pass_to_pass"]
    assert shown["hidden_paths"] == ["tests/test_high.py"]
    assert "return hi" not in shown["problem_statement"]

    target = tmp_path / "tasks.jsonl"
    run("tasks", "export", "--format", "swebench", str(target), "--env", env.env_id[:12])
    instances = [json.loads(x) for x in target.read_text().splitlines()]
    inst = next(i for i in instances if i["codemill_task_id"] == out["tasks"][0])
    assert json.loads(inst["FAIL_TO_PASS"]) == shown["fail_to_pass"]
    assert inst["base_commit"] == shown["metadata"]["base_commit"]

    # a wrong label (a passing test listed as FAIL_TO_PASS) is caught on import
    wrong = dict(inst, FAIL_TO_PASS=json.dumps(["tests/test_calc.py::test_add"]),
                 instance_id="calc__wrong")
    bad_file = tmp_path / "wrong.jsonl"
    bad_file.write_text(json.dumps(wrong) + "\n" + json.dumps(inst) + "\n")
    imported = json.loads(run("tasks", "import", str(bad_file), "--env", env.env_id[:12],
                              *quick))
    assert imported["funnel"]["rejected"] == {"broken state passes FAIL_TO_PASS": 1}
    assert imported["funnel"]["passed_validation"] == 1
