"""Which tests run which lines: a coverage map built once per environment.

The suite runs once inside a sandbox with the ordinary test runner plus coverage, started
by a ``sitecustomize`` on ``PYTHONPATH`` (``COVERAGE_PROCESS_START``), and a tiny pytest
plugin that switches coverage's dynamic context to each test's node id (setup, call and
teardown of that test), so every executed line records the exact tests that reached it.
The data files go to the sandbox's results dir and are read on the host with the
``coverage`` API (copied out with the result-file safety rules first).

The environment's own ``coverage`` is used when it has one (builds install it, of the
project's era); otherwise the harness's copy (the host's package, pure Python with an
optional C tracer used only when the interpreter versions match) goes on the path, or, for
an interpreter older than that copy supports, the last coverage.py made for Python 3.7
with its C tracer for that interpreter (``ERA_COVERAGE``: without it every environment on
such a Python and without its own coverage failed here, 9 of the 50 projects of the fleet
benchmark, on Python 3.7 and 3.10). The hooks and that copy are bound read-only at
``TOOLS_INSIDE`` for this one run. Lines executed at import time (module bodies, ``def``
lines, default values) belong to no test (empty context); callers fall back to the
enclosing function's lines for those. Lines run only in subprocesses are attributed to no
test either (the plugin lives in pytest's process), so selection may miss them;
``selection.check_selection`` measures that.

The map is cached as JSON under ``<home>/cache/coverage/<env_id>.json``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from codemill.core.errors import TaskError
from codemill.core.ids import file_sha256
from codemill.testing.resultfile import read_result_file

TOOLS_INSIDE = "/opt/codemill-tools"
DATA_NAME = "codemill.coverage"
MAX_DATA_BYTES = 512 * 1024 * 1024

PLUGIN = '''"""codemill: switch coverage's dynamic context to the running test's node id."""
import coverage
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cov = coverage.Coverage.current()
    if cov is not None:
        cov.switch_context(item.nodeid)
    yield
    if cov is not None:
        cov.switch_context("")
'''

SITECUSTOMIZE = '''"""codemill: start coverage in every Python process of the coverage run."""
import os

if os.environ.get("COVERAGE_PROCESS_START"):
    import coverage

    coverage.process_startup()
'''

RCFILE = """[run]
data_file = ${CODEMILL_COVDATA}
source = ${CODEMILL_COVSOURCE}
parallel = true
branch = false
"""


ERA_COVERAGE = "7.2.7"
"""The coverage.py put on the path of an environment whose Python is older than the
harness's own copy supports (its ``Requires-Python``), when the environment has no usable
one: the last release for Python 3.7. Fetched once per home with pip, each wheel checked
against its sha256 (``ERA_WHEELS``)."""
_MANYLINUX = "manylinux_2_5_x86_64.manylinux1_x86_64.manylinux_2_17_x86_64.manylinux2014_x86_64"
ERA_WHEELS: dict[tuple[int, int] | None, tuple[str, str]] = {
    (3, 7): (f"cp37-cp37m-{_MANYLINUX}",
             "e84606b74eb7de6ff581a7915e2dab7a28a0517fbe1c9239eb227e1354064dcd"),
    (3, 8): (f"cp38-cp38-{_MANYLINUX}",
             "8d13c64ee2d33eccf7437961b6ea7ad8673e2be040b4f7fd4fd4d4d28d9ccb1e"),
    (3, 9): (f"cp39-cp39-{_MANYLINUX}",
             "6f48351d66575f535669306aa7d6d6f71bc43372473b54a832222803eb956fd1"),
    (3, 10): (f"cp310-cp310-{_MANYLINUX}",
              "31563e97dae5598556600466ad9beea39fb04e0229e61c12eaa206e0aa202063"),
    None: ("pp37.pp38.pp39-none-any",
           "b7b4c971f05e6ae490fef852c218b0e79d4e52f79ef0c8475566584a8fb3e01d"),
}
"""Wheel tag -> sha256, by interpreter: the C tracer built for that CPython on x86-64 Linux
(a per-test coverage run of a big suite under the pure-Python tracer takes several times
longer), else (``None``) the pure-Python wheel."""
ERA_OLDEST = (3, 7)


def tools_dir(home: Path, python: str | None = None) -> Path:
    """A world-readable dir holding ``coverage``, the context plugin, a ``sitecustomize``
    that starts coverage, and the rcfile (made once per coverage version): the harness's
    own ``coverage`` where ``python`` (the environment's interpreter version, ``3.7.16``;
    None: assume current) is new enough for it, else ``ERA_COVERAGE`` for that interpreter.
    Raises ``TaskError`` for an interpreter older than ``ERA_OLDEST`` or a failed fetch."""
    import coverage

    cache = Path(home).absolute() / "cache" / "tools"
    if _own_coverage_runs_on(python):
        return _tools(cache / f"coverage-{coverage.__version__}", lambda pkg: shutil.copytree(
            Path(coverage.__file__).parent, pkg / "coverage",
            ignore=shutil.ignore_patterns("__pycache__", "htmlfiles")))
    assert python is not None
    minor = _version(python)
    if minor < ERA_OLDEST:
        raise TaskError(f"per-test coverage is not available for Python {python} (the "
                        f"oldest supported is {'.'.join(map(str, ERA_OLDEST))})")
    key = minor if minor in ERA_WHEELS and platform.machine() == "x86_64" else None
    tag, sha256 = ERA_WHEELS[key]
    dest = cache / f"coverage-{ERA_COVERAGE}-{tag.split('-')[0]}"
    if (dest / "codemill.coveragerc").exists():
        return dest
    wheel = _fetch_wheel(cache, key, tag, sha256)
    return _tools(dest, lambda pkg: zipfile.ZipFile(wheel).extractall(pkg))


def _version(python: str) -> tuple[int, int]:
    major, minor = python.split(".")[:2]
    return int(major), int(minor)


def _own_coverage_runs_on(python: str | None) -> bool:
    """Whether the harness's ``coverage`` supports ``python`` (by its ``Requires-Python``,
    a ``>=3.N`` bound)."""
    if python is None:
        return True
    from importlib.metadata import metadata

    bound = (metadata("coverage").get_all("Requires-Python") or [""])[0]
    needs = re.search(r">=\s*(\d+)\.(\d+)", bound)
    return needs is None or _version(python) >= (int(needs[1]), int(needs[2]))


def _fetch_wheel(cache: Path, minor: tuple[int, int] | None, tag: str, sha256: str) -> Path:
    """``cache/<wheel>``, downloaded with pip when missing and checked against ``sha256``."""
    wheel = cache / f"coverage-{ERA_COVERAGE}-{tag}.whl"
    if wheel.exists() and file_sha256(wheel) == sha256:
        return wheel
    if minor is None:
        target = ["--platform", "any", "--implementation", "pp", "--python-version", "3.7"]
    else:
        version, abi = f"{minor[0]}.{minor[1]}", tag.split("-")[1]
        target = ["--implementation", "cp", "--python-version", version, "--abi", abi,
                  *(x for p in _MANYLINUX.split(".") for x in ("--platform", p))]
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wheel-", dir=cache))
    why = f"cannot fetch coverage {ERA_COVERAGE} ({tag})"
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "download", f"coverage=={ERA_COVERAGE}", "--no-deps",
             "--only-binary=:all:", *target, "--disable-pip-version-check", "-q", "-d",
             str(tmp)], capture_output=True, text=True, timeout=600)
        got = tmp / wheel.name
        if out.returncode != 0 or not got.exists():
            tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
            raise TaskError(f"{why}: {tail[0]}")
        if file_sha256(got) != sha256:
            raise TaskError(f"{why}: sha256 mismatch; the download was discarded")
        os.replace(got, wheel)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TaskError(f"{why}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return wheel


def _tools(dest: Path, fill: Callable[[Path], object]) -> Path:
    """``dest`` made once: ``fill(pkg)`` puts ``coverage`` into ``pkg``, then the hooks."""
    if (dest / "codemill.coveragerc").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tools-", dir=dest.parent))
    (tmp / "pkg").mkdir()
    fill(tmp / "pkg")
    (tmp / "codemill_covctx.py").write_text(PLUGIN)
    (tmp / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (tmp / "codemill.coveragerc").write_text(RCFILE)
    for root, _dirs, files in os.walk(tmp):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    try:
        os.rename(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # a concurrent builder won: same content
    return dest


PROBE = ("import coverage, sys; "
         "sys.exit(0 if hasattr(coverage.Coverage, 'current') else 3)")
"""Exit 0 when the environment's own ``coverage`` (>= 5) can be used."""

