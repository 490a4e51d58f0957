"""`import codemill` is cheap: no I/O, no output, no heavy dependency (STYLE.md #10)."""

import subprocess
import sys

HEAVY = ["pyiceberg", "pyarrow", "duckdb", "ray", "torch", "transformers", "openai", "typer"]


def test_import_is_light_and_silent(tmp_path):
    code = (
        "import sys, codemill, codemill.core.records, codemill.core.protocols, "
        "codemill.core.config, codemill.core.ids, codemill.core.errors\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""
    assert list(tmp_path.iterdir()) == [], "import created files"


def test_public_api_is_small():
    import codemill

    assert codemill.__all__ == ["__version__"]
    assert codemill.__version__.count(".") == 2
