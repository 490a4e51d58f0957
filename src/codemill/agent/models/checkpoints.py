"""``ckpt:ID`` model specs: trained checkpoints, found on disk by id prefix.

A checkpoint is a directory ``<home>/checkpoints/<checkpoint_id>/`` holding safetensors
weights (a whole model with its tokenizer, or only a LoRA adapter) and ``manifest.json``
naming ``base_model`` (a model spec), ``lora`` and ``parent_id``. The manifest is moved in
last, so a directory without one is an unfinished run and is ignored. The agent never
reads the ledger: the directory is the whole contract.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from codemill.core.errors import ModelError

MANIFEST = "manifest.json"


def checkpoints_dir(home: str | Path) -> Path:
    return Path(home) / "checkpoints"


def find_checkpoint(prefix: str, home: str | Path) -> Path:
    """The finished checkpoint whose id starts with ``prefix`` (``ModelError`` when none
    or several match)."""
    root = checkpoints_dir(home)
    if not prefix:
        raise ModelError("ckpt: needs a checkpoint id (or a unique prefix of one)")
    found = sorted(p for p in root.glob(f"{prefix}*") if (p / MANIFEST).is_file()) \
        if root.is_dir() else []
    if not found:
        raise ModelError(f"no finished checkpoint {prefix!r} under {root}")
    if len(found) > 1:
        names = ", ".join(p.name[:16] for p in found[:5])
        raise ModelError(f"checkpoint prefix {prefix!r} is ambiguous: {names}")
    return found[0]


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path / MANIFEST}: unreadable: {exc}") from None
    if not isinstance(data, dict) or "base_model" not in data:
        raise ModelError(f"{path / MANIFEST}: not a checkpoint manifest")
    return data


def model_dir(spec: str, home: str | Path) -> tuple[Path, Path | None]:
    """``(base weights dir, adapter dir or None)`` for a local model spec: ``smollm2``,
    ``transformers:DIR`` or ``ckpt:ID`` (whose base is resolved the same way)."""
    kind, _, rest = spec.strip().partition(":")
    if kind == "smollm2" and not rest:
        from codemill.agent.models.smollm2 import convert_smollm2

        return convert_smollm2(home), None
    if kind == "transformers" and rest and Path(rest).is_dir():
        return Path(rest), None
    if kind == "ckpt":
        path = find_checkpoint(rest, home)
        manifest = read_manifest(path)
        if not manifest.get("lora"):
            return path, None
        base, adapter = model_dir(str(manifest["base_model"]), home)
        if adapter is not None:
            raise ModelError(f"{path}: a LoRA adapter over another adapter is not supported")
        return base, path
    raise ModelError(f"model spec {spec!r} does not name local weights (smollm2, "
                     "transformers:DIR or ckpt:ID)")


def shared_spec(spec: str, home: str | Path) -> str | None:
    """``spec`` when it names local weights that worker processes can each load
    (``smollm2``, ``transformers:DIR``, ``ckpt:ID``), after finding them (and converting
    the default model) here, once: a missing checkpoint raises ``ModelError`` now, not in
    every worker. None for any other spec (a GGUF file, a remote or scripted model)."""
    kind, _, rest = spec.strip().partition(":")
    if not ((kind == "smollm2" and not rest) or kind == "ckpt"
            or (kind == "transformers" and rest and Path(rest).is_dir())):
        return None
    model_dir(spec, home)
    return spec


def load_checkpoint(prefix: str, home: str | Path, *, device: str = "cpu",
                    threads: int | None = 1) -> Any:
    """A ``TransformersBackend`` serving checkpoint ``prefix`` (adapters merged in)."""
    from codemill.agent.models.local import TransformersBackend

    path = find_checkpoint(prefix, home)
    base, adapter = model_dir(f"ckpt:{path.name}", home)
    backend = TransformersBackend(base, device=device, threads=threads,
                                  name=f"ckpt:{path.name}")
    if adapter is not None:
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise ModelError("LoRA checkpoints need the 'train' extra (peft)") from exc
        with warnings.catch_warnings():  # peft calls APIs transformers 5 deprecates
            warnings.simplefilter("ignore", FutureWarning)
            backend.model = PeftModel.from_pretrained(backend.model, adapter).merge_and_unload()
        backend.model.to(device).eval()
    return backend
