"""docs/scale.md is generated: it must equal what ``bench/bench_fleet.py --render`` renders
from the committed result file, so no measured or projected figure is typed by hand."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench_fleet():
    sys.path.insert(0, str(ROOT / "bench"))  # bench scripts import record as a sibling
    try:
        spec = importlib.util.spec_from_file_location("bench_fleet", ROOT / "bench" /
                                                      "bench_fleet.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def test_scale_page_is_what_the_fleet_result_renders_to():
    fleet = _bench_fleet()
    result = json.loads((ROOT / "bench" / "results" / "fleet.json").read_text())
    assert (ROOT / "docs" / "scale.md").read_text() == fleet.render(result)


def test_scale_page_says_what_is_measured_and_what_is_not():
    page = (ROOT / "docs" / "scale.md").read_text()
    assert "**Measured**" in page and "**Projected**" in page
    scaling = ROOT / "bench" / "results" / "fleet-scale.json"
    if not scaling.exists():
        assert "has **not** been run" in page  # the 50-project, 1-2-3 worker benchmark
        return
    runs = [f for f in json.loads(scaling.read_text())["figures"]
            if f["what"].startswith("fleet of ")]
    assert "## Measured: scaling over Ray worker nodes" in page
    for f in runs:  # each worker count's wall time is on the page, as measured
        assert f"| {f['value']:,.0f} |" in page
