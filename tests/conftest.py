"""Session fixtures shared across areas: the sandbox precondition and the toy task."""

from __future__ import annotations

import os

import pytest

from codemill.core.errors import SandboxError


def in_ci() -> bool:
    """``CI=true`` (or 1/yes): a missing prerequisite is a failure, never a skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_prerequisite(reason: str) -> None:
    """Skip a test whose prerequisite this machine lacks; under ``CI=true`` fail it
    instead, so a green CI run means the sandbox and red-team suites really ran."""
    if in_ci():
        pytest.fail(f"CI=true and a prerequisite is missing: {reason} (run `make system`)",
                    pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Under ``CI=true`` every skip is a failure, whatever raised it (``importorskip`` of
    an extra ``make setup`` installs, a missing bubblewrap): our suite has no test that
    is meant to skip, so a skip there means a promised check did not run."""
    outcome = yield
    rep = outcome.get_result()
    if in_ci() and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"CI=true and this test would skip: {reason}"


@pytest.fixture(scope="session")
def bwrap_ready() -> None:
    """Real sandboxes need bubblewrap, setpriv and root for the mount namespace; `make test`
    installs them. Where they cannot be had, say so (and fail under ``CI=true``)."""
    from codemill.sandbox.host import host_tools

    try:
        host_tools()
    except SandboxError as exc:
        missing_prerequisite(str(exc))


@pytest.fixture(scope="session")
def toy(tmp_path_factory: pytest.TempPathFactory, bwrap_ready: None):
    """A real environment and task for the toy project (``tests/rewards/toyproject.py``),
    built once per session and shared by the rewards and rollouts tests."""
    from rewards.toyproject import shared_toy

    return shared_toy(lambda: tmp_path_factory.mktemp("toy-home"))


@pytest.fixture(scope="module", autouse=True)
def no_leak_outlives_its_module(request: pytest.FixtureRequest):
    """Collect garbage at the end of each test module and fail that module if an object it
    left behind (an unclosed event loop, socket or file) warns on collection.

    Without this the warning surfaces wherever the collector happens to run next, often a
    test in another file of the same xdist worker, and names the wrong culprit."""
    import gc
    import sys
    import warnings

    yield
    leaked: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda u: leaked.append(f"{u.exc_type.__name__}: {u.exc_value}")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            gc.collect()
        leaked += [f"{w.category.__name__}: {w.message}" for w in caught
                   if issubclass(w.category, ResourceWarning)]
    finally:
        sys.unraisablehook = previous
    if leaked:
        shown = "; ".join(sorted(set(leaked))[:3])
        pytest.fail(f"{request.node.nodeid} left {len(leaked)} unclosed object(s) for the "
                    f"garbage collector: {shown}", pytrace=False)