PYTEST_COV_PROBE = "import pytest_cov"
"""Exit 0 when pytest-cov is installed: a project's ``addopts = --cov=...`` would start a
second Coverage that takes the tracer over and our data file is never written, so the
coverage run passes ``--no-cov`` (pytest-cov's own switch; unknown without it)."""


def coverage_env(tools_inside: str, results_inside: str, repo_root: str,
                 own_coverage: bool = False) -> dict[str, str]:
    """Variables that make a plain pytest run record per-test coverage. With
    ``own_coverage`` the environment's ``coverage`` (of its era) is used, else the
    harness's copy."""
    path = tools_inside if own_coverage else f"{tools_inside}:{tools_inside}/pkg"
    return {
        "PYTHONPATH": path,
        "COVERAGE_PROCESS_START": f"{tools_inside}/codemill.coveragerc",
        "CODEMILL_COVDATA": f"{results_inside}/{DATA_NAME}",
        "CODEMILL_COVSOURCE": repo_root,
    }


@dataclass
class CoverageMap:
    """``lines[path][line]`` = indices into ``tests`` of the tests that executed it."""

    env_id: str
    tests: tuple[str, ...]
    lines: dict[str, dict[int, tuple[int, ...]]] = field(default_factory=dict)
    seconds: float = 0.0
    """How long the coverage run took."""

    def tests_for(self, path: str, lines: Iterable[int]) -> set[str]:
        per_line = self.lines.get(path, {})
        return {self.tests[i] for ln in lines for i in per_line.get(ln, ())}

    def covered(self, path: str) -> set[int]:
        return set(self.lines.get(path, {}))

    def to_json(self) -> str:
        return json.dumps({"env_id": self.env_id, "tests": list(self.tests),
                           "seconds": self.seconds,
                           "lines": {p: {str(k): list(v) for k, v in m.items()}
                                     for p, m in self.lines.items()}})

    @classmethod
    def from_json(cls, text: str) -> CoverageMap:
        d = json.loads(text)
        return cls(d["env_id"], tuple(d["tests"]),
                   {p: {int(k): tuple(v) for k, v in m.items()} for p, m in d["lines"].items()},
                   d.get("seconds", 0.0))


