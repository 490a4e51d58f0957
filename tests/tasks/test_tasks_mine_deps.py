"""Mining holds a commit's manifests to what the environment has, not to the snapshot's
bytes: a past declared in setup.py, or with an older lower bound, is still minable; a past
that needs a package the environment lacks is not. A binary asset changed only on the
snapshot's side does not block a commit either."""

import shutil
import subprocess

from codemill.core.records import TaskKind
from codemill.repos.gitcmd import ensure_mirror
from codemill.tasks.deps import Installed, unmet_requirements
from codemill.tasks.mine import MineConfig, mine, prescreen
from codemill.tasks.records import FunnelCounter
from codemill.tasks.validate import ValidationConfig

ENV = Installed("3.12.4", {"attrs": "23.1.0", "pytest": "8.2.0", "six": "1.16.0"}, "proj")


def test_a_manifest_moved_or_loosened_is_still_met():
    setup_py = b"""from setuptools import setup
REQS = ['attrs>=20']
setup(name='proj', python_requires='>=3.6', install_requires=REQS,
      extras_require={'test': ['pytest>=6']})
"""
    pyproject = b"""[project]
name = "proj"
requires-python = ">=3.9"
dependencies = ["attrs>=21.3"]
[project.optional-dependencies]
test = ["pytest>=8", "hypothesis"]
"""
    assert unmet_requirements({"setup.py": setup_py}, ENV) == []
    assert unmet_requirements({"pyproject.toml": pyproject}, ENV) == []
    cfg = b"[options]\ninstall_requires =\n    attrs\n    six; python_version < '3'\n"
    assert unmet_requirements({"setup.cfg": cfg}, ENV) == []
    # optional requirements (tools, pins of CI) do not block: validation judges them
    assert unmet_requirements({"requirements-dev.txt": b"pytest<7\nsphinx\n"}, ENV) == []
    assert unmet_requirements({"pyproject.toml": b"[dependency-groups]\ntest = ['six>=2']\n"},
                              ENV) == []
    # a legacy specifier is read as installers read it
    assert unmet_requirements({"setup.cfg": b"[options]\npython_requires = >=3.6.*\n"},
                              ENV) == []
    # the project's requirement on itself (an 'all' extra) is met by the editable install
    assert unmet_requirements({"pyproject.toml": pyproject.replace(
        b'"hypothesis"', b'"proj[test]>=99"')}, ENV) == []


def test_what_the_environment_lacks_is_unmet():
    assert unmet_requirements({"setup.py": b"from setuptools import setup\n"
                               b"setup(install_requires=['attrs>=99', 'toolz'])"}, ENV) == [
        "attrs>=99 (have 23.1.0)", "toolz (missing)"]
    assert unmet_requirements({"setup.cfg": b"[options]\npython_requires = <3.8\n"}, ENV) == [
        "python<3.8"]
    assert unmet_requirements({"pyproject.toml": b"[project]\ndependencies = "
                               b"['six; python_version >= \"3.12\"', 'x; python_version < "
                               b"\"3\"']\n"}, Installed("3.12.4", {}, "")) == ["six (missing)"]


def test_installed_reads_a_built_environments_lock(calc_env):
    _, _, env = calc_env
    have = Installed.of(env)
    assert have is not None and have.python == env.python
    assert have.project == "calcproj" and "pytest" in have.versions
    assert Installed.of(env.model_copy(update={"lock": ""})) is None


def _git(repo, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args],
                          cwd=repo, check=True, capture_output=True, text=True).stdout


