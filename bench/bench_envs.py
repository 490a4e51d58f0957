"""Environment builder figures: cold and warm build time, disk per environment, and the
cost of the sandbox on a real test suite.

Runbook::

    .venv/bin/python bench/bench_envs.py                       # more-itertools 10.1.0
    .venv/bin/python bench/bench_envs.py --source pypi:tomlkit==0.12.1 --runs 5

What it does, under ``bench/out/bench_envs/`` (removed first):

1. cold: a fresh codemill home with an empty uv cache; snapshot and build SOURCE
   (``build_env``: detect, install in the build sandbox, byte-compile, baseline);
2. warm: another fresh home whose uv cache is the first one's (now warm); same build;
3. sharing: in the first home, a second snapshot of the same tree plus one extra test
   file; its environment reuses the installed venv, so it costs only its layer and record;
4. sandbox overhead: the project's suite ``--runs`` times in fresh bwrap forks (what every
   baseline, validation and reward run pays) against the same pytest command, same
   interpreter and same venv run directly on the host in a plain copy of the tree.

Step 4 runs the real project's own tests UNSANDBOXED on this machine. That is acceptable
for a benchmark a person runs by hand on a trusted, pinned release; never do it for an
arbitrary repository. Goal: sandboxed / unsandboxed <= 1.10.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codemill.core.config import Settings
from codemill.envs import installs
from codemill.envs.builder.build import build_env
from codemill.envs.builder.verdict import make_runner
from codemill.repos.sources import snapshot_source
from codemill.sandbox.api import open_sandbox

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "bench_envs"


def du(path: Path) -> int:
    """Bytes on disk under ``path`` (each inode once; links not followed)."""
    seen, total = set(), 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def build(source: str, home: Path) -> tuple[object, object, float]:
    started = time.monotonic()
    snap = snapshot_source(source, home)
    result = build_env(snap, home, Settings(home=home))
    return snap, result, time.monotonic() - started


def install_seconds(result: object) -> float:
    return sum(s.seconds for s in result.steps)  # type: ignore[attr-defined]


def materialize(snapshot_dir: Path, layer: Path | None, dest: Path) -> None:
    """A plain copy of the tree the sandbox shows at /repo (layer over snapshot)."""
    shutil.copytree(snapshot_dir, dest, symlinks=True)
    if layer is not None and layer.is_dir():
        for dirpath, _, files in os.walk(layer):
            rel = Path(dirpath).relative_to(layer)
            (dest / rel).mkdir(parents=True, exist_ok=True)
            for name in files:
                src = Path(dirpath, name)
                if src.is_file() and not src.is_symlink():
                    shutil.copy2(src, dest / rel / name)


def sandbox_vs_host(env: object, home: Path, runs: int) -> tuple[list[float], list[float], int]:
    spec = installs.sandbox_spec(env, home)  # type: ignore[arg-type]
    runner = make_runner(env.test_command, env.env_vars)  # type: ignore[attr-defined]
    boxed, host, n_tests = [], [], 0
    venv = Path(env.venv_path)  # type: ignore[attr-defined]
    layer = installs.layer_dir(home, env.env_id)  # type: ignore[attr-defined]
    # Outside this checkout: pytest would otherwise find codemill's own config above it.
    with tempfile.TemporaryDirectory(prefix="codemill-bench-") as tmp:
        tree = Path(tmp) / "repo"
        materialize(spec.layers[-1], layer, tree)
        argv = list(runner.command(None, results_dir=tmp))
        argv[0] = str(venv / "bin" / "python")
        argv = [a.replace("--rootdir=/repo", f"--rootdir={tree}") for a in argv]
        host_env = {**os.environ, **dict(env.env_vars),  # type: ignore[attr-defined]
                    "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
                    "PYTHONPATH": f"{tree / 'src'}:{tree}", "VIRTUAL_ENV": str(venv)}
        for i in range(runs * 2):  # alternate, so drift in machine load hits both alike
            if i % 2 == 0:
                sb = open_sandbox(spec, home)
                started = time.monotonic()
                report = runner.run(sb, None, timeout_s=1800)
                boxed.append(time.monotonic() - started)
                sb.close()
                n_tests = len(report.results)
            else:
                started = time.monotonic()
                proc = subprocess.run(argv, cwd=tree, env=host_env, capture_output=True,
                                      text=True, timeout=1800)
                host.append(time.monotonic() - started)
                if proc.returncode not in (0, 1):
                    raise SystemExit(f"unsandboxed run failed ({proc.returncode}): "
                                     f"{(proc.stdout + proc.stderr)[-2000:]}")
    return boxed, host, n_tests


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="pypi:more-itertools==10.1.0")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if OUT.exists():
        installs.remove_tree(OUT)
    OUT.mkdir(parents=True)
    home_a, home_b = OUT / "cold", OUT / "warm"

    cold_snap, cold, cold_s = build(args.source, home_a)
    print(f"cold build   {cold_s:7.1f}s  (install phase {install_seconds(cold):.1f}s, then "
          f"the baseline) status {cold.env.status.value} "  # type: ignore[attr-defined]
          f"python {cold.env.python}")  # type: ignore[attr-defined]
    (home_b / "cache").mkdir(parents=True)
    (home_b / "cache" / "uv").symlink_to(installs.uv_cache_dir(home_a))
    _, warm, warm_s = build(args.source, home_b)
    print(f"warm build   {warm_s:7.1f}s  (install phase {install_seconds(warm):.1f}s) "
          f"status {warm.env.status.value}")  # type: ignore[attr-defined]

    env = cold.env  # type: ignore[attr-defined]
    snap_dir = installs.snapshot_dir(home_a, env.snapshot_id)
    copy = OUT / "second-snapshot"
    shutil.copytree(snap_dir, copy, symlinks=True)
    test_dir = next((copy / d for d in ("tests", "test", "testing") if (copy / d).is_dir()), copy)
    (test_dir / "test_codemill_extra.py").write_text("def test_extra():\n    assert True\n")
    started = time.monotonic()
    # The same release with one more test file: same date (era) and interpreter.
    snap2 = snapshot_source(str(copy), home_a).model_copy(
        update={"created_at": cold_snap.created_at, "source": cold_snap.source})
    second = build_env(snap2, home_a, Settings(home=home_a), python=env.python)
    second_s = time.monotonic() - started
    layer = installs.layer_dir(home_a, second.env.env_id)
    record = installs.envs_root(home_a) / "records" / f"{second.env.env_id}.json"
    extra = (du(layer) if layer.is_dir() else 0) + record.stat().st_size
    print(f"venv on disk {cold.disk_bytes / 1e6:7.1f} MB  (du {du(Path(env.venv_path)) / 1e6:.1f}"
          f" MB; cache {du(installs.uv_cache_dir(home_a)) / 1e6:.1f} MB)")  # type: ignore[attr-defined]
    print(f"extra snapshot sharing it: {extra / 1e3:.1f} kB (layer + record), shared venv "
          f"{second.shared_venv}, build {second_s:.1f}s")

    boxed, host, n_tests = sandbox_vs_host(env, home_a, args.runs)
    ratio = statistics.median(boxed) / statistics.median(host)
    print(f"suite ({n_tests} tests) median of {args.runs}: sandboxed "
          f"{statistics.median(boxed):.2f}s  unsandboxed {statistics.median(host):.2f}s  "
          f"ratio {ratio:.3f} (goal <= 1.10)")
    print(f"  sandboxed runs  {' '.join(f'{x:.2f}' for x in boxed)}")
    print(f"  unsandboxed     {' '.join(f'{x:.2f}' for x in host)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
