"""A hostile build cannot plant anything in the package cache that a later build installs.

The install step runs the project's build backend with the network and the uv cache. Here
its ``setup.py`` appends code to every ``setuptools/__init__.py`` and ``_pytest/__init__.py``
it finds in the cache (in place: a later build that copies them from the cache would run
it) and drops a marker file there. A later build of another project, in the same codemill
home, must not carry any of it: nothing the plant writes appears in its layer or venv, and
the shared cache on the host holds no marker. The home here has its own empty cache (not
the session's persistent one), so a regression plants nothing a later test run would read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from codemill.core.config import Settings
from codemill.core.records import RepoSnapshot
from codemill.envs.builder.build import BuildConfig, build_env
from codemill.envs.installs import uv_cache_dir

pytestmark = [pytest.mark.slow, pytest.mark.network]

MARK = "codemill-planted-7f3a"
SETUP_PY = f'''
import os
from setuptools import setup

PLANT = "\\ntry:\\n    open('/repo/{MARK}', 'w').write('x')\\nexcept OSError:\\n    pass\\n"
cache = os.environ.get("UV_CACHE_DIR", "")
hits = 0
for dirpath, _, files in os.walk(cache):
    if "__init__.py" in files and os.path.basename(dirpath) in ("setuptools", "_pytest"):
        try:
            with open(os.path.join(dirpath, "__init__.py"), "a") as fh:
                fh.write("# {MARK}" + PLANT)
            hits += 1
        except OSError:
            pass
try:
    open(os.path.join(cache, "{MARK}"), "w").write("x")
except OSError:
    pass
with open("/repo/plant-report.txt", "w") as fh:
    fh.write(f"cache={{cache}} planted={{hits}}\\n")
setup(name="planter", version="0.1", py_modules=["planter"])
'''
TOY = {
    "pyproject.toml": '[project]\nname = "later"\nversion = "0.1"\n'
                      '[project.optional-dependencies]\ntest = ["pytest"]\n'
                      '[build-system]\nrequires = ["setuptools>=61"]\n'
                      'build-backend = "setuptools.build_meta"\n'
                      '[tool.setuptools]\npy-modules = ["later"]\n',
    "later.py": "def f():\n    return 1\n",
    "test_later.py": "from later import f\n\ndef test_f():\n    assert f() == 1\n",
}


def _files_with(root: Path, text: str) -> list[str]:
    found = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            if name == text or (name.endswith(".py") and not path.is_symlink()
                                and text in path.read_text(errors="replace")):
                found.append(str(path))
    return found


def test_a_hostile_build_leaves_nothing_a_later_build_installs(
        project_snapshot: Callable[[str, dict[str, str]], RepoSnapshot],
        tmp_path: Path) -> None:
    build_home = tmp_path / "private-home"
    build_home.mkdir()
    settings = Settings(home=build_home)
    config = BuildConfig(baseline_runs=1, fix_missing_imports=False)
    planter = project_snapshot("planter", {
        "setup.py": SETUP_PY, "planter.py": "X = 1\n",
        "requirements-test.txt": "pytest\n",
        "test_planter.py": "def test_x():\n    assert True\n",
    })
    first = build_env(planter, build_home, settings, config=config)
    assert first.layer, first.log[-3000:]
    report = (Path(first.layer) / "plant-report.txt").read_text()
    assert "planted=0" not in report, report  # the plant reached cache files in its view
    cache = uv_cache_dir(build_home)
    assert _files_with(cache, MARK) == []
    assert any(cache.rglob("_pytest/__init__.py")), first.log[-2000:]  # filled, from wheels

    later = build_env(project_snapshot("later", TOY), build_home, settings, config=config)
    assert later.env.status.value == "usable", later.env.reason
    for root in (later.layer, later.env.venv_path):
        if root:
            assert _files_with(Path(root), MARK) == [], root
