"""Fixtures for the sandbox tests: a small repository layer, a codemill home, real sandboxes.

Tests of the bwrap backend need root, bubblewrap and user namespaces; where the machine
lacks them they are skipped with the one-line reason ``open_sandbox`` gives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from codemill.core.config import SandboxConfig
from codemill.sandbox.api import SandboxSpec, open_sandbox


@pytest.fixture
def base_layer(tmp_path: Path) -> Path:
    base = tmp_path / "base"
    (base / "pkg").mkdir(parents=True)
    (base / "pkg" / "__init__.py").write_text("")
    (base / "pkg" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (base / "README.md").write_text("hello\nworld\n")
    (base / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(base / "run.sh", 0o755)
    (base / "docs").mkdir()
    (base / "docs" / "a.txt").write_text("a\n")
    (base / "docs" / "b.txt").write_text("b\n")
    return base


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def small_limits(**kw: object) -> SandboxConfig:
    """Limits for tests: small enough that hostile code is contained quickly."""
    values: dict[str, object] = dict(memory_mb=512, pids=128, timeout_s=60, disk_mb=256)
    values.update(kw)
    return SandboxConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def limits() -> object:
    """``limits(**overrides)`` builds a small ``SandboxConfig``."""
    return small_limits


@pytest.fixture
def sandbox(bwrap_ready: None, base_layer: Path, home: Path) -> Iterator[object]:
    spec = SandboxSpec(layers=[base_layer], python_home=Path("/usr"), limits=small_limits())
    sb = open_sandbox(spec, home, backend="bwrap")
    yield sb
    sb.close()


@pytest.fixture
def host_pids() -> object:
    """``host_pids(marker)``: host processes whose command line contains ``marker``."""
    return host_pids_with


def host_pids_with(marker: str) -> list[int]:
    """Host processes whose command line contains ``marker``."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            cmdline = Path("/proc", entry, "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found
