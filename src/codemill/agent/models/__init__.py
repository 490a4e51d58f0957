"""Model backends behind one interface (``codemill.core.protocols.ModelBackend``).

``make_backend(spec)`` builds one from a short spec:

- ``openai:MODEL@BASE_URL`` (``openai:MODEL`` for the default OpenAI endpoint)
- ``scripted:NAME`` (a built-in policy) or ``scripted:PATH`` (a JSON list of replies)
- ``transformers:PATH`` (a model directory or a ``.gguf`` file)
- ``smollm2`` (the default: the embedded SmolLM2-135M-Instruct)
- ``ckpt:ID`` (a trained checkpoint under ``<home>/checkpoints/``, by id or unique prefix)

Backends import their heavy dependencies (openai, torch, transformers) only when built.
"""

from __future__ import annotations

from pathlib import Path

from codemill.core.errors import ModelError
from codemill.core.protocols import ModelBackend
from codemill.core.registry import load

DEFAULT_SPEC = "smollm2"

MODELS: dict[str, str] = {
    "openai": "codemill.agent.models.openai_backend:OpenAIBackend",
    "transformers": "codemill.agent.models.local:TransformersBackend",
    "scripted": "codemill.agent.models.scripted:ScriptedBackend",
}
"""Backend kinds by name (the part of a spec before ``:``), imported on first use."""

__all__ = ["DEFAULT_SPEC", "make_backend"]


def make_backend(spec: str = DEFAULT_SPEC, *, home: str | Path | None = None) -> ModelBackend:
    """A backend from ``spec``; ``home`` holds the model cache (default: settings' home)."""
    kind, _, rest = spec.strip().partition(":")
    if kind == "smollm2" and not rest:
        from codemill.agent.models.smollm2 import load_smollm2

        if home is None:
            from codemill.core.config import load_settings

            home = load_settings().home
        return load_smollm2(home)
    if kind == "ckpt":
        from codemill.agent.models.checkpoints import load_checkpoint

        if home is None:
            from codemill.core.config import load_settings

            home = load_settings().home
        return load_checkpoint(rest, home)
    if not rest:
        raise ModelError(f"model spec {spec!r}: expected openai:MODEL@URL, scripted:NAME_OR_PATH,"
                         " transformers:PATH, ckpt:ID or smollm2")
    if kind not in MODELS:
        raise ModelError(f"model spec {spec!r}: unknown kind {kind!r} "
                         f"({', '.join(sorted(MODELS))}, smollm2)")
    backend_cls = load(MODELS, kind)
    if kind == "openai":
        model, _, base_url = rest.partition("@")
        return backend_cls(model, base_url or None)
    if kind == "scripted":
        return backend_cls.from_spec(rest)
    return backend_cls(rest)