def _history(root, calc_repo, setup_py: str, high: str | None = None):
    """The calculator's fix, made while the project still had a setup.py (``setup_py``)
    and another binary asset; a later commit moves to pyproject.toml only and updates the
    asset, so HEAD equals the environment's snapshot."""
    repo = root / "hist"
    shutil.copytree(calc_repo, repo, ignore=shutil.ignore_patterns(".git"))
    fixed = (repo / "calc" / "__init__.py").read_text()
    (repo / "calc" / "__init__.py").write_text(_git(calc_repo, "show",
                                                    "HEAD~1:calc/__init__.py"))
    new_high = high
    high = (repo / "tests" / "test_high.py").read_text()
    (repo / "tests" / "test_high.py").unlink()
    (repo / "setup.py").write_text(setup_py)
    blob = (repo / "calc" / "blob.bin").read_bytes()
    (repo / "calc" / "blob.bin").write_bytes(b"\x00old" + blob)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "Start, with setup.py")
    (repo / "calc" / "__init__.py").write_text(fixed)
    (repo / "tests" / "test_high.py").write_text(new_high or high)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "Clamp values above the range to hi")
    (repo / "setup.py").unlink()
    (repo / "calc" / "blob.bin").write_bytes(blob)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "Move the metadata to pyproject.toml")
    return repo


def _mine(bed, calc_env, repo):
    settings, _, env = calc_env
    mirror = ensure_mirror(str(repo), settings.home)
    funnel = FunnelCounter(env.env_id, "mined")
    cfg = MineConfig(max_commits=5, validation=ValidationConfig(runs=2, max_mutants=1))
    out = list(mine(bed, mirror, "HEAD", cfg, funnel=funnel, installed=Installed.of(env)))
    return out, funnel.freeze()


def test_a_fix_from_the_setup_py_era_is_mined(bed, calc_env, tmp_path):
    _, calc_repo, _ = calc_env
    repo = _history(tmp_path, calc_repo, "from setuptools import setup\n"
                    "setup(name='calcproj', python_requires='>=3.8', install_requires=[])\n")
    decisions, funnel = _mine(bed, calc_env, repo)
    tasks = [t for t, _ in decisions if t is not None]
    assert [t.kind for t in tasks] == [TaskKind.MINED]
    assert tasks[0].fail_to_pass == ("tests/test_high.py::test_clamp_high",)
    assert tasks[0].metadata["base_commit"] == _git(repo, "rev-parse", "HEAD~2").strip()
    # the binary asset the snapshot changed later cannot travel in a text patch: kept
    assert tasks[0].metadata["kept_from_snapshot"] == ["calc/blob.bin"]
    assert "blob.bin" not in tasks[0].broken_patch
    assert funnel.rejected == {"no test change": 1, "root commit": 1}


def test_a_past_needing_what_the_environment_lacks_is_skipped(bed, calc_env, tmp_path):
    _, calc_repo, _ = calc_env
    repo = _history(tmp_path, calc_repo, "from setuptools import setup\n"
                    "setup(name='calcproj', install_requires=['calc-helper-nowhere>=1'])\n")
    decisions, funnel = _mine(bed, calc_env, repo)
    assert all(t is None for t, _ in decisions)
    assert funnel.rejected["deps not met"] == 1
    row = next(r for _, r in decisions if r.reason == "deps not met")
    assert "calc-helper-nowhere>=1 (missing)" in row.details["detail"]


def test_prescreen_counts_the_static_checks_of_both_rules(bed, calc_env, tmp_path):
    settings, calc_repo, env = calc_env
    repo = _history(tmp_path, calc_repo, "from setuptools import setup\nsetup(name='calcproj')\n")
    mirror = ensure_mirror(str(repo), settings.home)
    cfg = MineConfig(max_commits=5)
    assert prescreen(bed, mirror, "HEAD", cfg, installed=Installed.of(env)) == {
        "candidate": 1, "no test change": 1, "root commit": 1}
    # held to the snapshot's manifests instead, the setup.py era is out of reach
    assert prescreen(bed, mirror, "HEAD", cfg) == {
        "deps changed": 1, "no test change": 1, "root commit": 1}


def test_a_past_whose_tests_cannot_run_here_is_told_apart(bed, calc_env, tmp_path):
    # the commit's test needs a module of an older Python: not even the fix passes it
    _, calc_repo, _ = calc_env
    repo = _history(tmp_path, calc_repo, "from setuptools import setup\nsetup(name='calcproj')\n",
                    high="from collections import Mapping\n\n\ndef test_clamp_high():\n"
                         "    assert Mapping\n")
    decisions, funnel = _mine(bed, calc_env, repo)
    assert all(t is None for t, _ in decisions)
    assert funnel.rejected["gold state: no test passes"] == 1
