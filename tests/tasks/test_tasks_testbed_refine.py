"""A test bed's baseline grows with use: the build's one full run is topped up to the k runs
a step asks for (not k more), and every later run of the unchanged state is folded in."""

from codemill.core.records import Outcome
from codemill.tasks.testbed import TestBed, baseline_of


def test_the_baseline_is_topped_up_and_refined_by_later_runs(bed):
    first = bed.run(None, None, timeout_s=120)
    assert first.ran
    grown = TestBed(bed.env_id, bed.spec, bed.home / "refine", runner=bed.runner,
                    baseline=baseline_of([first]), min_timeout_s=4.0)
    base = grown.baseline(3)
    assert base.runs == 3 and grown.runs == 2  # two runs added to the one it had
    assert base.reports[0] is first
    again = grown.baseline(3)
    assert again is base and grown.runs == 2  # enough runs: nothing more to run
    passing = sorted(base.passing)[:2]
    grown.run(None, passing)  # the unchanged state, a selection: one more look at it
    assert [r.selection for r in grown.baseline(1).repeats] == [tuple(passing)]
    assert base.checked == set(base.outcomes)  # all seen three times already
    # a changed state is not the baseline's business
    grown.run({"tests/test_calc.py": b"def test_new():\n    assert False\n"},
              ["tests/test_calc.py"])
    assert len(grown.baseline(1).repeats) == 1
    assert grown.baseline(1).outcomes[passing[0]] == (Outcome.PASSED,) * 3


def test_the_builds_looks_at_the_suite_come_back_from_the_ledger(calc_env):
    from codemill.factory.lookup import baseline_reports
    from codemill.store.reader import LedgerReader

    settings, _, env = calc_env
    with LedgerReader.open(settings) as reader:
        full = baseline_reports(reader, env.env_id)
        repeats = baseline_reports(reader, env.env_id, "baseline-repeat")
    # one full run, then the quick suite again whole (a second full run), or a sample of
    # it, or (start-up alone over the budget on a very busy machine) nothing
    assert len(full) in (1, 2) and len(full) + len(repeats) <= 2
    bed = TestBed.from_env(env, settings.home, settings.sandbox, baseline_reports=full,
                           baseline_repeats=repeats)
    base = bed.baseline(1)
    assert base.runs == len(full) and len(base.repeats) == len(repeats)
    assert bool(base.checked) == (len(full) + len(repeats) == 2)
    assert base.checked <= set(base.outcomes)
    assert bed.runs == 0  # all of it read back, nothing run
