"""`codemill env serve` end to end: tasks read from the ledger, served over loopback with a
token, a scripted episode earns 1, and Ctrl-C closes every session it left open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner

from codemill.cli.main import app
from codemill.store.ledger import Ledger
from codemill.store.rows import record_to_row
from interop.served import forks
from rollouts.test_rollouts_groups import FIX

CODEMILL = Path(sys.executable).parent / "codemill"


def record_toy(toy) -> dict[str, str]:
    """The toy's environment and task in its ledger (as the factory would have recorded
    them); the variables a command needs to find them."""
    with Ledger.open(toy.settings) as ledger:
        for table, key, record in (("environments", "env_id", toy.env),
                                   ("tasks", "task_id", toy.task)):
            known = set(ledger.read(table, columns=[key]).column(key).to_pylist())
            if getattr(record, key) not in known:
                with ledger.writer(table, run_id="test", asset=table, config_hash="") as w:
                    w.add(record_to_row(record))
    env = {"CODEMILL_HOME": str(toy.home), "CODEMILL_EXECUTOR__WORKERS": "1"}
    for key, value in toy.settings.sandbox.model_dump().items():
        env[f"CODEMILL_SANDBOX__{key.upper()}"] = str(value)
    return env


def test_serve_until_interrupted(toy):
    env = {**os.environ, **record_toy(toy), "CODEMILL_SERVE_TOKEN": "s3cret"}
    before = forks(toy)
    proc = subprocess.Popen(
        [str(CODEMILL), "env", "serve", toy.task.task_id[:10], "--port", "0",
         "--max-sessions", "2", "--max-steps", "5"],
        env=env, cwd=toy.home.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving 1 task(s) at http://127.0.0.1:"), proc.stderr.read()
        url = line.split(" at ", 1)[1].strip()
        auth = {"Authorization": "Bearer s3cret"}
        with httpx.Client(base_url=url, headers=auth, timeout=120) as http:
            assert http.get("/tasks").json()[0]["task_id"] == toy.task.task_id
            sid = http.post("/sessions", json={"task_id": toy.task.task_id}
                            ).json()["session_id"]
            rewards = [http.post(f"/sessions/{sid}/step", json={"action": a}).json()["reward"]
                       for a in FIX]
            assert rewards == [0.0, 0.0, 1.0]
            http.post(f"/sessions/{sid}/reset")  # left open: Ctrl-C must close it
            assert len(forks(toy) - before) == 1
            assert httpx.get(f"{url}/tasks").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    # uvicorn shuts down (the app closes its sessions), then re-raises the signal: the CLI
    # exits as any interrupted command does
    assert proc.returncode == 130 and "interrupted" in err, err
    assert forks(toy) == before


def test_serving_beyond_loopback_needs_a_token(toy, monkeypatch):
    for key, value in record_toy(toy).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CODEMILL_SERVE_TOKEN", raising=False)
    res = CliRunner().invoke(app, ["env", "serve", toy.task.task_id[:10], "--host", "0.0.0.0"])
    assert res.exit_code == 1 and "needs a bearer token" in res.output
