"""A real environment for the toy project, built once per session (``toyproject``)."""

from __future__ import annotations

import pytest

from codemill.core.errors import SandboxError

from .toyproject import Toy, shared_toy


@pytest.fixture(scope="session")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Toy:
    from codemill.envs.host import host_tools

    try:
        host_tools()
    except SandboxError as exc:
        pytest.skip(str(exc))
    return shared_toy(lambda: tmp_path_factory.mktemp("toy-home"))