def read_coverage_data(data_file: Path, env_id: str, known_tests: set[str] | None = None,
                       root: str = "/repo/") -> CoverageMap:
    """Read a coverage data file (contexts = node ids) into a map of repo-relative paths.

    ``known_tests`` (node ids the runner reports) filters out contexts that are not tests.
    """
    from coverage import CoverageData

    data = CoverageData(basename=str(data_file))
    data.read()
    index: dict[str, int] = {}
    tests: list[str] = []
    out: dict[str, dict[int, tuple[int, ...]]] = {}
    for measured in sorted(data.measured_files()):
        if not measured.startswith(root):
            continue
        rel = measured[len(root):]
        per_line: dict[int, tuple[int, ...]] = {}
        for line, contexts in (data.contexts_by_lineno(measured) or {}).items():
            ids = []
            for ctx in contexts:
                if not ctx or (known_tests is not None and ctx not in known_tests):
                    continue
                if ctx not in index:
                    index[ctx] = len(tests)
                    tests.append(ctx)
                ids.append(index[ctx])
            if ids:
                per_line[int(line)] = tuple(sorted(ids))
        if per_line:
            out[rel] = per_line
    return CoverageMap(env_id, tuple(tests), out)


def read_results_coverage(host_results: Path, env_id: str, known_tests: set[str] | None,
                          root: str) -> CoverageMap:
    """Combine every coverage data file the run left in the results dir (one per process)
    and read the map. Files are copied out with the result-file safety rules first."""
    from coverage import CoverageData

    with os.scandir(host_results) as entries:
        names = sorted(e.name for e in entries
                       if e.name.startswith(DATA_NAME) and e.is_file(follow_symlinks=False))
    if not names:
        raise TaskError("the coverage run wrote no data")
    with tempfile.TemporaryDirectory(prefix="codemill-cov-") as tmp:
        combined = CoverageData(basename=str(Path(tmp) / "combined"))
        for i, name in enumerate(names):
            raw = read_result_file(Path(host_results) / name, MAX_DATA_BYTES)
            if raw is None:
                continue
            part = Path(tmp) / f"part{i}"
            part.write_bytes(raw)
            data = CoverageData(basename=str(part))
            data.read()
            combined.update(data)
        combined.write()
        return read_coverage_data(Path(tmp) / "combined", env_id, known_tests, root)


def cache_path(home: Path, env_id: str) -> Path:
    return Path(home) / "cache" / "coverage" / f"{env_id}.json"


def load_cached(home: Path, env_id: str) -> CoverageMap | None:
    path = cache_path(home, env_id)
    try:
        return CoverageMap.from_json(path.read_text())
    except (OSError, ValueError, KeyError):
        return None


def save_cached(home: Path, cmap: CoverageMap) -> None:
    path = cache_path(home, cmap.env_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(cmap.to_json())
    os.replace(tmp, path)
