"""Intake and parsing figures: snapshots of a local tree and of git revisions, history
reads, and JUnit parsing. Prints a table and writes ``bench/results/intake.json``;
everything lives in a temp dir.

    .venv/bin/python bench/bench_intake.py
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from codemill.repos.gitcmd import ensure_mirror
from codemill.repos.history import commit_diff, list_commits
from codemill.repos.sources import snapshot_source
from codemill.testing.junit import parse_junit
from record import figure, write_result

N_FILES = 2000
BIG_MB = 64
N_COMMITS = 100
N_CASES = 20_000


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def make_tree(root: Path) -> None:
    for i in range(N_FILES):
        p = root / f"pkg{i % 20}" / f"mod{i}.py"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"VALUE = {i}\n" + "x = 1\n" * 300)
    with open(root / "big.bin", "wb") as fh:
        fh.write(os.urandom(BIG_MB << 20))


def git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null"}
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", *args], cwd=repo,
                   env=env, check=True, capture_output=True)


def junit_xml(n: int) -> bytes:
    cases = []
    for i in range(n):
        body = ""
        if i % 10 == 0:
            body = f'<failure message="assert {i} == 0">{"E   assert x" * 100}</failure>'
        cases.append(f'<testcase classname="tests.test_m{i % 50}" name="test_{i}" '
                     f'file="tests/test_m{i % 50}.py" line="{i}" time="0.01">{body}</testcase>')
    return ('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
            + "".join(cases) + "</testsuite></testsuites>").encode()


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        tree, home = base / "tree", base / "home"
        make_tree(tree)
        snap, t = timed(lambda: snapshot_source(str(tree), home))
        mb = snap.n_bytes / 2**20
        rows.append((f"local dir, {snap.n_files} files, {mb:.0f} MiB (cold)", t))
        _, t = timed(lambda: snapshot_source(str(tree), home))
        rows.append(("same dir again (id exists, copy discarded)", t))

        git(tree, "init", "-q")
        git(tree, "add", "-A")
        git(tree, "commit", "-qm", "initial")
        for i in range(N_COMMITS):
            (tree / f"pkg{i % 20}" / f"mod{i}.py").write_text(f"VALUE = {i + 1}\n")
            (tree / "tests").mkdir(exist_ok=True)
            (tree / "tests" / f"test_{i}.py").write_text(f"def test_{i}():\n    pass\n")
            git(tree, "add", "-A")
            git(tree, "commit", "-qm", f"change {i}")
        _, t = timed(lambda: snapshot_source(str(tree), base / "home2"))
        rows.append(("git work tree (ls-files), cold store", t))
        _, t = timed(lambda: snapshot_source(f"{tree}@HEAD~50", base / "home3"))
        rows.append(("git rev: clone --mirror + export + store", t))
        _, t = timed(lambda: snapshot_source(f"{tree}@HEAD~10", base / "home3"))
        rows.append(("git rev again: fetch + export + store", t))
        mirror = ensure_mirror(str(tree), base / "home3", fetch=False)
        commits, t = timed(lambda: list_commits(mirror))
        rows.append((f"list_commits ({len(commits)} commits)", t))
        _, t = timed(lambda: [commit_diff(mirror, c.sha) for c in commits[:N_COMMITS]])
        rows.append((f"commit_diff, mean of {N_COMMITS}", t / N_COMMITS))

    xml = junit_xml(N_CASES)
    results, t = timed(lambda: parse_junit(xml))
    rows.append((f"parse_junit: {len(results)} cases, {len(xml) / 2**20:.1f} MiB", t))

    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  seconds")
    for what, secs in rows:
        print(f"{what:<{width}}  {secs:8.3f}")
    write_result("intake", "Intake and parsing", [figure(what, secs, "s") for what, secs in rows],
                 measures=("Snapshots of a generated local tree (with one large binary file) "
                           "and of git revisions of it, history reads, and parsing a large "
                           "JUnit file, all in a temporary directory."))


if __name__ == "__main__":
    main()
