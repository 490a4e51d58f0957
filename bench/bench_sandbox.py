"""Sandbox figures: start latency, forking workspaces, leftovers, pytest overhead.

Runbook (as root, with bubblewrap installed)::

    .venv/bin/python bench/bench_sandbox.py                 # everything, 1,000-run leak check
    .venv/bin/python bench/bench_sandbox.py --starts 50 --leak-runs 100   # quicker
    .venv/bin/python bench/bench_sandbox.py --leak-runs 0 --pytest-repeats 0   # starts only

It builds a synthetic repository layer (``--files`` files) in a temporary home and reports:

1. ready-to-exec: wall time of ``sb.run(["true"])`` (cgroups, mount namespace, overlay,
   bwrap as the sandbox uid, the command, teardown) over ``--starts`` runs, p50 and p95;
   also ``/usr/bin/python3 -c pass`` sandboxed vs bare;
2. forking: one workspace is changed and frozen, then 16 siblings are opened over the
   frozen layer and each runs its first command; total and per-fork time;
3. leftovers after ``--leak-runs`` sequential runs, each leaving a daemon behind: mounts
   (in the mount tables of every live process, where the runs' private namespaces would
   show; the same probe is shown to find them during a live run), cgroups, processes and
   scratch dirs that remain (all must be 0);
4. pytest in the sandbox vs unsandboxed on a small generated suite (40 tests), using this
   virtualenv as ``/env`` and its interpreter home as ``python_home`` (which lies under
   0700 ``/root`` here: the staging path is exercised).

The goal: ready-to-exec p50 <= 40 ms on a 2-core machine. The load average is printed
because other work on the machine inflates every figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from codemill.sandbox.api import SandboxSpec, open_sandbox
from codemill.sandbox.cgroups import leftover_cgroups
from record import figure, write_result

FIGURES: list[dict] = []
"""What this run measured; written to ``bench/results/sandbox.json`` at the end."""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _cpu() -> float:
    """CPU seconds used by this process and its waited-for descendants."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def make_repo(root: Path, files: int) -> Path:
    for i in range(files):
        path = root / f"pkg{i % 50}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"def f{i}(x):\n    return x + {i}\n")
    return root


def make_suite(root: Path, tests: int) -> None:
    (root / "tests").mkdir(parents=True)
    body = "".join(f"def test_{i}():\n    assert {i} + 1 == {i + 1}\n\n" for i in range(tests))
    (root / "tests" / "test_generated.py").write_text(body)


