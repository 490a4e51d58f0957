"""Locks and digests read from a venv's files; install plans; failure reasons."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from codemill.core.records import ExecResult
from codemill.envs.builder_imports import distributions_for, missing_modules
from codemill.envs.builder_plan import BuildConfig, attempts, era_cutoff, install_argv
from codemill.envs.builder_reasons import install_failure
from codemill.envs.detect import ProjectInfo
from codemill.envs.lock import read_lock, tree_digest


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
    assert "setuptools=2023-06-01T00:00:00Z" in argv  # build tools never older than this
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
