"""Name -> import path registries for pluggable implementations.

Implementations live in upper layers; ``core`` only holds their dotted paths and imports
them on demand, so choosing ``sandbox = "bwrap"`` in settings costs nothing until used.
"""

from __future__ import annotations

import importlib
from typing import Any

from codemill.core.errors import ConfigError

SANDBOXES: dict[str, str] = {
    "bwrap": "codemill.envs.bwrap:BwrapSandboxFactory",
    "process": "codemill.envs.process:ProcessSandboxFactory",
}
RUNNERS: dict[str, str] = {
    "pytest": "codemill.testing.pytest_runner:PytestRunner",
    "unittest": "codemill.testing.unittest_runner:UnittestRunner",
    # Not a runner: the k-run baseline of a suite, which the environment builder (a sibling
    # of ``codemill.testing`` that may not import it) needs as well.
    "baseline": "codemill.testing.baseline:run_baseline",
    # Not a runner either: an environment's recorded test command -> its runner (the one
    # construction every layer uses, so building, validating and grading agree).
    "command": "codemill.testing.runners:runner_for_command",
}
MODELS: dict[str, str] = {
    "openai": "codemill.agent.models.openai_backend:OpenAIBackend",
    "transformers": "codemill.agent.models.local:TransformersBackend",
    "scripted": "codemill.agent.models.scripted:ScriptedBackend",
}


def load(registry: dict[str, str], name: str) -> Any:
    """Import and return the object registered under ``name`` (or a ``module:attr`` path)."""
    path = registry.get(name, name)
    if ":" not in path:
        known = ", ".join(sorted(registry))
        raise ConfigError(f"unknown implementation {name!r} (known: {known})")
    module, attr = path.split(":", 1)
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {name!r} from {path}: {exc}") from exc
