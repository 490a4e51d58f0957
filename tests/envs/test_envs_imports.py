"""``import codemill.envs`` and the builder stay cheap: no heavy dependency, no I/O."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ["pyiceberg", "pyarrow", "duckdb", "ray", "torch", "transformers", "openai", "typer",
         "rich", "codemill.testing", "codemill.store"]


def test_envs_import_is_light(tmp_path: Path) -> None:
    code = ("import sys, codemill.envs, codemill.envs.builder.build, "
            "codemill.repos.detect.project, codemill.envs.interpreters, "
            "codemill.envs.forks\n"
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""
    assert list(tmp_path.iterdir()) == []
