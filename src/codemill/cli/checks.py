"""Option checks a command makes before any work starts.

A bad option must stop a command in its first second with one line naming it, not after a
build, task validation and a dozen masked rollouts. ``check_model`` tells whether a model spec
can be built without loading weights or calling an endpoint (those failures stay the
backend's, reported as masked rewards); ``check_counts`` checks integer options against their
least allowed value. Both raise ``ConfigError`` (a ``CodemillError``: ``handle_errors``
prints it as one line and exits 1).
"""

from __future__ import annotations

from pathlib import Path

from codemill.core.errors import CodemillError, ConfigError


def check_model(spec: str, home: str | Path, option: str = "--model") -> None:
    """Raise ``ConfigError`` naming ``option`` unless ``spec`` names a model codemill can
    build: ``smollm2``, ``ckpt:ID`` of a finished checkpoint, ``transformers:PATH`` that
    exists, or an ``openai:``/``scripted:`` spec its backend accepts (building those loads
    nothing and calls nothing)."""
    kind, _, rest = spec.strip().partition(":")
    try:
        if kind == "smollm2" and not rest:
            return
        if kind == "ckpt":
            from codemill.agent.models.checkpoints import find_checkpoint

            find_checkpoint(rest, home)
            return
        if kind == "transformers" and rest:
            if not Path(rest).exists():
                raise ConfigError(f"no model directory or .gguf file at {rest}")
            return
        from codemill.agent.models import make_backend

        make_backend(spec, home=home)
    except CodemillError as exc:
        raise ConfigError(f"{option} {spec}: {exc}") from None


def check_counts(**least: tuple[int, int]) -> None:
    """``check_counts(group=(value, 1), ...)``: raise ``ConfigError`` naming the first option
    (``--group``) whose value is below its least allowed value."""
    for name, (value, low) in least.items():
        if value < low:
            option = "--" + name.replace("_", "-")
            raise ConfigError(f"{option} {value}: must be at least {low}")
