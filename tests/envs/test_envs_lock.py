"""Locks and digests read from a venv's files; install plans; failure reasons."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from codemill.core.records import ExecResult
from codemill.envs.builder.imports import distributions_for, missing_modules
from codemill.envs.builder.plan import (
    Attempt,
    BuildConfig,
    attempts,
    era_blockers,
    era_cutoff,
    install_argv,
    prebuild_argv,
    widen,
)
from codemill.envs.builder.reasons import install_failure, telling_line
from codemill.envs.lock import read_lock, tree_digest
from codemill.repos.detect.project import ProjectInfo


def fake_venv(root: Path, dists: dict[str, str], editable: str = "") -> Path:
    sp = root / "lib" / "python3.11" / "site-packages"
    sp.mkdir(parents=True)
    for name, version in dists.items():
        info = sp / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "RECORD").write_text(f"{name}/__init__.py,,\n{info.name}/uv_cache.json,,\n")
        (info / "uv_cache.json").write_text(json.dumps({"t": os.urandom(4).hex()}))
        if name == editable:
            (info / "direct_url.json").write_text(json.dumps(
                {"url": "file:///repo", "dir_info": {"editable": True}}))
    return root


def test_lock_lines_hash_and_editable(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path / "a", {"Zeta": "1.0", "alpha_pkg": "2.1", "proj": "0.3"},
                     editable="proj")
    lock = read_lock(venv)
    assert lock.lines == ("alpha_pkg==2.1", "-e /repo  # proj==0.3", "Zeta==1.0")
    assert lock.editable == "proj==0.3"
    assert lock.versions() == {"alpha-pkg": "2.1", "proj": "0.3", "zeta": "1.0"}
    other = fake_venv(tmp_path / "b", {"Zeta": "1.0", "alpha_pkg": "2.1", "proj": "0.3"},
                      editable="proj")
    assert read_lock(other).hash == lock.hash
    # uv's timestamps differ between the two; the digest leaves them out
    assert tree_digest(venv)[0] == tree_digest(other)[0]
    (other / "lib" / "python3.11" / "site-packages" / "evil.pth").write_text("import os\n")
    assert tree_digest(venv)[0] != tree_digest(other)[0]


def test_lock_never_follows_links_out(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path / "v", {"ok": "1"})
    sp = venv / "lib" / "python3.11" / "site-packages"
    (sp / "leak-1.dist-info").mkdir()
    secret = tmp_path / "secret"
    secret.write_text("Name: stolen\nVersion: 9\n")
    (sp / "leak-1.dist-info" / "METADATA").symlink_to(secret)
    assert read_lock(venv).lines == ("ok==1",)


def test_attempts_by_era_then_today() -> None:
    info = ProjectInfo(name="p", installable=True, test_extras=("test",),
                       build_requirements=("setuptools>=40.8.0", "wheel"),
                       optional_extras=("all",), test_requirements=("freezegun",))
    old = attempts(info, "2020-03-01T10:00:00Z", BuildConfig())
    assert [(a.lean, a.exclude_newer) for a in old] == [
        (False, "2020-03-02T10:00:00Z"), (True, "2020-03-02T10:00:00Z"),
        (False, None), (True, None)]
    recent = datetime.now(UTC).isoformat()
    assert [a.exclude_newer for a in attempts(info, recent, BuildConfig())] == [None, None]
    assert era_cutoff("", BuildConfig()) is None
    argv = install_argv(info, old[0], BuildConfig())
    assert argv[argv.index("-e") + 1] == "/repo[test,all]" and "freezegun" in argv
    # the project is built without isolation, against build tools no older than the floor
    assert argv[argv.index("--no-build-isolation-package") + 1] == "p"
    pre = prebuild_argv(info, old[0], BuildConfig())
    assert "setuptools>=64" in pre and pre[-2:] == ["--exclude-newer", "2023-06-01T00:00:00Z"]
    assert prebuild_argv(info, old[2], BuildConfig()) == []  # today's index: isolated build
    assert "pytest=2021-01-01T00:00:00Z" in argv
    lean = install_argv(info, old[1], BuildConfig())
    assert lean[lean.index("-e") + 1] == "/repo[test]" and "freezegun" not in lean


def test_install_failure_reasons() -> None:
    resolution = ExecResult(exit_code=1, stderr=(
        "Using Python 3.12 environment at: /env\n"
        "  × No solution found when resolving dependencies:\n"
        "  ╰─▶ Because only pytest<=8.3 is available and you require pytest>9, we can conclude"
        " that your requirements are unsatisfiable.\n"))
    assert install_failure(resolution).startswith("dependency resolution failed: Because only")
    build = ExecResult(exit_code=1, stderr=(
        "  × Failed to build `lxml==4.2.0`\n  ├─▶ The build backend returned an error\n"
        "  ╰─▶ Call to `setuptools.build_meta.build_wheel` failed (exit status: 1)\n"
        "      [stderr]\n      Error: Please make sure the libxml2 and libxslt development "
        "packages are installed.\n"))
    reason = install_failure(build)
    assert reason.startswith("building lxml==4.2.0 failed") and "libxml2" in reason
    slow = ExecResult(exit_code=None, timed_out=True, duration_s=1200.0)
    assert install_failure(slow) == "install timed out after 1200s"


def test_missing_modules_map_to_distributions() -> None:
    out = ("E   ModuleNotFoundError: No module named 'yaml'\n"
           "E   ModuleNotFoundError: No module named 'hypothesis.strategies'\n"
           "E   ModuleNotFoundError: No module named 'mypkg.sub'\n"
           "ImportError: No module named json\n")
    mods = missing_modules(out)
    assert mods == ["yaml", "hypothesis", "mypkg", "json"]
    assert distributions_for(mods, local={"mypkg"}, tried=set()) == ["PyYAML", "hypothesis"]
    assert distributions_for(mods, local=set(), tried={"PyYAML"}) == ["hypothesis", "mypkg"]


def test_era_blockers_move_one_rung_at_a_time() -> None:
    hint = ("hint: `setuptools` was filtered by `exclude-newer` to only include packages "
            "uploaded before 2018-05-03T14:26:28Z. The latest version satisfying ...")
    assert era_blockers(hint) == ("setuptools",)
    era = Attempt("full, as of 2018-05-03", False, "2018-05-03T14:26:28Z")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first = widen(era, ("setuptools",), now)
    assert first is not None and first.exempt == (("setuptools", "2019-05-03T14:26:28Z"),)
    assert first.label == "full, as of 2018-05-03 +1 exempt"
    assert "setuptools=2019-05-03T14:26:28Z" in install_argv(ProjectInfo(), first, BuildConfig())
    second = widen(first, ("setuptools",), now)
    assert second is not None and second.exempt == (("setuptools", "2020-05-02T14:26:28Z"),)
    last = widen(widen(second, ("setuptools",), now), ("setuptools",), now)  # type: ignore[arg-type]
    assert last is not None and last.exempt[0][1] == "2026-01-01T00:00:00Z"
    assert widen(last, ("setuptools",), now) is None  # nothing later than today
    assert widen(Attempt("full, latest", False, None), ("x",), now) is None


def test_run_failure_names_the_exception() -> None:
    internal = ("INTERNALERROR> Traceback (most recent call last):\n"
                "INTERNALERROR>   File \"/env/x.py\", line 1, in f\n"
                "INTERNALERROR> NotImplementedError: cannot instantiate 'WindowsPath'\n")
    assert telling_line(internal) == ("NotImplementedError: cannot instantiate 'WindowsPath'"
                                      " (at /env/x.py:1)")
    collection = ("ImportError while loading conftest '/repo/tests/conftest.py'.\n"
                  "E   ModuleNotFoundError: No module named 'yaml'\n")
    assert telling_line(collection).startswith("ImportError while loading conftest")


def test_recompile_replaces_planted_bytecode_and_never_follows_links(tmp_path: Path) -> None:
    import sys

    from codemill.envs.builder.compile import recompile

    venv = fake_venv(tmp_path / "v", {"ok": "1"})
    sp = venv / "lib" / "python3.11" / "site-packages"
    (sp / "good.py").write_text("VALUE = 1\n")
    planted = sp / "__pycache__"
    planted.mkdir()
    (planted / "good.cpython-311.pyc").write_bytes(b"not bytecode")
    outside = tmp_path / "outside"
    outside.mkdir()
    (sp / "pkg").mkdir()
    (sp / "pkg" / "mod.py").write_text("X = 2\n")
    (sp / "pkg" / "__pycache__").symlink_to(outside)  # would send pycs out of the venv
    (sp / "secret.py").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "secret.txt").write_text("root:x:0:0\n")
    before = tree_digest(venv)[0]  # bytecode (and anything named __pycache__) not hashed
    assert recompile(venv, sys.executable) == 2  # good.py and pkg/mod.py
    assert list(outside.iterdir()) == []
    pyc = (sp / "__pycache__").glob("good.*.pyc")
    assert [p.read_bytes()[:4] for p in pyc][0] != b"not "
    assert not (sp / "pkg" / "__pycache__").is_symlink()
    assert tree_digest(venv)[0] == before
