"""The coverage.py a per-test coverage run puts on an environment's path: the harness's own
where the environment's Python is new enough for it, else the last release for Python 3.7
(fetched once, checked by sha256), which must really trace code under an old interpreter,
with the C tracer built for it."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess

import pytest

from codemill.core.errors import TaskError
from codemill.envs.interpreters import find_interpreters
from codemill.tasks.coverage_map import (
    ERA_COVERAGE,
    ERA_WHEELS,
    _fetch_wheel,
    _own_coverage_runs_on,
    _version,
    tools_dir,
)

MODULE = "def f(x):\n    if x:\n        return 1\n    return 2\n"
TRACE = (
    "import json, sys, coverage\n"
    "cov = coverage.Coverage(data_file=None)\n"
    "cov.start()\n"
    "import mod\n"
    "mod.f(True)\n"
    "cov.stop()\n"
    "path = [p for p in cov.get_data().measured_files() if p.endswith('mod.py')][0]\n"
    "from coverage.collector import CTracer\n"
    "print(json.dumps([coverage.__version__, sorted(cov.get_data().lines(path)),\n"
    "                  CTracer is not None]))\n"
)


def test_an_old_python_gets_the_last_coverage_made_for_it(tmp_path):
    assert not _own_coverage_runs_on("3.7.16") and _own_coverage_runs_on("3.99.0")
    assert _own_coverage_runs_on(None)  # unknown: the harness's own, as before
    with pytest.raises(TaskError, match="not available for Python 3.6"):
        tools_dir(tmp_path, "3.6.15")
    # It traces for real under the oldest interpreter this machine has (3.7 here).
    oldest = find_interpreters()[0]
    era = tools_dir(tmp_path, oldest.version)
    assert era != tools_dir(tmp_path, None)
    assert (era / "codemill_covctx.py").exists() and (era / "sitecustomize.py").exists()
    (tmp_path / "mod.py").write_text(MODULE)
    out = subprocess.run([oldest.path, "-c", TRACE], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": f"{era / 'pkg'}:."})
    assert out.returncode == 0, out.stderr[-2000:]
    version, lines, c_tracer = json.loads(out.stdout)
    assert version == ERA_COVERAGE
    assert {2, 3} <= set(lines) and 4 not in lines  # the branch taken, not the other
    built_for_it = _version(oldest.version) in ERA_WHEELS and platform.machine() == "x86_64"
    assert c_tracer == built_for_it


def test_the_pure_python_wheel_is_there_for_other_machines(tmp_path):
    wheel = _fetch_wheel(tmp_path, None, *ERA_WHEELS[None])
    assert wheel.name.endswith("-none-any.whl")
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == ERA_WHEELS[None][1]
    assert _fetch_wheel(tmp_path, None, *ERA_WHEELS[None]) == wheel  # fetched once
