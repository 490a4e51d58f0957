"""One home for a benchmark's result file: what was measured, by which command, where, when.

Every ``bench/*.py`` that produces a figure for ``docs/benchmarks.md`` ends with::

    from record import figure, write_result    # bench/ is on sys.path for a bench script

    write_result("sandbox", "Sandbox start and teardown", [
        figure("sandbox ready-to-exec (`true`), p50", 32.1, "ms", n=200),
        figure("leftovers after 100 runs", 0, "mounts+cgroups+processes+dirs"),
    ], measures="what the figures measure, in one or two sentences")

and ``bench/render_benchmarks.py`` renders the page from ``bench/results/*.json``. A result
file records, beside the figures: the exact command (interpreter, script path relative to the
repository, arguments, any ``CODEMILL_*`` variables), the git commit of the checkout and
whether it had uncommitted changes, the UTC date, and the machine: cores, CPU model, Python,
and the load average when this module was imported (the benchmark's start) and when the result
was written. Nothing else: no figure is typed into a page by hand.

Contract:
- ``write_result(name, title, figures, measures=...)`` writes ``bench/results/<name>.json``
  (``out_dir`` overrides the folder, for tests) and returns its path. A benchmark that records
  several stages calls it once per stage with distinct names (``train-sft``, ``train-grpo``).
  Rerunning overwrites the file: the committed history of the folder is the history.
- ``figure(what, value, unit, **detail)`` is one row: ``value`` is a number or a short string
  (``"0 of 128"``); ``detail`` holds anything a reader needs to interpret it (sample size,
  median over n, what ran beside it); it is rendered after the value.
- Importing this module does no I/O but reading the load average.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
SCHEMA = 1

# The load at the benchmark's start: the figure's neighbours matter as much as the figure.
_START_LOAD = os.getloadavg()
_START = time.monotonic()


def figure(what: str, value: float | int | str, unit: str = "", **detail: Any) -> dict[str, Any]:
    """One measured figure: what it is, its value and unit, and details to read it by."""
    if isinstance(value, float):
        value = round(value, 4)
    return {"what": what, "value": value, "unit": unit, "detail": detail}


def command_line(argv: list[str] | None = None) -> str:
    """The command that ran this benchmark, as a user would type it from the repository root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve() if argv else Path("?")
    try:
        shown = str(script.relative_to(ROOT))
    except ValueError:
        shown = str(script)
    python = Path(sys.executable)
    try:
        py = str(python.relative_to(ROOT))
    except ValueError:
        py = "python"
    env = [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
           if k.startswith("CODEMILL_")]
    return " ".join([*env, py, shlex.quote(shown), *(shlex.quote(a) for a in argv[1:])])


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                             timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def head_commit() -> str:
    """The commit a benchmark measures: ``BENCH_COMMIT`` when set (a copy run elsewhere,
    e.g. a lent GPU machine whose git history may be older than the tree it was sent),
    else this checkout's HEAD ("" outside git)."""
    return os.environ.get("BENCH_COMMIT") or _git("rev-parse", "HEAD")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Cores, CPU, Python, and the load average at the start and now (1, 5, 15 minutes)."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "load_start": [round(x, 2) for x in _START_LOAD],
        "load_end": [round(x, 2) for x in os.getloadavg()],
    }


def write_result(name: str, title: str, figures: list[dict[str, Any]], *, measures: str,
                 argv: list[str] | None = None, out_dir: Path | None = None,
                 examples: list[dict[str, str]] | None = None) -> Path:
    """Write ``<out_dir>/<name>.json`` (default ``bench/results/``) and return its path.
    ``examples``: ``{"title", "text"}`` records read from what was measured (a trajectory
    behind a figure), shown under the figures; never a figure themselves."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad result name {name!r}")
    if not figures:
        raise ValueError("a result needs at least one figure")
    record = {
        "schema": SCHEMA,
        "name": name,
        "title": title,
        "measures": measures,
        "figures": figures,
        **({"examples": examples} if examples else {}),
        "command": command_line(argv),
        "commit": head_commit(),
        "dirty": (False if os.environ.get("BENCH_COMMIT")
                  else bool(_git("status", "--porcelain", "--untracked-files=no"))),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": round(time.monotonic() - _START, 1),
        "machine": machine(),
    }
    folder = RESULTS_DIR if out_dir is None else out_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    return path
