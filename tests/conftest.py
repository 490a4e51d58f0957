"""Session fixtures shared across areas: the sandbox precondition and the toy task."""

from __future__ import annotations

import pytest

from codemill.core.errors import SandboxError


@pytest.fixture(scope="session")
def bwrap_ready() -> None:
    """Real sandboxes need bubblewrap, setpriv and root for the mount namespace; `make test`
    installs them. Where they cannot be had, say so rather than fail."""
    from codemill.envs.host import host_tools

    try:
        host_tools()
    except SandboxError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def toy(tmp_path_factory: pytest.TempPathFactory, bwrap_ready: None):
    """A real environment and task for the toy project (``tests/rewards/toyproject.py``),
    built once per session and shared by the rewards and rollouts tests."""
    from rewards.toyproject import shared_toy

    return shared_toy(lambda: tmp_path_factory.mktemp("toy-home"))
