"""``codemill factory plan|materialize`` in a real subprocess, with assets loaded from a
file by ``--module``; and a materialization SIGKILLed mid-way, then rerun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SAMPLE = str(Path(__file__).with_name("sample_assets.py"))
CLI = [sys.executable, "-c", "from codemill.cli.main import main; main()"]


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEMILL_")}
    env.update({"CODEMILL_HOME": str(tmp_path / ".codemill"),
                "SAMPLE_CALLS": str(tmp_path / "calls")}, **extra)
    return env


def _cli(tmp_path, *args, env=None, check=True):
    out = subprocess.run([*CLI, "factory", *args], cwd=tmp_path, env=env or _env(tmp_path),
                         capture_output=True, text=True, timeout=120)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def _calls(tmp_path):
    path = tmp_path / "calls"
    return path.read_text().split("\n")[:-1] if path.exists() else []


def _sample(tmp_path, n):
    cfg = tmp_path / "assets.toml"
    cfg.write_text(f"[snapshots]\nn = {n}\n")
    return ["--no-pipeline", "--module", SAMPLE, "--asset-config", str(cfg)]


def test_cli_without_assets_or_with_a_bad_module_says_so_in_one_line(tmp_path):
    out = _cli(tmp_path, "plan", "--no-pipeline")
    assert "no assets registered" in out.stderr and out.stdout == ""
    bad = _cli(tmp_path, "plan", "--no-pipeline", "--module", "no_such_assets_mod",
               check=False)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip() == ("error: cannot import asset module 'no_such_assets_mod': "
                                  "No module named 'no_such_assets_mod'")


def test_plan_and_materialize_through_the_cli(tmp_path):
    opts = _sample(tmp_path, 5)
    done = json.loads(_cli(tmp_path, "materialize", *opts, "--json").stdout)
    assert done["ok"]
    assert [(a["asset"], a["status"], a["rows"], a["reason"]) for a in done["assets"]] == [
        ("snapshots", "success", 5, "new: never materialized"),
        ("environments", "success", 5, "new: never materialized")]
    assert _calls(tmp_path) == ["snapshots 5", "environments 5"]

    table = _cli(tmp_path, "plan", *opts).stdout
    assert sum("│ cached " in line for line in table.splitlines()) == 2
    assert done["run_id"][:12] in table
    assert "0 to run, 2 cached" in table

    opts = _sample(tmp_path, 7)
    steps = json.loads(_cli(tmp_path, "plan", *opts, "environments", "--json").stdout)
    assert [(s["asset"], s["action"], s["reason"]) for s in steps] == [
        ("snapshots", "run", "config changed"),
        ("environments", "run", "upstream changed: snapshots")]
    assert steps[1]["upstream"] == {"snapshots": steps[0]["cache_key"]}
    assert len(_calls(tmp_path)) == 2  # planning runs nothing


@pytest.mark.slow
def test_killed_materialization_reruns_without_duplicates(tmp_path):
    """SIGKILL while ``snapshots`` is half written: the committed batches stay, no success
    is recorded, and the rerun makes only the missing rows."""
    opts = _sample(tmp_path, 40)
    marker = tmp_path / "hanging"
    env = _env(tmp_path, CODEMILL_WRITER__BATCH_ROWS="5", SAMPLE_HANG_AT="13",
               SAMPLE_MARKER=str(marker))
    proc = subprocess.Popen([*CLI, "factory", "materialize", *opts], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the asset never reached its hang point"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    from codemill.core.config import Settings
    from codemill.store.ledger import Ledger

    with Ledger.open(Settings(home=tmp_path / ".codemill")) as led:
        committed = led.read("snapshots").num_rows
        assert 10 <= committed < 40  # two full batches of 5 landed before the kill
        assert led.read("materializations").num_rows == 0
        assert [r["status"] for r in led.recent_runs()] == ["running"]

    done = json.loads(_cli(tmp_path, "materialize", *opts, "--json").stdout)
    assert done["ok"] and [a["status"] for a in done["assets"]] == ["success", "success"]
    assert _calls(tmp_path) == [f"snapshots {40 - committed}", "environments 40"]

    with Ledger.open(Settings(home=tmp_path / ".codemill")) as led:
        ids = led.read("snapshots", columns=["snapshot_id"]).column("snapshot_id").to_pylist()
        assert len(ids) == 40 and len(set(ids)) == 40
        assert led.read("environments").num_rows == 40
        mats = led.read("materializations").to_pylist()
        assert {(m["asset"], m["status"]) for m in mats} == {("snapshots", "success"),
                                                            ("environments", "success")}
