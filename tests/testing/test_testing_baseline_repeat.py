"""The cheaper baseline: one full run, then a timed sample again. It must still catch a test
that flips between runs and still tell a consistently failing test from a flaky one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codemill.core.config import SandboxConfig
from codemill.core.records import Outcome, TestCaseResult, TestReport
from codemill.sandbox.api import SandboxSpec, open_sandbox
from codemill.testing.baseline import Repeat, run_baseline, summarize
from codemill.testing.pytest_runner import PytestRunner
from codemill.testing.repeat import BaselineConfig, flip_bound, plan_repeat, shards

from .conftest import write_project

# A test that fails on every other run, counting its runs in a file outside the workspace
# (a writable bind at /counter): each run is a fresh fork, so only that file remembers.
ALTERNATING = {
    "tests/test_alt.py": "from pathlib import Path\n\n"
                         "def test_alternate():\n"
                         "    f = Path('/counter/n')\n"
                         "    n = int(f.read_text()) if f.exists() else 0\n"
                         "    f.write_text(str(n + 1))\n"
                         "    assert n % 2 == 0\n",
    "tests/test_ok.py": "def test_one():\n    pass\n\ndef test_two():\n    pass\n\n"
                        "def test_broken():\n    assert False\n",
    "tests/test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(3)\n",
}


def _report(*tests: tuple[str, Outcome, float], wall: float = 10.0) -> TestReport:
    return TestReport(command=("python", "-m", "pytest"), exit_code=1, duration_s=wall,
                      parser_version="junit", results=tuple(
                          TestCaseResult(node_id=n, outcome=o, duration_s=d)
                          for n, o, d in tests))


P, F, E = Outcome.PASSED, Outcome.FAILED, Outcome.ERROR


def test_plan_repeats_quick_suites_whole_and_samples_within_the_budget():
    quick = _report(("t.py::a", P, 0.1), wall=1.5)
    assert plan_repeat(quick, BaselineConfig()) is None  # under min_repeat_s: all again
    first = _report(("t.py::slow", P, 6.0), ("t.py::a", P, 1.0), ("t.py::b", F, 1.0),
                    ("t.py", E, 0.0), ("u.py::c", Outcome.SKIPPED, 0.5), wall=10.0)
    # budget 4 s, start-up 10 - 8.5 = 1.5 s: 2.5 s of tests; the slow one never fits, the
    # module error has no test to repeat, the skipped one tells nothing
    assert plan_repeat(first, BaselineConfig(repeat_fraction=0.4)) == ("t.py::a", "t.py::b")
    assert plan_repeat(first, BaselineConfig(repeat_fraction=0.1)) == ()
    assert plan_repeat(first, BaselineConfig(repeat_fraction=0.3)) == ("t.py::a",)


def test_shards_balance_test_time_and_keep_files_together():
    durations = {"a.py::1": 3.0, "a.py::2": 1.0, "b.py::1": 2.0, "c.py::1": 2.0}
    parts = shards(tuple(sorted(durations)), durations, 2)
    assert sorted(parts) == [("a.py::1", "a.py::2"), ("b.py::1", "c.py::1")]
    assert shards(("a.py::1",), durations, 4) == [("a.py::1",)]
    untimed = shards(("a.py::1", "a.py::2", "b.py::1"), {}, 2)  # all 0.0 s: still spread
    assert sorted(untimed) == [("a.py::1", "a.py::2"), ("b.py::1",)]
    cores = len(os.sched_getaffinity(0))
    assert BaselineConfig().worker_count() == max(1, min(4, cores // 4))
    assert BaselineConfig(workers=3).worker_count() == 3


def test_flip_bound_states_the_confidence():
    assert flip_bound(0, 0) is None
    assert 0.03 < flip_bound(0, 100) < 0.04  # no flip in 100 tests: at most ~3.7%
    assert flip_bound(50, 100) > 0.5 and flip_bound(100, 100) == pytest.approx(1.0)


def test_a_repeat_flip_or_vanishing_is_flaky_and_later_runs_refine():
    full = _report(("t.py::a", P, 0.1), ("t.py::b", P, 0.1), ("t.py::c", F, 0.1),
                   ("t.py::d", P, 0.1))
    rep = _report(("t.py::a", F, 0.1), ("t.py::c", F, 0.1))
    base = summarize([full], [Repeat(("t.py::a", "t.py::b", "t.py::c"), rep)])
    assert base.flaky == {"t.py::a", "t.py::b"}  # b was asked for and vanished
    assert base.passing == {"t.py::d"} and base.checked == {"t.py::a", "t.py::b", "t.py::c"}
    assert "3 of 4 tests ran at least twice, 2 changed outcome" in base.confidence()
    assert base.runs == 1 and base.usable
    later = base.refine(_report(("t.py::a", P, 0.1), ("t.py::b", P, 0.1), ("t.py::c", F, 0.1),
                                ("t.py::d", F, 0.1)))
    assert later.runs == 2 and "t.py::d" in later.flaky and later.passing == frozenset()
    assert base.refine(TestReport(command=(), exit_code=None, duration_s=1.0,
                                  error="timeout")) is base  # no results: no evidence
    by_file = base.refine(_report(("t.py::c", F, 0.1), ("t.py::d", P, 0.1)), ["t.py"])
    assert by_file.repeats[-1].selection == ("t.py::a", "t.py::b", "t.py::c", "t.py::d")
    assert by_file.checked == set(by_file.outcomes) and "t.py::d" in by_file.passing


@pytest.mark.network  # the sandbox env gets pytest from the package index
@pytest.mark.parametrize("workers", [1, 2])
def test_the_sample_catches_a_flipping_test_and_keeps_a_failing_one(
        bwrap_ready: None, sandbox_pyenv: Path, tmp_path: Path, workers: int):
    layer = write_project(tmp_path / "proj", ALTERNATING)
    counter = tmp_path / "counter"
    counter.mkdir()
    os.chmod(counter, 0o777)  # the sandbox's unprivileged uid writes the count
    spec = SandboxSpec(layers=[layer], env_dir=sandbox_pyenv, python_home=Path("/usr"),
                       rw_binds=((counter, "/counter"),),
                       limits=SandboxConfig(memory_mb=1024, pids=128, timeout_s=120))
    # 70% of the first run's wall time, less its start-up, leaves less than the slow
    # test's 3 s while the quick ones fit (holds while a run takes under 10 s)
    cfg = BaselineConfig(repeat_fraction=0.7, workers=workers)
    base = run_baseline(lambda: open_sandbox(spec, tmp_path / "home", backend="bwrap"),
                        PytestRunner(), k=1, timeout_s=120, repeat=cfg)
    assert base.runs == 1 and base.errors == ()
    assert len(base.repeats) == workers  # two test files: one shard each when two workers
    assert (counter / "n").read_text() == "2"  # ran in the full run and in the repeat
    alt, broken = "tests/test_alt.py::test_alternate", "tests/test_ok.py::test_broken"
    assert base.flaky == {alt}
    assert broken not in base.passing and broken in base.checked
    assert base.outcomes[broken] == (Outcome.FAILED,)
    assert {"tests/test_ok.py::test_one", "tests/test_ok.py::test_two"} <= base.passing
    assert "tests/test_slow.py::test_slow" not in base.checked  # over the budget
    assert "tests/test_slow.py::test_slow" in base.passing
    assert base.usable and "1 changed outcome" in base.confidence()
