"""``codemill eval`` and ``codemill report`` in a real subprocess on an empty ledger: bad
input is one line on stderr and exit 1; the report of an empty ledger still renders."""

from __future__ import annotations

import os
import subprocess
import sys

CLI = [sys.executable, "-c", "from codemill.cli.main import main; main()"]


def _cli(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEMILL_")}
    env["CODEMILL_HOME"] = str(tmp_path / ".codemill")
    return subprocess.run([*CLI, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_bad_eval_input_is_one_line_and_exit_1(tmp_path):
    out = _cli(tmp_path, "eval", "run", "nosuch", "--model", "scripted:submit")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: no suite 'nosuch' (known: none); define one with `codemill eval suite NAME`"]
    out = _cli(tmp_path, "eval", "suite", "empty")
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert "no recorded task matches the selection" in out.stderr


def test_report_of_an_empty_ledger(tmp_path):
    out = _cli(tmp_path, "report", "--out", str(tmp_path / "r.html"))
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "r.html").read_text()
    assert "no suite defined yet" in html and "training reward curve: no data" in html
