"""Baselines: k runs in fresh sandboxes, flaky and consistently passing tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from codemill.core.records import Outcome
from codemill.testing.baseline import run_baseline
from codemill.testing.pytest_runner import PytestRunner

from .conftest import write_project

pytestmark = pytest.mark.network  # the sandbox env gets pytest from the package index

# Ten coin-flip tests: the chance that none of them changes outcome over three runs is
# (1/4)**10, about one in a million. Each run is a fresh fork, so state cannot leak.
FLAKY = {
    "tests/test_stable.py": "def test_one():\n    pass\n\ndef test_two():\n    pass\n\n"
                            "def test_broken():\n    assert False\n",
    "tests/test_coins.py": "import random\nimport pytest\n\n"
                           "@pytest.mark.parametrize('i', range(10))\n"
                           "def test_coin(i):\n    assert random.random() < 0.5\n",
    "tests/test_fork.py": "from pathlib import Path\n\n"
                          "def test_fresh_workspace():\n"
                          "    marker = Path('left_by_an_earlier_run')\n"
                          "    assert not marker.exists()\n    marker.write_text('x')\n",
}


def test_baseline_finds_flaky_and_passing(open_project, tmp_path: Path):
    layer = write_project(tmp_path / "proj", FLAKY)
    base = run_baseline(lambda: open_project(layer), PytestRunner(), k=3, timeout_s=120)
    assert len(base.reports) == 3 and base.usable and base.errors == ()
    stable = {"tests/test_stable.py::test_one", "tests/test_stable.py::test_two",
              "tests/test_fork.py::test_fresh_workspace"}
    assert stable <= base.passing and all("test_coin" in n for n in base.passing - stable)
    assert base.flaky and all("test_coin" in n for n in base.flaky)
    assert base.outcomes["tests/test_stable.py::test_broken"] == (Outcome.FAILED,) * 3
    rows = {r["node_id"]: r for r in base.rows()}
    assert len(rows) == 14
    one = rows["tests/test_stable.py::test_one"]
    assert one["outcomes"] == ["passed"] * 3 and not one["flaky"] and one["passing"]
    assert one["mean_duration_s"] >= 0
    assert all(rows[n]["flaky"] for n in base.flaky)


def test_unusable_baselines_say_why(open_project, tmp_path: Path):
    failing = write_project(tmp_path / "failing", {"test_f.py": "def test_f():\n    assert 0\n"})
    base = run_baseline(lambda: open_project(failing), PytestRunner(), k=2, timeout_s=120)
    assert len(base.reports) == 2 and not base.usable and base.passing == frozenset()
    empty = write_project(tmp_path / "empty", {"README.md": "nothing\n"})
    base = run_baseline(lambda: open_project(empty), PytestRunner(), k=3, timeout_s=120)
    assert len(base.reports) == 1  # no results: the other runs are not spent
    assert not base.usable and base.errors == ("no tests collected",) and base.rows() == []
