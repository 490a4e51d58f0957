"""A sandboxed process lists nothing of the host's home directories.

An environment built on an interpreter under a home directory (pyenv's, under ``/root``)
once saw it at its host path, so ``ls /root`` inside the sandbox named ``.pyenv`` and its
versions. Now the build makes the venv against ``NEUTRAL_PREFIX`` and every sandbox of the
environment binds the interpreter there: a real build, then a hostile walk of everything
the sandbox can see.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from codemill.core.records import RepoSnapshot
from codemill.envs import installs
from codemill.envs.builder.build import BuildConfig, build_env
from codemill.envs.interpreters import NEUTRAL_PREFIX, find_interpreters, needs_neutral_path
from codemill.sandbox.api import open_sandbox

pytestmark = [pytest.mark.slow, pytest.mark.network]

PROJECT = {
    "pyproject.toml": '[project]\nname = "where"\nversion = "0.1"\n'
                      '[project.optional-dependencies]\ntest = ["pytest"]\n'
                      '[build-system]\nrequires = ["setuptools>=61"]\n'
                      'build-backend = "setuptools.build_meta"\n'
                      '[tool.setuptools]\npy-modules = ["where"]\n',
    "where.py": "import sys\n\nPREFIX = sys.base_prefix\n",
    "test_where.py": "import where\n\ndef test_prefix():\n    assert where.PREFIX\n",
}
WALK = r"""
import os, sys
seen = []
for top in ("/",):
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath == "/":
            dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "dev", "usr")]
        for name in dirnames + filenames:
            seen.append(os.path.join(dirpath, name))
print("\n".join(seen))
print("PREFIX", sys.base_prefix, sys.executable, os.path.realpath(sys.executable))
for d in ("/root", "/home"):
    try:
        print("LIST", d, os.listdir(d))
    except OSError as exc:
        print("LIST", d, type(exc).__name__)
"""


def _home_interpreter():
    """An interpreter under a home directory when the machine has one (pyenv's), else
    the newest: the sandbox must show no home directory either way."""
    found = find_interpreters()
    homes = [i for i in found if needs_neutral_path(i.prefix)
             and i.prefix.startswith(("/root/", "/home/"))]
    return (homes or list(found))[-1]


def test_sandbox_sees_no_home_directory(
        project_snapshot: Callable[[str, dict[str, str]], RepoSnapshot],
        build_home: Path, settings) -> None:
    interp = _home_interpreter()
    snap = project_snapshot("where", PROJECT)
    result = build_env(snap, build_home, settings, python=interp.version,
                       config=BuildConfig(baseline_runs=1, fix_missing_imports=False))
    env = result.env
    assert env.status.value == "usable", (env.reason, result.log[-3000:])
    spec = installs.sandbox_spec(env, build_home, settings.sandbox)
    with open_sandbox(spec, build_home) as sb:
        res = sb.run(["python", "-c", WALK], timeout_s=120)
    assert res.ok, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    host_names = [x for x in lines if "pyenv" in x or interp.prefix in x
                  or x.startswith(("/root", "/home"))]
    assert host_names == [], host_names[:20]
    assert [x for x in lines if x.startswith("LIST")] in (
        [], ["LIST /root FileNotFoundError", "LIST /home FileNotFoundError"],
        ["LIST /root []", "LIST /home []"])
    if needs_neutral_path(interp.prefix):
        assert f"PREFIX {NEUTRAL_PREFIX}" in res.stdout, res.stdout[-500:]
