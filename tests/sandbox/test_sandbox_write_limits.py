"""Limits wherever a sandboxed process can write on the host disk, each tried by a hostile
command in a real bwrap sandbox: the harness results dir, sparse files, and what the
workspace diff reads back into host memory."""

from __future__ import annotations

import os
import tracemalloc

from codemill.sandbox.api import SandboxSpec, open_sandbox
from codemill.sandbox.workspace_diff import MAX_FILE_BYTES

MB = 1 << 20


def test_results_dir_counts_against_the_disk_limit(bwrap_ready, base_layer, home, limits):
    spec = SandboxSpec(layers=[base_layer], limits=limits(disk_mb=32))
    with open_sandbox(spec, home) as sb:
        # 24 files of 8 MB (each under RLIMIT_FSIZE): 192 MB against a 32 MB limit, a
        # quarter second apart (six seconds in all): the check is a poll, so a writer
        # quicker than one poll finishes before it is seen (CI once wrote all 192 MB
        # unpaced); what is asserted is that a writer slower than the poll is stopped.
        res = sb.run(["sh", "-c", "for i in $(seq 24); do head -c 8000000 /dev/zero "
                                  "> /harness/results/f$i && echo $i; sleep 0.25; done; "
                                  "sleep 30"],
                     timeout_s=20)
        assert res.killed_reason == "disk", res
        written = int(res.stdout.split()[-1]) * 8
        # Stopped before the end; how far past 32 MB it gets depends on the machine's load.
        assert written < 24 * 8, res.stdout
        host_results = sb.results_dir[0]
        assert os.listdir(host_results) == []  # over the limit: nothing is read back


def test_sparse_files_count_by_apparent_size(bwrap_ready, base_layer, home, limits):
    spec = SandboxSpec(layers=[base_layer], limits=limits(disk_mb=32))
    with open_sandbox(spec, home) as sb:
        res = sb.run(["sh", "-c", "for i in 1 2 3 4; do truncate -s 30M sparse$i; done; "
                                  "truncate -s 30M /harness/results/sparse"])
        assert res.killed_reason == "disk", res  # 150 MB apparent, almost no blocks


def test_workspace_diff_reads_a_bounded_amount(bwrap_ready, base_layer, home, limits):
    spec = SandboxSpec(layers=[base_layer], limits=limits(disk_mb=256))
    with open_sandbox(spec, home) as sb:
        res = sb.run(["sh", "-c", "head -c 100000000 /dev/zero | tr '\\0' 'x' > big.txt && "
                                  "echo 'def f(): pass' > small.py"])
        assert res.ok, res
        tracemalloc.start()
        try:
            diff = sb.diff()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert "Binary files /dev/null and b/big.txt differ" in diff
    assert "+def f(): pass" in diff
    assert peak < 4 * MAX_FILE_BYTES, peak  # not the file's 100 MB
