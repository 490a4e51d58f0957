"""``import codemill.factory`` stays cheap: no pyiceberg, pyarrow or ray until used."""

import subprocess
import sys


def test_factory_import_is_light(tmp_path):
    code = (
        "import sys, codemill.factory, codemill.factory.executors\n"
        "heavy = [m for m in ('pyiceberg', 'pyarrow', 'duckdb', 'ray', 'typer')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(len(codemill.factory.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 0 and out.stderr == ""
    assert list(tmp_path.iterdir()) == []
