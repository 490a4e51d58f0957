"""The adapters' shared fixture: the embedded model, loaded once for the whole session."""

from __future__ import annotations

import pytest

from train.conftest import smollm2_dir  # noqa: F401 (converted once, kept in pytest's cache)


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):  # noqa: F811
    """The embedded default model (the ``smollm2`` spec: SmolLM2-135M-Instruct from its PyPI
    wheel), one ``TransformersBackend`` shared by every adapter test that samples from it."""
    from codemill.agent.models.smollm2 import load_smollm2

    backend = load_smollm2(smollm2_dir.parents[2])  # <home>/cache/models/<name>
    yield backend
    backend.close()
