"""Resumable stages of a long benchmark: one JSON line per finished stage, the CLI as a user
types it, and the split of a home's tasks by project.

    have = done_stages(results)                       # stage name -> its recorded row
    if "sft" not in have:
        run_stage(results, have, "sft", lambda: {...})  # times it, appends the row
    out = cli(["train", "sft", "--json"], home)       # codemill in a subprocess

A killed benchmark reruns and skips what ``results`` holds; the last row of a stage name
wins. ``bench_train.py`` and ``bench_learn.py`` are built on these.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def done_stages(results: Path) -> dict[str, dict]:
    """Each recorded stage's row (the last one of a name)."""
    if not results.exists():
        return {}
    out = {}
    for line in results.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["stage"]] = row
    return out


def record(results: Path, row: dict) -> None:
    with results.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def run_stage(results: Path, have: dict, name: str, fn: Callable[[], dict]) -> dict:
    """Run ``fn``, record its row (with ``stage``, ``seconds``, and the ``commit``, grading
    rules (``harness``) and UTC time it ``finished`` at: a long benchmark's stages may run
    at different commits) and return it."""
    from codemill.rewards.config import HARNESS_VERSION
    from record import head_commit

    log(f"stage {name}")
    t = time.monotonic()
    row = {"stage": name, **fn(), "seconds": round(time.monotonic() - t, 1),
           "commit": head_commit()[:10], "harness": HARNESS_VERSION,
           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    record(results, row)
    have[name] = row
    log(f"stage {name} done: {json.dumps(row)[:400]}")
    return row


def cli(args: list[str], home: Path, timeout: float = 7200) -> Any:
    """``codemill ARGS`` with ``CODEMILL_HOME=home``; its JSON output (``{}`` when none).
    Raises ``RuntimeError`` with the end of stderr when it fails."""
    env = {**os.environ, "CODEMILL_HOME": str(home)}
    cmd = [sys.executable, "-c", "from codemill.cli.main import main; main()", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout) if proc.stdout.strip().startswith(("{", "[")) else {}


def canonical(spec: str) -> str:
    """``NAME==VER`` with the name as PyPI compares names (PEP 503: case and runs of
    ``-_.`` do not matter): the source ``pypi:MarkupSafe==2.1.3`` is ``markupsafe==2.1.3``."""
    name, sep, version = spec.partition("==")
    return re.sub(r"[-_.]+", "-", name).lower() + sep + version


def tasks_with_projects(home: Path) -> tuple[list[tuple[str, Any]], dict]:
    """((project, task) for each of the home's validated tasks in ledger order, envs): the
    project is the ``pypi:`` source of the task's snapshot, PEP 503-normalized."""
    from codemill.core.config import Settings
    from codemill.factory.training import ledger_tasks
    from codemill.store.ledger import Ledger

    settings = Settings(home=home)
    all_tasks, envs = ledger_tasks(settings)
    with Ledger.open(settings) as ledger:
        names = {r["snapshot_id"]: (r["source"] or "") for r in ledger.read(
            "snapshots", columns=["snapshot_id", "source"]).to_pylist()}
    return [(canonical(names.get(envs[t.env_id].snapshot_id, "").removeprefix("pypi:")), t)
            for t in all_tasks], envs


def split_by_project(home: Path, train: Sequence[str], held_out: Sequence[str]
                     ) -> tuple[list, list, dict]:
    """(train tasks, held-out tasks, envs) of the home's validated tasks, by the ``pypi:``
    source of each task's snapshot (``NAME==VER`` as in ``train``/``held_out``); no project
    may be on both sides."""
    tasks, envs = tasks_with_projects(home)
    wanted_train = {canonical(p) for p in train}
    wanted_held = {canonical(p) for p in held_out}
    first = [t for p, t in tasks if p in wanted_train]
    second = [t for p, t in tasks if p in wanted_held]
    assert not wanted_train & wanted_held
    return first, second, envs
