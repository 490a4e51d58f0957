"""Vibe checks on the toy project: two scripted variants answer the same four requests;
the executable checks run in real sandboxes, the judge compares the rest."""

from __future__ import annotations

import json
from pathlib import Path

from codemill.evals.vibes import make_requests
from codemill.factory import eval_api


def _edit(path, **args):
    return f'<tool name="edit">\n{json.dumps({"path": path, **args})}\n</tool>'


def test_vibe_checks_run_tests_in_the_sandbox_and_judge_the_rest(world, tmp_path):
    settings, snap, _tasks = world
    env_id = _tasks[0].env_id
    reqs = make_requests(snap.path, env_id, n_functions=1, seed=0)
    assert [r.kind for r in reqs] == ["explain", "question", "add_test", "refactor"]
    fn, path = reqs[0].function, reqs[0].path
    ops = (Path(snap.path) / path).read_text()
    good = [
        f"`{fn}` in `{path}` combines its two arguments a and b and returns the result. "
        '<tool name="submit"></tool>',
        f"`{fn}` is called from `calc/__init__.py` exports and the tests. "
        '<tool name="submit"></tool>',
        _edit(f"tests/test_vibe_{fn}.py", file_text=f"from calc import {fn}\n\n\n"
              f"def test_{fn}_runs():\n    assert {fn}(2, 2) is not None\n"),
        '<tool name="submit"></tool>',
        _edit(path, file_text=ops + "\n"),  # behaviour unchanged
        '<tool name="submit"></tool>',
    ]
    script = tmp_path / "good.json"
    script.write_text(json.dumps(good))
    rows = eval_api.vibe_check(settings, env_id[:12], [f"scripted:{script}",
                                                       "scripted:submit"],
                               n_functions=1, max_turns=3, max_tokens=64)
    by = {(r["variant"].split("/")[-1], r["kind"]): r for r in rows}
    assert len(rows) == 8
    assert by[("good.json", "add_test")]["check_passed"] is True, by[("good.json", "add_test")]
    assert by[("good.json", "refactor")]["check_passed"] is True
    assert by[("scripted:submit", "add_test")]["check_passed"] is False
    assert by[("scripted:submit", "refactor")]["check"] == "no change made"
    for kind in ("explain", "question"):
        assert by[("good.json", kind)]["check_passed"] is None
        assert fn in by[("good.json", kind)]["answer"]
        # the judge compared the lazy variant's answer with the first variant's, preferring it
        assert by[("scripted:submit", kind)]["preference"] == "first"
    # asked again: nothing new is answered or recorded
    again = eval_api.vibe_check(settings, env_id[:12], [f"scripted:{script}",
                                                        "scripted:submit"],
                                n_functions=1, max_turns=3, max_tokens=64)
    assert len(again) == 8
