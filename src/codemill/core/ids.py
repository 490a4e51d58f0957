"""Content ids: sha256 over canonical JSON of what defines a thing.

The same inputs always give the same id, so work is never done twice and rows dedupe.
``canonical_json`` sorts keys, drops insignificant whitespace and renders pydantic models,
paths, tuples, sets and bytes deterministically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel

ID_LEN = 64
SHORT_LEN = 12


def _normalize(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _normalize(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_normalize(v) for v in value)
    if isinstance(value, bytes):
        return {"__bytes_sha256__": hashlib.sha256(value).hexdigest()}
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Enum):
        return _normalize(value.value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN has no canonical JSON form
        raise ValueError("NaN cannot be part of a content id")
    return value


def canonical_json(value: Any) -> str:
    """Deterministic JSON text for ``value`` (sorted keys, compact separators)."""
    return json.dumps(
        _normalize(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def content_id(*parts: Any) -> str:
    """sha256 hex of the canonical JSON of ``parts``; the id of anything codemill makes."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()


def bytes_id(data: bytes) -> str:
    """sha256 hex of raw bytes (file contents, patches)."""
    return hashlib.sha256(data).hexdigest()


def short_id(full: str, n: int = SHORT_LEN) -> str:
    """The display form of an id."""
    return full[:n]


def new_run_id() -> str:
    """A fresh, time-ordered run id: UTC timestamp plus 8 random hex digits.

    Runs are events, not content, so their id is unique rather than content-derived.
    """
    import secrets

    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"run-{now}-{secrets.token_hex(4)}"


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
