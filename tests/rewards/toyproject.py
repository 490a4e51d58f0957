"""A tiny project with a bug, its environment and a task, made by hand for grading tests.

``make_toy(home)`` writes a snapshot (``src/calc`` plus tests), builds its environment and
returns ``(env, task)``:

- the snapshot is the gold state without the hidden test; ``broken_patch`` breaks ``add``;
  ``gold_patch`` fixes it; ``test_patch`` adds the hidden ``tests/test_hidden.py``;
- FAIL_TO_PASS: the visible and the hidden ``add`` tests; PASS_TO_PASS: ``sub``, ``mul``.

The environment comes from ``codemill.envs.builder.build_env`` when it can build here
(bwrap, root, the package index); otherwise from a relocatable uv venv with pytest and a
``.pth`` that puts ``/repo/src`` on the path, as an editable install would.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codemill.core.config import SandboxConfig, Settings
from codemill.core.ids import content_id
from codemill.core.records import EnvSpec, EnvStatus, SourceKind, TaskKind, TaskSpec
from codemill.tasks.patches import file_diff

UV = Path(sys.executable).parent / "uv"

FILES = {
    "pyproject.toml": (
        '[project]\nname = "calc"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
        '[project.optional-dependencies]\ntest = ["pytest"]\n'
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    ),
    "src/calc/__init__.py": (
        "from calc.ops import add, mul, sub\n\n__all__ = ['add', 'mul', 'sub']\n"
    ),
    "src/calc/ops.py": (
        "def add(a, b):\n    return a + b\n\n\n"
        "def sub(a, b):\n    return a - b\n\n\n"
        "def mul(a, b):\n    return a * b\n"
    ),
    "tests/test_ops.py": (
        "from calc import add, mul, sub\n\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_sub():\n    assert sub(5, 3) == 2\n\n\n"
        "def test_mul():\n    assert mul(4, 3) == 12\n"
    ),
}
BROKEN_OPS = FILES["src/calc/ops.py"].replace("return a + b", "return a - b")
HIDDEN_TEST = "from calc import add\n\n\ndef test_add_negative():\n    assert add(-2, -3) == -5\n"
BROKEN_PATCH = file_diff("src/calc/ops.py", FILES["src/calc/ops.py"].encode(), BROKEN_OPS.encode())
GOLD_PATCH = file_diff("src/calc/ops.py", BROKEN_OPS.encode(), FILES["src/calc/ops.py"].encode())
TEST_PATCH = file_diff("tests/test_hidden.py", None, HIDDEN_TEST.encode())
F2P = ("tests/test_hidden.py::test_add_negative", "tests/test_ops.py::test_add")
P2P = ("tests/test_ops.py::test_mul", "tests/test_ops.py::test_sub")


def toy_settings(home: Path, backend: str = "bwrap") -> Settings:
    return Settings(home=home, sandbox=SandboxConfig(
        backend=backend, memory_mb=1024, pids=256, timeout_s=120, disk_mb=512))


def write_snapshot(root: Path) -> Path:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _snapshot_record(home: Path):
    from codemill.core.records import RepoSnapshot

    snap_id = content_id("toy-calc", FILES)
    path = home / "snapshots" / snap_id
    if not path.exists():
        write_snapshot(path)
    return RepoSnapshot(snapshot_id=snap_id, source=str(path), source_kind=SourceKind.LOCAL,
                        path=str(path), n_files=len(FILES), n_bytes=0, name="calc")


def _hand_env(home: Path, snap_id: str) -> EnvSpec:
    venv = home / "envs" / "toy-venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([str(UV), "venv", "-q", "--relocatable", "--python", "/usr/bin/python3",
                        str(venv)], check=True)
        subprocess.run([str(UV), "pip", "install", "-q", "--python", str(venv / "bin/python"),
                        "pytest"], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        (site / "_calc_editable.pth").write_text("/repo/src\n")
    return EnvSpec(env_id=content_id("toy-env", snap_id), snapshot_id=snap_id, python="3.11",
                   python_path="/usr/bin/python3", lock_hash="toy", builder_version="hand",
                   venv_path=str(venv), test_command=("python", "-m", "pytest"),
                   status=EnvStatus.USABLE)


def make_env(home: Path, settings: Settings) -> EnvSpec:
    snap = _snapshot_record(home)
    try:
        from codemill.envs.builder.build import build_env
    except ImportError:
        return _hand_env(home, snap.snapshot_id)
    with warnings.catch_warnings():
        # envs.builder leaves an os.scandir iterator unclosed (`any(os.scandir(...))`);
        # reported to its owner, ignored here so filterwarnings=error does not trip on it
        warnings.simplefilter("ignore", ResourceWarning)
        result = build_env(snap, home, settings)
        gc.collect()
    if result.env.status != EnvStatus.USABLE:
        raise RuntimeError(f"toy env did not build: {result.env.reason}\n{result.log[-3000:]}")
    return result.env


def make_task(env: EnvSpec) -> TaskSpec:
    tid = content_id(env.env_id, BROKEN_PATCH, TEST_PATCH, F2P, P2P)
    return TaskSpec(task_id=tid, env_id=env.env_id, kind=TaskKind.SYNTH,
                    broken_patch=BROKEN_PATCH, gold_patch=GOLD_PATCH, test_patch=TEST_PATCH,
                    fail_to_pass=F2P, pass_to_pass=P2P,
                    problem_statement="calc.add(2, 3) returns -1; it should return 5.",
                    hidden_paths=("tests/test_hidden.py",))


def make_toy(home: Path, settings: Settings | None = None) -> tuple[EnvSpec, TaskSpec]:
    home = Path(home).absolute()
    settings = settings or toy_settings(home)
    env = make_env(home, settings)
    return env, make_task(env)


@dataclass
class Toy:
    home: Path
    settings: Settings
    env: EnvSpec
    task: TaskSpec


_SHARED: dict[str, Toy] = {}


def shared_toy(make_home: Callable[[], Path]) -> Toy:
    """One toy environment per test session, shared by every test area that needs it."""
    if "toy" not in _SHARED:
        home = make_home().absolute()
        settings = toy_settings(home)
        env, task = make_toy(home, settings)
        _SHARED["toy"] = Toy(home, settings, env, task)
    return _SHARED["toy"]
