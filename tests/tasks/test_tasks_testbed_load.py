"""A test bed's timeouts follow the machine's speed now, not only at baseline time: a
suite that times out only because the machine is busier than when its baseline was
measured runs again with a longer limit; a state that really hangs still times out."""

from codemill.tasks.testbed import TestBed, baseline_of


def _bed_with_baseline(bed, reports, min_timeout_s):
    return TestBed(bed.env_id, bed.spec, bed.home, runner=bed.runner,
                   baseline=baseline_of(reports), min_timeout_s=min_timeout_s)


def test_a_timeout_from_a_busy_machine_is_recalibrated(bed):
    real = bed.run(None, None, timeout_s=120)
    assert real.ran and real.duration_s > 0.2
    # a baseline measured on a (pretend) machine 1000x faster than this one is now
    fast = real.model_copy(update={"duration_s": real.duration_s / 1000})
    fast = fast.model_copy(update={"results": [
        r.model_copy(update={"duration_s": r.duration_s / 1000}) for r in real.results]})
    busy = _bed_with_baseline(bed, [fast], min_timeout_s=0.2)
    assert busy.timeout_for(None) < 0.25  # far below one real run of the suite
    report = busy.run(None, None)
    assert report.ran and not report.timed_out
    # timed out, probed, ran again; how much slower depends on this machine's speed now
    assert busy.slowdown > 1 and busy.runs == 3
    assert busy.timeout_for(None) > real.duration_s  # later runs start from the new speed


def test_a_state_that_hangs_still_times_out(bed):
    real = bed.run(None, None, timeout_s=120)
    honest = _bed_with_baseline(bed, [real], min_timeout_s=0.5)
    hang = {"tests/test_calc.py": b"import time\n\n\ndef test_hang():\n    time.sleep(300)\n"}
    report = honest.run(hang, ["tests/test_calc.py"])
    assert report.timed_out and not report.ran
    assert honest.runs <= 3  # one probe at most, however it came out
    again = honest.run(hang, ["tests/test_calc.py"])
    assert again.timed_out and honest.runs <= 4  # no second probe right after the first
