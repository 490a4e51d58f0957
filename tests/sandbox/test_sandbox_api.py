"""The bwrap sandbox's API: runs, persistence, host-side files, diff, freeze and forks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from codemill.core.errors import ConfigError, SandboxError
from codemill.core.protocols import Sandbox
from codemill.sandbox.api import SandboxSpec, open_sandbox


def test_run_basics(sandbox):
    assert isinstance(sandbox, Sandbox)
    res = sandbox.run(["sh", "-c", "id -u; id -g; pwd; cat README.md; echo err >&2; exit 3"])
    assert res.exit_code == 3 and not res.ok
    assert res.stdout.splitlines() == ["65534", "65534", "/repo", "hello", "world"]
    assert res.stderr == "err\n"
    assert not res.timed_out and res.killed_reason is None and not res.truncated
    assert sandbox.run(["cat"], stdin="in put").stdout == "in put"
    env = sandbox.run(["sh", "-c", "echo $FOO:$HOME:$PATH"], env={"FOO": "bar"}).stdout
    assert env.startswith("bar:/tmp:/usr/local/sbin")
    assert sandbox.run(["sh", "-c", "kill -9 $$"]).exit_code == -9
    assert sandbox.run(["./run.sh"]).stdout == "run\n"


def test_missing_command_is_a_failed_run(sandbox):
    res = sandbox.run(["no-such-command-here"])
    assert res.exit_code not in (0, None) and "no-such-command-here" in res.stderr


def test_output_cap(bwrap_ready, base_layer, home, limits):
    spec = SandboxSpec(layers=[base_layer], limits=limits(output_limit=1000))
    with open_sandbox(spec, home) as sb:
        res = sb.run(["python3", "-c", "print('x' * 100000); print('THE END')"])
    assert res.truncated and res.exit_code == 0
    assert "bytes of output cut" in res.stdout and res.stdout.rstrip().endswith("THE END")
    assert len(res.stdout) < 1200


def test_changes_persist_across_runs_and_host_side_files(sandbox):
    assert sandbox.run(["sh", "-c", "echo one > new.txt && rm docs/a.txt"]).ok
    assert sandbox.run(["cat", "new.txt"]).stdout == "one\n"
    assert sandbox.read_file("new.txt") == b"one\n"
    assert sandbox.read_file("/repo/pkg/calc.py").startswith(b"def add")
    with pytest.raises(FileNotFoundError):
        sandbox.read_file("docs/a.txt")  # deleted inside: a whiteout hides it
    sandbox.write_file("pkg/calc.py", b"def add(a, b):\n    return a - b\n")
    sandbox.write_file("deep/er/x.txt", b"x")
    res = sandbox.run(["sh", "-c", "cat pkg/calc.py deep/er/x.txt; stat -c %U deep/er/x.txt"])
    assert "a - b" in res.stdout and "x" in res.stdout and "nobody" in res.stdout
    # edit in place a file the host wrote and a file of the lower layer
    assert sandbox.run(["sh", "-c", "echo more >> deep/er/x.txt && echo more >> README.md"]).ok
    assert sandbox.read_file("README.md") == b"hello\nworld\nmore\n"


def test_write_into_deleted_directory_does_not_resurrect_it(sandbox):
    assert sandbox.run(["rm", "-r", "docs"]).ok
    sandbox.write_file("docs/new.txt", b"n\n")
    assert sandbox.run(["ls", "docs"]).stdout.split() == ["new.txt"]
    with pytest.raises(FileNotFoundError):
        sandbox.read_file("docs/b.txt")


def test_diff_applies_with_git(sandbox, base_layer, tmp_path):
    script = (
        "printf 'def add(a, b):\\n    return a + b + 0' > pkg/calc.py; "
        "rm docs/b.txt; mkdir -p new/dir; echo fresh > new/dir/f.txt; "
        "chmod +x README.md; ln -s README.md link; touch empty.txt; "
        "printf '\\000\\001' > blob.bin; rm -r docs; mkdir -p __pycache__; "
        "echo junk > __pycache__/x.pyc; echo data > .coverage; echo data > .coverage.h.1.x; "
        "mkdir -p .mypy_cache && echo x > .mypy_cache/y"
    )
    assert sandbox.run(["sh", "-c", script]).ok
    patch = sandbox.diff()
    assert "Binary files /dev/null and b/blob.bin differ" in patch
    assert "\\ No newline at end of file" in patch and "pycache" not in patch
    assert ".coverage" not in patch and ".mypy_cache" not in patch  # run artefacts
    assert "deleted file mode 100644" in patch and "new file mode 120000" in patch
    assert "old mode 100644\nnew mode 100755" in patch
    # git applies it (binary notes aside) to a pristine copy, giving the workspace's files
    clone = tmp_path / "clone"
    shutil.copytree(base_layer, clone, symlinks=True)
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    text_only = "".join(c for c in _split(patch) if "blob.bin" not in c.splitlines()[0])
    subprocess.run(["git", "apply", "-"], cwd=clone, input=text_only.encode(), check=True)
    for rel in ("pkg/calc.py", "new/dir/f.txt", "README.md", "empty.txt"):
        assert (clone / rel).read_bytes() == sandbox.read_file(rel), rel
    assert os.readlink(clone / "link") == "README.md"
    assert os.access(clone / "README.md", os.X_OK)
    assert not (clone / "docs").exists()


def _split(patch: str) -> list[str]:
    parts = patch.split("diff --git ")
    return ["diff --git " + p for p in parts if p]


def test_results_dir_is_writable_inside_and_fresh_each_run(sandbox):
    host, inside = sandbox.results_dir
    assert inside == "/harness/results"
    assert sandbox.run(["sh", "-c", f"echo '<testsuite/>' > {inside}/junit.xml"]).ok
    assert (host / "junit.xml").read_text() == "<testsuite/>\n"
    assert sandbox.run(["ls", inside]).stdout == ""
    assert not (host / "junit.xml").exists()


def test_freeze_and_forks_are_independent(sandbox, base_layer, home):
    assert sandbox.run(["sh", "-c", "echo broken > pkg/calc.py && rm README.md"]).ok
    layer = sandbox.freeze()
    assert (layer / "pkg" / "calc.py").read_text() == "broken\n"
    assert sandbox.run(["cat", "pkg/calc.py"]).stdout == "broken\n"  # goes on over the layer
    assert "-hello" in sandbox.diff()  # still against the original layers
    kids = [open_sandbox(sandbox.spec.with_top(layer), home) for _ in range(3)]
    try:
        for i, kid in enumerate(kids):
            assert kid.run(["sh", "-c", f"cat pkg/calc.py; echo {i} > mine.txt"]).ok
        for i, kid in enumerate(kids):
            assert kid.read_file("mine.txt") == f"{i}\n".encode()
            assert kid.diff().count("diff --git") == 1  # only its own file
            with pytest.raises(FileNotFoundError):
                kid.read_file("README.md")
    finally:
        for kid in kids:
            kid.close()
    assert (base_layer / "README.md").read_text() == "hello\nworld\n"
    assert (layer / "pkg" / "calc.py").read_text() == "broken\n"


def test_env_interpreter_and_binds_from_private_dirs(
    bwrap_ready, base_layer, home, tmp_path, limits
):
    # tmp_path lies under a 0700 directory: the sandbox uid could not open these directly
    env = tmp_path / "venv"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "tool").write_text("#!/bin/sh\necho from-env\n")
    os.chmod(env / "bin" / "tool", 0o755)
    py = tmp_path / "pyhome"
    (py / "lib").mkdir(parents=True)
    (py / "lib" / "marker").write_text("interp\n")
    rw, ro = tmp_path / "cache", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "f").write_text("ro\n")
    spec = SandboxSpec(layers=[base_layer], env_dir=env, python_home=py,
                       rw_binds=((rw, "/cache"),), ro_binds=((ro, "/opt/ro"),),
                       limits=limits())
    with open_sandbox(spec, home) as sb:
        res = sb.run(["sh", "-c", f"tool; cat {py}/lib/marker /opt/ro/f; echo c > /cache/c"])
        assert res.stdout == "from-env\ninterp\nro\n" and res.ok
        assert (rw / "c").read_text() == "c\n"
        for target in ("/env/x", f"{py}/x", "/opt/ro/x"):
            assert not sb.run(["sh", "-c", f"echo x > {target}"]).ok, target
    assert not (env / "x").exists() and not (py / "x").exists() and not (ro / "x").exists()
    spec_rw = spec.model_copy(update={"env_writable": True})
    with open_sandbox(spec_rw, home) as sb:
        assert sb.run(["sh", "-c", "echo y > /env/y"]).ok
    assert (env / "y").read_text() == "y\n"


def test_network_only_when_asked(bwrap_ready, base_layer, home, limits):
    count = ["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"]
    host = sorted(line.split(":")[0].strip()
                  for line in Path("/proc/net/dev").read_text().splitlines()[2:])
    spec = SandboxSpec(layers=[base_layer], limits=limits())
    with open_sandbox(spec, home) as sb:
        assert sb.run(count).stdout.split() == ["lo"]
    with open_sandbox(spec.model_copy(update={"network": True}), home) as sb:
        assert sorted(sb.run(count).stdout.split()) == host


def test_open_errors(bwrap_ready, home, tmp_path):
    with pytest.raises(SandboxError, match="not a directory"):
        open_sandbox(SandboxSpec(layers=[tmp_path / "missing"]), home)
    with pytest.raises(ConfigError, match="unknown implementation"):
        open_sandbox(SandboxSpec(), home, backend="docker-maybe")
    with pytest.raises(ValueError, match="reserved"):
        SandboxSpec(rw_binds=((tmp_path, "/repo/x"),))
    for bad in ("/", "relative/py", "/proc/x"):
        with pytest.raises(ValueError, match="python_home"):
            SandboxSpec(python_home=Path(bad))


def test_closed_sandbox_refuses_and_cleans_up(bwrap_ready, base_layer, home):
    sb = open_sandbox(SandboxSpec(layers=[base_layer]), home)
    assert sb.run(["true"]).ok
    sb.close()
    sb.close()  # idempotent
    assert not sb.dir.exists()
    with pytest.raises(SandboxError, match="closed"):
        sb.run(["true"])


def test_empty_spec_gives_empty_workspace(bwrap_ready, home):
    with open_sandbox(SandboxSpec(), home) as sb:
        assert sb.run(["sh", "-c", "ls -A; echo hi > f"]).stdout == ""
        assert sb.read_file("f") == b"hi\n"


def test_concurrent_forks_from_threads(sandbox, home):
    from concurrent.futures import ThreadPoolExecutor

    assert sandbox.run(["sh", "-c", "echo shared > shared.txt"]).ok
    layer = sandbox.freeze()

    def work(i: int) -> tuple[str, str]:
        with open_sandbox(sandbox.spec.with_top(layer), home) as kid:
            for j in range(3):
                assert kid.run(["sh", "-c", f"echo {i}-{j} > own.txt"]).ok
            return kid.run(["sh", "-c", "cat shared.txt own.txt; ls"]).stdout, kid.diff()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(8)))
    for i, (out, patch) in enumerate(results):
        assert out.splitlines()[:2] == ["shared", f"{i}-2"]
        assert patch.count("diff --git") == 1 and f"+{i}-2" in patch
