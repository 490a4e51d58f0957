"""The Makefile's privilege logic on a machine without bubblewrap: root installs with
apt-get directly (a fresh Debian as root has no sudo), anyone else goes through sudo, and a
user with neither gets a warning instead of a failed command.

``make system`` runs for real with a PATH that lacks bwrap and setpriv; ``apt-get`` and
``sudo`` on that PATH are small scripts that log who called them with what, standing in
for the system tools the target would otherwise run (the test must not install packages).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOBODY = "65534"
LOGGER = '#!/bin/bash\necho "$(id -u) {name} $*" >> "$CALLS"\n{tail}'


def _bin(tmp_path: Path, *, sudo: bool) -> Path:
    """A PATH directory with make, bash and id, a logging apt-get (and sudo), no bwrap."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("make", "bash", "sh", "id", "env"):
        real = shutil.which(tool)
        assert real, f"{tool} is needed to run the Makefile"
        (bindir / tool).symlink_to(real)
    fakes = {"apt-get": ""}
    if sudo:
        fakes["sudo"] = 'exec "$@"\n'
    for name, tail in fakes.items():
        script = bindir / name
        script.write_text(LOGGER.format(name=name, tail=tail))
        script.chmod(0o755)
    return bindir


def _make_system(tmp_path: Path, *, sudo: bool, as_uid: str | None
                 ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(ROOT / "Makefile", work / "Makefile")
    calls = tmp_path / "calls.log"
    calls.touch()
    for p in (tmp_path, work, calls):
        p.chmod(0o777)
    bindir = _bin(tmp_path, sudo=sudo)
    argv = ["make", "--no-print-directory", "system"]
    if as_uid is not None:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop privileges"
        argv = [setpriv, f"--reuid={as_uid}", f"--regid={as_uid}", "--clear-groups", *argv]
    env = {"PATH": str(bindir), "CALLS": str(calls), "HOME": str(tmp_path)}
    out = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=60)
    return out, calls.read_text().splitlines()


@pytest.fixture
def root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (to be root, and to become another uid with setpriv)")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A scratch dir another uid can reach (pytest's own sits under a 0700 dir)."""
    path = Path(tempfile.mkdtemp(prefix="codemill-make-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_root_without_sudo_runs_apt_get_itself(tmp_path: Path, root_only: None) -> None:
    out, calls = _make_system(tmp_path, sudo=False, as_uid=None)
    assert out.returncode == 0, out.stderr
    assert "sudo" not in out.stderr
    assert calls and all(c.startswith("0 apt-get ") for c in calls), calls
    assert any("install" in c and "bubblewrap" in c for c in calls), calls


def test_non_root_goes_through_sudo(tmp_path: Path, root_only: None) -> None:
    out, calls = _make_system(tmp_path, sudo=True, as_uid=NOBODY)
    assert out.returncode == 0, out.stderr
    assert calls, out.stderr
    # sudo is called by the user and runs apt-get (our stand-in sudo keeps the uid).
    assert calls[0].startswith(f"{NOBODY} sudo apt-get update"), calls
    assert any(c.startswith(f"{NOBODY} apt-get install") and "bubblewrap" in c
               for c in calls), calls


def test_non_root_without_sudo_warns_and_installs_nothing(tmp_path: Path,
                                                          root_only: None) -> None:
    out, calls = _make_system(tmp_path, sudo=False, as_uid=NOBODY)
    assert out.returncode == 0, out.stderr
    assert calls == []
    assert "apt-get not usable" in out.stderr
