"""The code version stamped on every row: package version plus codemill's git commit."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from codemill import __version__


@functools.cache
def code_version() -> str:
    """``0.1.0+g<12 hex>`` from the checkout codemill runs from, ``+dirty`` when it has
    uncommitted changes; the bare version when it is not a git checkout."""
    root = Path(__file__).resolve().parents[3]
    if not (root / ".git").exists():
        return __version__
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}{'.dirty' if dirty else ''}"
