"""Fixtures for end-to-end builds: one codemill home per session whose uv cache is a link
to a persistent cache (``~/.cache/codemill-test-uv``), so builds after the first resolve
and install from warm files; real bubblewrap sandboxes; the real package index."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from codemill.core.config import Settings
from codemill.core.records import RepoSnapshot
from codemill.repos.sources import snapshot_source

PERSISTENT_CACHE = Path(os.environ.get("CODEMILL_TEST_UV_CACHE",
                                       Path.home() / ".cache" / "codemill-test-uv"))


@pytest.fixture(scope="session")
def build_home(tmp_path_factory: pytest.TempPathFactory, bwrap_ready: None) -> Path:
    home = tmp_path_factory.mktemp("codemill-home")
    PERSISTENT_CACHE.mkdir(parents=True, exist_ok=True)
    (home / "cache").mkdir()
    (home / "cache" / "uv").symlink_to(PERSISTENT_CACHE)
    return home


@pytest.fixture(scope="session")
def settings(build_home: Path) -> Settings:
    return Settings(home=build_home)


def _write_project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


@pytest.fixture
def project_snapshot(tmp_path: Path, build_home: Path) -> Callable[..., RepoSnapshot]:
    """``project_snapshot(name, files)``: write a project under tmp and snapshot it."""
    def make(name: str, files: dict[str, str]) -> RepoSnapshot:
        return snapshot_source(str(_write_project(tmp_path / name, files)), build_home)
    return make
