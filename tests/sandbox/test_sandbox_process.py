"""The process backend: same API, no isolation, says so, still enforces timeouts."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest

from codemill.core.errors import SandboxError
from codemill.core.protocols import Sandbox
from codemill.sandbox.api import SandboxSpec, open_sandbox
from codemill.sandbox.process import IsolationWarning


def open_process(spec: SandboxSpec, home: Path):
    with pytest.warns(IsolationWarning, match="NO ISOLATION"):
        return open_sandbox(spec, home, backend="process")


def test_process_sandbox_runs_and_warns(base_layer, home, limits, caplog):
    sb = open_process(SandboxSpec(layers=[base_layer], limits=limits()), home)
    assert isinstance(sb, Sandbox)
    with caplog.at_level(logging.WARNING, logger="codemill.sandbox.process"):
        res = sb.run(["sh", "-c", "cat README.md; echo x > new.txt; rm docs/a.txt"])
    assert "NO ISOLATION" in caplog.text
    assert res.ok and res.stdout == "hello\nworld\n"
    assert sb.read_file("new.txt") == b"x\n"
    sb.write_file("pkg/calc.py", b"changed\n")
    patch = sb.diff()
    assert "new file mode 100644" in patch and "deleted file mode" in patch
    assert "+changed" in patch
    host, inside = sb.results_dir
    assert sb.run(["sh", "-c", f"echo r > {inside}/r.xml"]).ok and (host / "r.xml").exists()
    with pytest.raises(SandboxError):
        sb.read_file("../../etc/passwd")
    assert (base_layer / "pkg" / "calc.py").read_text().startswith("def add")
    sb.close()
    assert not sb.dir.exists()


def test_process_sandbox_timeout_kills_the_group(base_layer, home, limits, host_pids):
    marker = f"codemill-proc-{uuid.uuid4().hex}"
    sb = open_process(SandboxSpec(layers=[base_layer], limits=limits()), home)
    res = sb.run(["sh", "-c", f"sh -c 'sleep 300' {marker} & trap '' TERM; sleep 300"],
                 timeout_s=0.5)
    assert res.timed_out and res.killed_reason == "timeout" and res.duration_s < 3
    assert host_pids(marker) == []
    missing = sb.run(["no-such-command-here"])
    assert missing.exit_code is None and "no-such-command-here" in missing.stderr
    sb.close()


def test_process_freeze_layer_stacks_under_bwrap(base_layer, home, limits, bwrap_ready):
    sb = open_process(SandboxSpec(layers=[base_layer], limits=limits()), home)
    assert sb.run(["sh", "-c", "rm -r docs; echo new > pkg/calc.py; echo n > n.txt"]).ok
    layer = sb.freeze()
    assert os.path.exists(layer / "docs")  # a whiteout for the deleted directory
    assert (layer / "n.txt").read_text() == "n\n" and not (layer / "README.md").exists()
    sb.close()
    spec = SandboxSpec(layers=[base_layer], limits=limits()).with_top(layer)
    with open_sandbox(spec, home, backend="bwrap") as kid:
        res = kid.run(["sh", "-c", "ls; cat pkg/calc.py"])
    assert res.stdout.split() == ["README.md", "n.txt", "pkg", "run.sh", "new"]
