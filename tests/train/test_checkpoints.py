"""Checkpoints: `codemill train sft` killed with SIGKILL and rerun gives the same weights as
an uninterrupted run; the result loads as `--model ckpt:ID` and is recorded with lineage."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.train.traces import chat_trace

from codemill.train.export import ExportRow, export_parquet

pytestmark = pytest.mark.slow
STEPS = 16


@pytest.fixture(scope="module")
def export(tokenizer, tmp_path_factory):
    rows = []
    for i, name in enumerate(("add", "mul", "parse", "render")):
        trace = chat_trace(tokenizer, f"{name}() is wrong.",
                           ["Let me run the tests.\n<tool name=\"run_tests\"></tool>",
                            'Fixed. <tool name="submit"></tool>'], [f"FAILED test_{name}"])
        rows.append(ExportRow(f"r{i}", f"t{i}", f"g{i}", "expert", 1.0, "submitted", trace))
    path = tmp_path_factory.mktemp("export") / "sft.parquet"
    assert export_parquet(rows, path) == 4
    return path


def _cmd(tiny_dir, export):
    return [sys.executable, "-m", "codemill.cli.main", "train", "sft", "--model",
            f"transformers:{tiny_dir}", "--data", "parquet", "--data-path", str(export),
            "--steps", str(STEPS), "--batch", "2", "--lr", "1e-3", "--threads", "1",
            "--device", "cpu", "--json"]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "CODEMILL_HOME": str(home), "CODEMILL_CONFIG": str(home / "none")}


def _weights(path: Path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_kill_and_resume_gives_the_uninterrupted_checkpoint(tiny_dir, export, tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    out = subprocess.run(_cmd(tiny_dir, export), env=_env(whole), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    first = json.loads(out.stdout)
    assert not first["cached"] and len(first["metrics"]) == STEPS

    proc = subprocess.Popen(_cmd(tiny_dir, export), env=_env(cut), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    states = cut / "checkpoints"
    while time.monotonic() < deadline and proc.poll() is None:
        if any(states.glob("*/state/step-00000[3-6]")):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (run_dir,) = [p for p in states.iterdir() if not p.name.startswith(".")]
    assert not (run_dir / "manifest.json").exists(), "killed after it finished"
    # A kill between a state's rename and the removal of the older one leaves both;
    # resume takes the newest.
    killed_at = max(int(p.name.split("-")[1]) for p in (run_dir / "state").glob("step-*"))
    assert 3 <= killed_at < STEPS

    again = subprocess.run(_cmd(tiny_dir, export), env=_env(cut), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads(again.stdout)
    assert second["checkpoint_id"] == first["checkpoint_id"]
    assert [m["step"] for m in second["metrics"]] == list(range(1, STEPS + 1))
    a, b = _weights(Path(first["path"])), _weights(Path(second["path"]))
    assert a.keys() == b.keys()
    assert all(bool((a[k] == b[k]).all()) for k in a)
    assert [m["loss"] for m in second["metrics"]] == [m["loss"] for m in first["metrics"]]

    # A rerun of a finished job is a cache hit; the checkpoint serves as a model spec.
    cached = subprocess.run(_cmd(tiny_dir, export), env=_env(cut), capture_output=True,
                            text=True, timeout=600)
    assert json.loads(cached.stdout)["cached"] is True
    from codemill.agent.models import make_backend
    from codemill.core.records import Message, SamplingConfig

    backend = make_backend(f"ckpt:{first['checkpoint_id'][:10]}", home=cut)
    reply = backend.complete([Message(role="user", content="hi")],
                             sampling=SamplingConfig(max_tokens=4))
    assert backend.name == f"ckpt:{first['checkpoint_id']}" and reply.token_ids

    from codemill.core.config import Settings
    from codemill.store.ledger import Ledger

    with Ledger.open(Settings(home=cut)) as ledger:
        rows = ledger.read("checkpoints").to_pylist()
    (row,) = rows
    assert row["checkpoint_id"] == first["checkpoint_id"] and row["kind"] == "sft"
    assert row["base_model"] == f"transformers:{tiny_dir}" and row["parent_id"] is None
    assert json.loads(row["rollout_ids"]) == ["r0", "r1", "r2", "r3"]
    assert len(json.loads(row["metrics"])) == STEPS and row["step"] == STEPS
    manifest = json.loads((Path(row["path"]) / "manifest.json").read_text())
    assert manifest["base_model"] == row["base_model"] and manifest["lora"] is False
