"""History mining on real code without GitHub: consecutive PyPI releases as git commits.

Runbook::

    .venv/bin/python bench/bench_mine_releases.py                     # the default projects
    .venv/bin/python bench/bench_mine_releases.py --only toolz
    .venv/bin/python bench/bench_mine_releases.py > bench/out/mine_releases.txt 2>&1 &

Only PyPI is reachable here and an sdist carries no history, so for each project this
builds a local git repository under ``bench/out/mine_releases/<project>`` whose commits
are consecutive real releases: the stored sdist tree of version X, then the tree of X+1
replacing it, and so on (one commit per release, author and committer date = the sdist's
upload date). Snapshots are fetched archives; no project code runs outside a sandbox.
The repository is reused when its commit subjects already match the version list.

Then, exactly as a user would, with ``CODEMILL_HOME=bench/out/mine_releases/home``:
``codemill env build pypi:NAME==LAST --json`` and ``codemill tasks mine ENV --repo REPO
--max-commits 10 --max 5 --json``, and ``codemill tasks ls --json`` for the F2P counts and
strength of the tasks it made. A table per project follows, then totals.

Read the figures for what they are: a release-to-release diff is the sum of every commit
between two tags (several fixes, version bumps, docs), far larger than one real commit, so
a task's F2P set mixes several fixes and more tasks are weak or rejected than real history
would give. The root release is always rejected (``root commit``). The CLI skips
candidates decided in earlier runs (``skipped_known``); delete the home to measure afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from codemill.core.errors import CodemillError
from codemill.repos.sources import snapshot_source

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "mine_releases"
HOME = OUT / "home"
# Consecutive patch/minor releases (the last one builds usable: bench/out/real_projects.jsonl).
PROJECTS: dict[str, list[str]] = {
    "toolz": ["0.11.0", "0.11.1", "0.11.2", "0.12.0"],
    "itsdangerous": ["2.0.1", "2.1.0", "2.1.1", "2.1.2"],
    "semver": ["2.10.2", "2.11.0", "2.12.0", "2.13.0"],
    "cachetools": ["5.2.0", "5.2.1", "5.3.0", "5.3.1"],
    "python-slugify": ["4.0.1", "5.0.0", "5.0.1", "5.0.2"],
    "natsort": ["8.2.0", "8.3.0", "8.3.1", "8.4.0"],
}
IDENTITY = {"GIT_AUTHOR_NAME": "sdist", "GIT_AUTHOR_EMAIL": "sdist@example.invalid",
            "GIT_COMMITTER_NAME": "sdist", "GIT_COMMITTER_EMAIL": "sdist@example.invalid"}


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


def release_repo(name: str, versions: list[str]) -> Path:
    """The git repository of ``name``'s releases, one commit each (reused when complete)."""
    repo = OUT / name
    subjects = [f"{name} {v} (sdist)" for v in versions]
    if (repo / ".git").is_dir():
        have = _git(repo, "log", "--reverse", "--format=%s").splitlines()
        if have == subjects:
            return repo
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    for version, subject in zip(versions, subjects, strict=True):
        snap = snapshot_source(f"pypi:{name}=={version}", HOME)
        for p in repo.iterdir():
            if p.name != ".git":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        shutil.copytree(snap.path, repo, dirs_exist_ok=True, symlinks=True)
        for p in repo.rglob("*"):  # the store is read-only; git needs to write the tree
            if not p.is_symlink() and ".git" not in p.relative_to(repo).parts:
                p.chmod(0o755 if p.is_dir() else 0o644)
        _git(repo, "add", "-A")
        date = snap.created_at or "2000-01-01T00:00:00"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_AUTHOR_DATE": date,
               "GIT_COMMITTER_DATE": date, **IDENTITY}
        _git(repo, "commit", "-q", "--allow-empty", "-m", subject, env=env)
    return repo


def codemill(*args: str, timeout: float = 1800) -> dict | list:
    """Run the CLI entry point in a subprocess; its parsed ``--json`` output."""
    cmd = [sys.executable, "-c", "from codemill.cli.main import main; main()", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CODEMILL_HOME": str(HOME)})
    if proc.returncode != 0:
        raise RuntimeError(f"codemill {' '.join(args[:2])}: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def run_project(name: str, versions: list[str]) -> dict:
    t0 = time.monotonic()
    repo = release_repo(name, versions)
    stat = _git(repo, "diff", "--shortstat", f"HEAD~{len(versions) - 1}", "HEAD").strip()
    t1 = time.monotonic()
    env = codemill("env", "build", f"pypi:{name}=={versions[-1]}", "--json")
    t2 = time.monotonic()
    mined = codemill("tasks", "mine", env["env_id"], "--repo", str(repo),
                     "--max-commits", "10", "--max", "5", "--json")
    t3 = time.monotonic()
    made = set(mined["tasks"])
    tasks = [t for t in codemill("tasks", "ls", "--env", env["env_id"], "--json")
             if t["task_id"] in made]
    f = mined["funnel"]
    return {"project": name, "releases": f"{versions[0]}..{versions[-1]} ({len(versions)})",
            "diff": stat, "considered": f["candidates"], "skipped_known": f["skipped_known"],
            "rejected": f["rejected"], "validated": len(tasks),
            "weak": sum(bool(t["weak"]) for t in tasks), "f2p": [t["f2p"] for t in tasks],
            "subjects": [t["what"] for t in tasks], "repo_s": round(t1 - t0, 1),
            "build_s": round(t2 - t1, 1), "mine_s": round(t3 - t2, 1),
            "test_s": f["test_seconds"]}


def print_table(rows: list[dict]) -> None:
    head = ("project", "releases", "considered", "validated", "weak", "F2P", "build s",
            "mine s", "rejected by reason")
    print(" | ".join(head))
    for r in rows:
        if "error" in r:
            print(f"{r['project']} | ERROR: {r['error']}")
            continue
        why = ", ".join(f"{k}: {v}" for k, v in r["rejected"].items()) or "-"
        print(" | ".join(str(x) for x in (
            r["project"], r["releases"], r["considered"] + r["skipped_known"], r["validated"],
            r["weak"], r["f2p"], r["build_s"], r["mine_s"], why)))
    ok = [r for r in rows if "error" not in r]
    print(f"TOTAL | {len(ok)} projects | considered {sum(r['considered'] for r in ok)} | "
          f"validated {sum(r['validated'] for r in ok)} | weak {sum(r['weak'] for r in ok)} | "
          f"mine s {sum(r['mine_s'] for r in ok):.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="Projects to run (default: all).")
    args = ap.parse_args()
    rows = []
    for name, versions in PROJECTS.items():
        if args.only and name not in args.only:
            continue
        try:
            row = run_project(name, versions)
        except (CodemillError, RuntimeError, subprocess.SubprocessError, OSError) as exc:
            row = {"project": name, "error": str(exc)[-500:]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
