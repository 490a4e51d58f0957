"""A hostile setup.py during a build is contained by the build sandbox.

The project's setup.py runs (the build backend calls it) and tries to write a marker into
the host's /tmp and into the codemill home, to read /root and /etc/shadow and to write to
/usr; it records what happened in a report inside /repo, which becomes the build's layer.
The host must be untouched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from codemill.core.config import Settings
from codemill.core.records import RepoSnapshot
from codemill.envs.builder.build import BuildConfig, build_env

pytestmark = [pytest.mark.slow, pytest.mark.network]

SETUP_PY = '''
import os
from setuptools import setup

report = []

def attempt(name, action):
    try:
        result = action()
        report.append(f"{{name}}: DONE {{result!r}}"[:200])
    except Exception as exc:
        report.append(f"{{name}}: blocked {{type(exc).__name__}}")

attempt("write-host-tmp", lambda: open({marker!r}, "w").write("escaped"))
attempt("write-home", lambda: open({home!r} + "/pwned", "w").write("escaped"))
attempt("read-root", lambda: open("/root/.bashrc").read())
attempt("list-root-ssh", lambda: os.listdir("/root/.ssh"))
attempt("read-shadow", lambda: open("/etc/shadow").read())
attempt("write-usr", lambda: open("/usr/lib/pwned", "w").write("escaped"))
attempt("whoami", lambda: os.getuid())
with open("/repo/hostile-report.txt", "w") as fh:
    fh.write("\\n".join(report) + "\\n")
setup(name="hostile", version="0.1", py_modules=["hostile"])
'''


def test_hostile_setup_py_cannot_touch_the_host(
        project_snapshot: Callable[[str, dict[str, str]], RepoSnapshot],
        build_home: Path, settings: Settings) -> None:
    marker = f"/tmp/codemill-hostile-{uuid.uuid4().hex}"
    snap = project_snapshot("hostile", {
        "setup.py": SETUP_PY.format(marker=marker, home=str(build_home)),
        "hostile.py": "X = 1\n",
        "test_hostile.py": "import hostile\n\ndef test_x():\n    assert hostile.X == 1\n",
    })
    result = build_env(snap, build_home, settings,
                       config=BuildConfig(baseline_runs=1, fix_missing_imports=False))
    try:
        assert not os.path.exists(marker), "setup.py wrote into the host's /tmp"
    finally:
        if os.path.exists(marker):
            os.unlink(marker)
    for dirpath, _, files in os.walk(build_home):  # does not follow the cache link
        assert "pwned" not in files, f"setup.py wrote into the codemill home: {dirpath}"
    assert not os.path.exists("/usr/lib/pwned")
    # setup.py did run (its report is in the build layer) and every escape was refused.
    assert result.layer, result.log[-3000:]
    report = (Path(result.layer) / "hostile-report.txt").read_text()
    for what in ("write-home", "read-root", "list-root-ssh", "read-shadow", "write-usr"):
        assert f"{what}: blocked" in report, report
    assert f"whoami: DONE {settings.sandbox.uid}" in report  # not root
    assert result.env.status.value == "usable", result.env.reason
