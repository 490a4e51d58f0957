"""The report opened in a real browser: headless Chromium (Debian's) loads the file from
disk, every plot decodes, a trajectory opens and shows its steps and reward."""

from __future__ import annotations

import json
import re

from codemill.evals.suites import SuiteRunConfig, SuiteSelection
from codemill.factory import eval_api
from codemill.report.browser import inspect
from codemill.report.data import collect
from codemill.report.html import write_report

from .conftest import seed


def test_report_renders_plots_and_a_trajectory_in_chromium(world, tmp_path):
    settings, _snap, _tasks = world
    run = SuiteRunConfig(k=1, max_turns=3, max_tokens=64, wall_time_s=120)
    eval_api.define_suite(settings, "toy", "1", SuiteSelection(), run)
    oracle = eval_api.evaluate(settings, "toy", "oracle")
    eval_api.evaluate(settings, "toy", "scripted:look-then-submit")
    eval_api.judge_eval(settings, oracle.eval_id, "heuristic")
    curve = [{"step": i, "reward_mean": r} for i, r in enumerate([0.1, 0.3, 0.25, 0.5])]
    seed(settings, {"checkpoints": [{"checkpoint_id": "a" * 64, "kind": "grpo",
                                     "metrics": json.dumps(curve)}]})

    data = collect(settings)
    sr = data.suites[0]
    assert [e.variant for e in sr.evals] != [] and len(sr.comparisons) == 1
    assert sr.comparisons[0].only_a + sr.comparisons[0].only_b == 2
    path = write_report(data, tmp_path / "report.html")
    html = path.read_text()
    assert "<script" not in html and not re.search(r"(src|href)=['\"]https?:", html)

    shot = tmp_path / "report.png"
    seen = inspect(path, screenshot=shot)
    assert seen.title == "codemill report"
    alts = [alt for alt, _, _ in seen.plots]
    assert alts == ["training reward curve", "pass@k per variant", "pass@1 per project",
                    "judge agreement"]
    assert all(w > 300 and h > 150 for _, w, h in seen.plots)  # decoded, not broken images
    assert seen.steps_visible >= 2
    assert "git apply" in seen.step_text  # variants in name order: the oracle first
    assert "resolved True" in seen.reward_text and "flags: none" in seen.reward_text
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:4] == b"\x89PNG"
