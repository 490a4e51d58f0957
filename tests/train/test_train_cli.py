"""`codemill train` option checks: a bad value is one line naming it, exit 1, nothing run."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(("args", "says"), [
    (["sft", "--precision", "fp8"], "precision='fp8'"),
    (["sft", "--steps", "0"], "steps=0"),
    (["grpo", "--group", "1"], "group_size=1"),
    (["grpo", "--correction", "clip"], "correction='clip'"),
    (["sft", "--listing-functions", "2"], "--listing-functions: only with --mode patch"),
    (["sft", "--reversals", "100"], "--reversals: only with --mode patch"),
])
def test_a_bad_training_option_is_one_line(tmp_path, args, says):
    out = subprocess.run([sys.executable, "-m", "codemill.cli.main", "train", *args],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"CODEMILL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], out.stderr
    assert not (tmp_path / "home" / "checkpoints").exists()
