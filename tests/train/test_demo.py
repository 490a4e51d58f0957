"""`codemill demo` end to end on two of the example projects with the tiny model: data for
both, the held-out project evaluated before and after SFT, training only on the other one,
the last line as promised, a cached rerun, and a clear error for a held-out project that
is not there. (Whether the real model gets better is measured by `make demo` itself.)"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "projects"
LAST = re.compile(r"^held-out: base (\d+)/(\d+) \[\d+%, \d+%\], trained (\d+)/(\d+) "
                  r"\[\d+%, \d+%\] \(patch mode\)$")


def _demo(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "codemill.cli.main", "demo", *args], capture_output=True,
        text=True, timeout=900, cwd=tmp_path,
        env={"CODEMILL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin",
             "COLUMNS": "200"})


@pytest.mark.timeout(900)
def test_demo_trains_on_some_projects_and_evaluates_one_it_never_saw(tmp_path, tiny_dir):
    from codemill.core.config import Settings
    from codemill.store.reader import LedgerReader

    projects = tmp_path / "projects"
    for name in ("numkit", "moneykit"):
        shutil.copytree(EXAMPLES / name, projects / name)
    args = ("--projects", str(projects), "--held-out", "moneykit", "--model",
            f"transformers:{tiny_dir}", "--steps", "2", "--tasks", "1")
    out = _demo(tmp_path, *args, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    first = json.loads(out.stdout)
    assert set(first["projects"]) == {"numkit", "moneykit"}
    assert all(p["status"] == "usable" and p["tasks"] >= 1 for p in first["projects"].values())
    held, train = first["held_out_tasks"], first["train_tasks"]
    assert held == first["projects"]["moneykit"]["tasks"]
    assert train == first["projects"]["numkit"]["tasks"]
    # base and trained: one graded attempt per held-out task, the same tasks
    for side in ("base", "trained"):
        assert first[side]["graded"] == held
    assert first["sft"]["sequences"] >= 1 and first["sft"]["cached"] is False

    with LedgerReader.open(Settings(home=tmp_path / "home")) as reader:
        [ckpt] = reader.read("checkpoints").to_pylist()
        envs = {r["env_id"]: r["snapshot_id"] for r in reader.read("environments").to_pylist()}
        names = {r["snapshot_id"]: r["name"] for r in reader.read("snapshots").to_pylist()}
        task_env = {r["task_id"]: r["env_id"] for r in reader.read("tasks").to_pylist()}
        samples = reader.read("eval_samples").to_pylist()
    assert ckpt["checkpoint_id"] == first["checkpoint_id"]
    # trained only on the other project's tasks: nothing of the held-out one
    trained_on = {names[envs[task_env[t]]] for t in json.loads(ckpt["task_ids"])}
    assert trained_on == {"numkit"}
    by_variant: dict[str, set[str]] = {}
    for s in samples:
        by_variant.setdefault(s["variant"], set()).add(names[envs[task_env[s["task_id"]]]])
    assert by_variant == {f"transformers:{tiny_dir}": {"moneykit"},
                          f"ckpt:{first['checkpoint_id']}": {"moneykit"}}

    again = _demo(tmp_path, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    last = again.stdout.strip().splitlines()[-1]
    m = LAST.match(last)
    assert m, last
    assert (int(m[1]), int(m[2]), int(m[3]), int(m[4])) == (
        first["base"]["successes"], held, first["trained"]["successes"], held)
    assert "(cached)" in again.stdout

    bad = _demo(tmp_path, "--projects", str(projects), "--held-out", "nope", "--model",
                f"transformers:{tiny_dir}", "--tasks", "1")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("error:")
    assert "nope" in bad.stderr and "moneykit" in bad.stderr
