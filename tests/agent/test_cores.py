"""``codemill.agent.models.cores``: the sampler uses the cores no other process keeps busy."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from codemill.agent.models.cores import SpareCores, busy_seconds, spare_threads
from codemill.core.config import available_cpus


def test_threads_are_the_cores_left_over_and_at_least_one():
    assert spare_threads(2, 0.0) == 2
    assert spare_threads(2, 0.3) == 2      # a tool call now and then leaves both cores
    assert spare_threads(2, 0.9) == 1      # a test run beside the sampler takes one
    assert spare_threads(2, 1.9) == 1      # never fewer than one
    assert spare_threads(8, 2.6) == 5
    assert spare_threads(1, 0.0) == 1


def test_busy_time_reads_the_cpus_asked_for(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice, in clock ticks;
    # guest time is already counted in user
    stat.write_text("cpu  300 0 100 5000 50 0 0 0 40 0\n"
                    "cpu0 200 0 50 2000 20 0 0 0 40 0\n"
                    "cpu1 90 0 50 3000 30 4 6 0 0 0\n"
                    "intr 12345 0 0\nctxt 999\n")
    tick = os.sysconf("SC_CLK_TCK")
    assert busy_seconds(stat=stat) == (250 + 150) / tick   # the per-CPU lines, not "cpu"
    assert busy_seconds({1}, stat=stat) == 150 / tick
    assert busy_seconds(set(), stat=stat) == 0


def test_a_busy_process_beside_the_sampler_takes_a_core_from_it():
    spare = SpareCores(interval=0.3)
    assert spare.threads == spare.cores == available_cpus()  # before any look: every core
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        spare.spare()               # the look that starts the window with the hog running
        time.sleep(0.8)
        threads = spare.spare()
    finally:
        hog.kill()
        hog.wait()
    # the hog kept about one core busy; other tests running beside this one only add to it
    assert threads <= max(1, spare.cores - 1)
