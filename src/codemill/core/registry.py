"""Loading an implementation by name, on demand: ``load(registry, name)``.

A registry is a plain ``{name: "module:attr"}`` dict that lives in the package owning the
implementations (``codemill.sandbox.api.SANDBOXES``, ``codemill.agent.models.MODELS``),
never here: ``core`` names no module of an upper layer. Loading on demand keeps choosing,
say, the ``process`` sandbox free of importing the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from codemill.core.errors import ConfigError


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
