"""docs/benchmarks.md is generated: every figure on it comes from a result file in bench/results/.

The page must equal what ``bench/render_benchmarks.py`` renders from the committed result
files, and no table row may carry a figure that its section's result file does not hold (a
figure typed into the page by hand is caught by both).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load("render_benchmarks")
record = _load("record")


def test_page_is_what_the_committed_results_render_to():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "render_benchmarks.py"),
                          "--check"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_every_figure_on_the_page_has_a_result_file():
    results = render.load_results()
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert render.page_problems(page, results) == []
    for r in results:  # each result carries what makes it reproducible
        assert r["command"] and r["date"] and r["machine"]["cores"] and r["figures"]
        assert len(r["commit"]) == 40, r["name"]
        assert f"bench/results/{r['name']}.json" in page


def test_a_typed_figure_is_caught(tmp_path):
    path = record.write_result("demo", "Demo result", [record.figure("start", 32.1, "ms", n=3)],
                               measures="what it measures", argv=["bench/bench_x.py", "--n", "3"],
                               out_dir=tmp_path)
    saved = json.loads(path.read_text())
    assert saved["command"].endswith("bench/bench_x.py --n 3")
    assert saved["machine"]["load_start"] and saved["figures"][0]["value"] == 32.1
    results = render.load_results(tmp_path)
    page = render.render(results)
    assert render.page_problems(page, results) == []
    edited = page.replace("| start | 32.1 ms |", "| start | 12.1 ms |")
    assert edited != page
    assert render.page_problems(edited, results) == [
        "row not in demo.json: | start | 12.1 ms | n: 3 |"]
    typed = page.replace("## Contents", "| what | figure |\n|---|---|\n| a typed row | 9 s |\n"
                         "\n## Contents")
    assert render.page_problems(typed, results) == [
        "figure outside any result's section: | a typed row | 9 s |"]


def test_examples_are_quoted_text_not_figures(tmp_path):
    answer = "| a table row in a reply | 3 s |\n94:         return key in self.__data"
    record.write_result("demo", "Demo result", [record.figure("start", 32.1, "ms")],
                        measures="what it measures", argv=["bench/bench_x.py"], out_dir=tmp_path,
                        examples=[{"title": "task <1>: resolved", "text": answer},
                                  {"title": "fenced", "text": "```\n| 9 | 9 s |\n```"}])
    results = render.load_results(tmp_path)
    page = render.render(results)
    assert "<summary>task &lt;1&gt;: resolved</summary>" in page
    assert "94:         return key in self.__data" in page
    assert "~~~~text\n```\n| 9 | 9 s |\n```\n~~~~" in page  # a fence inside gets another
    assert render.page_problems(page, results) == []
    # the same row outside the quoted text is a figure no result holds
    outside = page.replace("<details>", "| a typed row | 3 s |\n\n<details>", 1)
    assert render.page_problems(outside, results) == [
        "row not in demo.json: | a typed row | 3 s |"]


def test_readme_is_short_and_quotes_no_measurement():
    import re

    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    # A measured figure (seconds, a rate, a ratio, a share) belongs in docs/benchmarks.md.
    found = re.findall(r"\b\d[\d,.]*\s?(?:ms|s|seconds|minutes|min|tokens/s|rows/s|x|%)(?![\w/])",
                       text)
    assert found == []
    assert "docs/benchmarks.md" in text
