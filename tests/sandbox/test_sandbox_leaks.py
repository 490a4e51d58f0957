"""Many sequential runs leave nothing behind on the host.

The suite runs 200 runs (about 4 s on an idle 2-core machine, more under load);
``bench/bench_sandbox.py`` runs the same check over 1,000.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from codemill.sandbox.api import SandboxSpec, open_sandbox
from codemill.sandbox.cgroups import leftover_cgroups

RUNS = 200


def test_sequential_runs_leave_nothing_behind(bwrap_ready, base_layer, home, limits, host_pids):
    marker = f"codemill-leak-{uuid.uuid4().hex}"
    sb = open_sandbox(SandboxSpec(layers=[base_layer], limits=limits()), home)
    scratch = sb.dir
    for i in range(RUNS):
        # every run also starts a daemon that tries to stay
        res = sb.run(["sh", "-c", f"echo {i} > count; (setsid sh -c 'sleep 300' {marker} &); true"])
        assert res.ok, res
    assert sb.read_file("count") == f"{RUNS - 1}\n".encode()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(scratch) not in mounts and "codemill" not in mounts
    assert leftover_cgroups(f"codemill-{sb.id}") == []
    assert host_pids(marker) == []
    assert sorted(p.name for p in scratch.iterdir()) == ["stage", "upper", "work"]
    assert sorted(p.name for p in (scratch / "stage").iterdir()) == ["repo", "results"]
    assert list((scratch / "stage" / "repo").iterdir()) == []  # nothing mounted there
    sb.close()
    assert not scratch.exists() and list((home / "tmp" / "sandboxes").iterdir()) == []