def bench_starts(spec: SandboxSpec, home: Path, starts: int) -> None:
    with open_sandbox(spec, home) as sb:
        sb.run(["true"])  # warm caches
        times = []
        cpu0 = _cpu()
        for _ in range(starts):
            t = time.perf_counter()
            res = sb.run(["true"])
            times.append(time.perf_counter() - t)
            assert res.ok, res
        cpu = (_cpu() - cpu0) / starts * 1000
        print(f"ready-to-exec `true` ({starts} runs): p50 {pct(times, 0.5):.1f} ms, "
              f"p95 {pct(times, 0.95):.1f} ms, min {min(times) * 1000:.1f} ms; "
              f"CPU {cpu:.1f} ms per run (user+sys, all processes; load-independent)")
        FIGURES.append(figure("ready-to-exec `true` in a sandbox, p50", pct(times, 0.5), "ms",
                              runs=starts,
                              p95_ms=round(pct(times, 0.95), 1), cpu_ms_per_run=round(cpu, 1)))
        inside, bare = [], []
        for _ in range(max(10, starts // 4)):
            t = time.perf_counter()
            assert sb.run(["/usr/bin/python3", "-c", "pass"]).ok
            inside.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run(["/usr/bin/python3", "-c", "pass"], check=True)
            bare.append(time.perf_counter() - t)
        print(f"python3 -c pass: sandboxed p50 {pct(inside, 0.5):.1f} ms, "
              f"bare p50 {pct(bare, 0.5):.1f} ms")


def bench_forks(spec: SandboxSpec, home: Path, kids: int = 16) -> None:
    with open_sandbox(spec, home) as parent:
        assert parent.run(["sh", "-c", "echo broken >> pkg0/mod0.py; rm pkg1/mod1.py"]).ok
        t = time.perf_counter()
        layer = parent.freeze()
        freeze_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    opened = []
    for _ in range(kids):
        sb = open_sandbox(spec.with_top(layer), home)
        assert sb.run(["true"]).ok
        opened.append(sb)
    total = time.perf_counter() - t
    for sb in opened:
        sb.close()
    print(f"freeze: {freeze_ms:.1f} ms; fork {kids} siblings (open + first run): "
          f"{total * 1000:.0f} ms total, {total / kids * 1000:.1f} ms each")
    FIGURES.append(figure(f"fork {kids} sibling workspaces over a frozen layer (open + first "
                          "run), each", total / kids * 1000, "ms", freeze_ms=round(freeze_ms, 1)))


def bench_leaks(spec: SandboxSpec, home: Path, runs: int) -> None:
    marker = f"codemill-bench-{uuid.uuid4().hex}"
    sb = open_sandbox(spec, home)
    scratch = sb.dir
    t = time.perf_counter()
    for i in range(runs):
        cmd = f"echo {i} > n; (setsid sh -c 'sleep 300' {marker} &); true"
        assert sb.run(["sh", "-c", cmd]).ok
    elapsed = time.perf_counter() - t
    # A sandbox's mounts live in the private mount namespace of its run, not the host's:
    # look in every live process's mount table. The probe is shown to see them while a run
    # is alive, or its zero would mean nothing.
    live = threading.Thread(target=sb.run, args=(["sleep", "3"],), kwargs={"timeout_s": 10})
    live.start()
    time.sleep(1.0)
    seen_live = mounts_mentioning(str(scratch))
    live.join()
    mounts = mounts_mentioning(str(scratch))
    cgroups = len(leftover_cgroups(f"codemill-{sb.id}"))
    procs = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit()
                and _cmdline_has(p, marker))
    sb.close()
    dirs = len(list((home / "tmp" / "sandboxes").iterdir()))
    print(f"{runs} sequential runs with a daemon each: {elapsed:.1f} s "
          f"({elapsed / runs * 1000:.1f} ms/run); left behind: mounts {mounts} (the probe "
          f"saw {seen_live} during a live run), cgroups {cgroups}, processes {procs}, "
          f"scratch dirs {dirs}")
    FIGURES.append(figure(f"left behind by {runs} runs that each start a daemon: mounts, "
                          "cgroups, processes, scratch dirs (goal 0 0 0 0)",
                          f"{mounts} {cgroups} {procs} {dirs}", "",
                          probe_saw_during_a_live_run=seen_live,
                          ms_per_run=round(elapsed / runs * 1000, 1)))


def mounts_mentioning(path: str) -> int:
    """Mount entries naming ``path`` in the mount tables of every live process (each mount
    namespace is seen through the processes in it)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            total += (proc / "mountinfo").read_text().count(path)
        except OSError:
            continue
    return total


def _cmdline_has(proc: Path, marker: str) -> bool:
    try:
        return marker.encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def bench_pytest(home: Path, tmp: Path, repeats: int) -> None:
    venv = Path(sys.prefix)
    py_home = Path(os.path.realpath(sys.base_prefix))
    suite = tmp / "suite"
    make_suite(suite, 40)
    argv = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    spec = SandboxSpec(layers=[suite], env_dir=venv, python_home=py_home)
    inside, bare = [], []
    with open_sandbox(spec, home) as sb:
        for _ in range(repeats):
            t = time.perf_counter()
            res = sb.run(["/env/bin/python", *argv], timeout_s=120)
            inside.append(time.perf_counter() - t)
            assert res.ok, res.stdout + res.stderr
            t = time.perf_counter()
            subprocess.run([sys.executable, *argv], cwd=suite, check=True,
                           stdout=subprocess.DEVNULL)
            bare.append(time.perf_counter() - t)
    a, b = statistics.median(inside), statistics.median(bare)
    print(f"pytest (40 tests) median of {repeats}: sandboxed {a * 1000:.0f} ms, "
          f"unsandboxed {b * 1000:.0f} ms, ratio {a / b:.2f}")
    FIGURES.append(figure("pytest on 40 generated tests, sandboxed / unsandboxed", a / b, "x",
                          median_of=repeats, sandboxed_ms=round(a * 1000),
                          unsandboxed_ms=round(b * 1000)))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=200)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--leak-runs", type=int, default=1000)
    ap.add_argument("--pytest-repeats", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    tmp = Path(tempfile.mkdtemp(prefix="codemill-bench-sandbox-"))
    try:
        home = tmp / "home"
        spec = SandboxSpec(layers=[make_repo(tmp / "repo", args.files)])
        bench_starts(spec, home, args.starts)
        bench_forks(spec, home)
        if args.pytest_repeats:
            bench_pytest(home, tmp, args.pytest_repeats)
        if args.leak_runs:
            bench_leaks(spec, home, args.leak_runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    write_result("sandbox", "Sandbox start, forks, leftovers and pytest overhead", FIGURES,
                 measures=("The bubblewrap sandbox on a synthetic repository layer: the wall "
                           "time to run `true` (cgroups, mount namespace, overlay, bwrap as the "
                           "sandbox uid, teardown), forking sibling workspaces over a frozen "
                           "layer, what runs that each leave a daemon behind leave on the host, "
                           "and pytest's cost inside the sandbox against outside it."))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
