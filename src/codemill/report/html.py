"""``codemill report``: one self-contained HTML file (inline CSS, plots as data URIs, no
script, nothing fetched when it opens).

Sections: what runs recorded per environment, with or without a suite (source, status and
baseline pass fraction, tasks by kind, rollouts with rewards and flags, trajectories);
training reward curve; per suite, pass@k per variant with interval bars, the
score table (masked shown apart, costs, stop reasons), paired comparisons with flipped
tasks, per-project/kind/difficulty breakdown, judge-vs-execution agreement; a trajectory
viewer (each step: the model's message, the tool call, the observation, the files edited
so far, and at the end the graded diff and the reward with its flags).
"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path
from typing import Any

from codemill.report import plots
from codemill.report.data import ReportData, RunsReport, SuiteReport

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1150px;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.muted{color:#777}.ok{color:#176d2c}.bad{color:#a11}
img.plot{display:block;margin:.6em 0;max-width:100%}
pre{white-space:pre-wrap;max-height:22em;overflow:auto;background:#f7f7f7;margin:0;
padding:4px;font-size:12px}
details.traj{border:1px solid #ccc;margin:.5em 0;padding:.3em .6em}
details.traj summary{cursor:pointer;font-weight:600}
"""
OBS_CHARS = 3000
_ACTION = re.compile(r"(<tool name=\"[^\"]+\">.*?</tool>|```bash\n.*?```)", re.S)


def _img(uri: str | None, alt: str) -> str:
    if uri is None:
        return f"<p class='muted'>{escape(alt)}: no data recorded.</p>"
    return f"<img class='plot' alt='{escape(alt)}' src='{uri}'>"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _scores(sr: SuiteReport) -> str:
    head = ("<tr><th>variant</th><th>pass@1 [95% CI]</th><th>pass@k [95% CI]</th>"
            "<th>graded</th><th>masked (not failures)</th><th>tokens / attempt</th>"
            "<th>model s / resolved</th><th>sandbox s / resolved</th><th>stop reasons</th>"
            "<th>contamination</th></tr>")
    rows = []
    for ev in sr.evals:
        sc = ev.score
        pk = sc.pass_k[-1]
        masked = ", ".join(f"{k} {v}" for k, v in sc.masked_reasons.items())
        per_m, per_s = sc.cost.model_seconds_per_resolved, sc.cost.sandbox_seconds_per_resolved
        rows.append(
            f"<tr><td>{escape(ev.variant)}</td><td>{escape(str(sc.pass1))}</td>"
            f"<td>pass@{pk.k} {escape(str(pk))}</td><td>{sc.graded}</td>"
            f"<td>{sc.masked} ({_pct(sc.masked_rate)}) {escape(masked)}</td>"
            f"<td>{sc.cost.tokens:.0f}</td>"
            f"<td>{'-' if per_m is None else f'{per_m:.1f}'}</td>"
            f"<td>{'-' if per_s is None else f'{per_s:.1f}'}</td>"
            f"<td>{escape(', '.join(f'{k} {v}' for k, v in sorted(sc.stop_reasons.items())))}"
            f"</td><td>{escape(ev.contamination.get('summary', ''))}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _breakdown(sr: SuiteReport) -> str:
    """pass@1 with Wilson intervals per project, task kind and difficulty, per variant."""
    head = "<tr><th>by</th><th>value</th>" + "".join(
        f"<th>{escape(ev.variant)}</th>" for ev in sr.evals) + "</tr>"
    rows = []
    for dim in ("project", "kind", "difficulty"):
        values = sorted({v for ev in sr.evals for v in ev.score.by.get(dim, {})})
        for v in values:
            cells = "".join(f"<td>{escape(str(ev.score.by.get(dim, {}).get(v, '-')))}</td>"
                            for ev in sr.evals)
            rows.append(f"<tr><td>{dim}</td><td>{escape(v)}</td>{cells}</tr>")
    return f"<table class='breakdown'>{head}{''.join(rows)}</table>"


def _comparisons(sr: SuiteReport) -> str:
    if not sr.comparisons:
        return "<p class='muted'>one variant only: nothing to compare.</p>"
    head = ("<tr><th>A</th><th>B</th><th>paired attempts</th><th>A rate</th><th>B rate</th>"
            "<th>B - A [95% paired bootstrap]</th><th>A only / B only</th>"
            "<th>McNemar p</th><th>verdict</th><th>flipped tasks</th></tr>")
    rows = []
    for c in sr.comparisons:
        diff = "n/a" if c.diff is None else f"{c.diff:+.1%} [{c.diff_low:+.1%}, {c.diff_high:+.1%}]"
        flips = "<br>".join(f"{escape(f.task_id[:12])} ({escape(f.project)}): "
                            f"A {f.a_resolved}/{f.attempts}, B {f.b_resolved}/{f.attempts}"
                            for f in c.flips) or "none"
        if len(c.flips) > 4:  # long lists fold away; the count stays visible
            flips = f"<details><summary>{len(c.flips)} tasks</summary>{flips}</details>"
        rows.append(f"<tr><td>{escape(c.a)}</td><td>{escape(c.b)}</td><td>{c.pairs} "
                    f"({c.dropped_masked} masked dropped)</td><td>{_pct(c.a_rate)}</td>"
                    f"<td>{_pct(c.b_rate)}</td><td>{diff}</td><td>{c.only_a} / {c.only_b}</td>"
                    f"<td>{c.p_value:.3g}</td><td>{escape(c.verdict)}</td>"
                    f"<td class='flips'>{flips}</td></tr>")
    return f"<table class='comparison'>{head}{''.join(rows)}</table>"


def _agreements(sr: SuiteReport) -> str:
    if not sr.agreements:
        return "<p class='muted'>no judge has scored this suite's attempts.</p>"
    rows = []
    for judge, items in sr.agreements.items():
        for variant, a in items:
            kappa = "n/a" if a.kappa is None else f"{a.kappa:.2f}"
            rows.append(f"<tr><td>{escape(judge)}</td><td>{escape(variant)}</td><td>{a.n}</td>"
                        f"<td>{escape(str(a.agree))}</td><td>{kappa}</td>"
                        f"<td>{escape(json.dumps(a.confusion))}</td><td>{a.unscored}</td></tr>")
    return ("<table><tr><th>judge</th><th>variant</th><th>judged</th><th>agreement [95% CI]"
            "</th><th>Cohen's kappa</th><th>verdict/outcome</th><th>unscored</th></tr>"
            + "".join(rows) + "</table>")


def _tool_call(step: dict[str, Any]) -> str:
    calls = json.loads(step.get("tool_calls") or "[]")
    if calls:
        return "\n".join(f"{c['name']}({json.dumps(c.get('arguments', {}))})" for c in calls)
    found = _ACTION.findall(step.get("content") or "")
    return "\n".join(found) or "(no action)"


def _edited(step: dict[str, Any]) -> set[str]:
    text = _tool_call(step)
    paths = set(re.findall(r'"path":\s*"([^"]+)"', text))
    paths |= set(re.findall(r"^\+\+\+ b/(\S+)", text, re.M))
    return paths


def _trajectory(t: dict[str, Any], n: int) -> str:
    s, ro, rw = t["sample"], t["rollout"], t["reward"]
    outcome = ("masked: " + str(s.get("error_type"))) if s["masked"] else (
        "resolved" if s["resolved"] else "not resolved")
    cls = "ok" if s.get("resolved") else "bad"
    rows, edited = [], set()
    for step in t["steps"]:
        edited |= _edited(step)
        obs = json.loads(step.get("observations") or "[]")
        obs_text = "\n\n".join(f"[{o.get('name') or o.get('role')}] {o.get('content', '')}"
                               for o in obs)
        if len(obs_text) > OBS_CHARS:
            obs_text = obs_text[:OBS_CHARS] + f"\n[... {len(obs_text) - OBS_CHARS} chars cut]"
        rows.append(f"<tr class='step'><td>{step['step_index']}</td>"
                    f"<td><pre>{escape(step.get('content') or '')}</pre></td>"
                    f"<td><pre>{escape(_tool_call(step))}</pre></td>"
                    f"<td><pre>{escape(obs_text)}</pre></td>"
                    f"<td>{escape(', '.join(sorted(edited)) or '-')}</td></tr>")
    flags = ", ".join(json.loads(rw.get("flags") or "[]")) or "none"
    reward = (f"value {rw.get('value')}, resolved {rw.get('resolved')}, masked "
              f"{rw.get('masked')} {rw.get('error_type') or ''}, FAIL_TO_PASS "
              f"{rw.get('f2p_passed')}/{rw.get('f2p_total')}, flags: {flags}")
    return (f"<details class='traj' id='traj-{n}'><summary>{escape(s['variant'])} on "
            f"{escape(s['task_id'][:12])} ({escape(s.get('project') or '')}), attempt "
            f"{s['sample_index']}: <span class='{cls}'>{escape(outcome)}</span>, stop "
            f"{escape(str(s.get('stop_reason')))}</summary>"
            f"<p><b>task:</b></p><pre>{escape(ro.get('task_prompt') or '')}</pre>"
            "<table><tr><th>step</th><th>model's message</th><th>tool call</th>"
            "<th>observation</th><th>files edited so far</th></tr>" + "".join(rows) +
            f"</table><p><b>final diff (as graded):</b></p><pre class='diff'>"
            f"{escape(ro.get('diff') or '(empty)')}</pre>"
            f"<p class='reward'><b>reward:</b> {escape(reward)}</p></details>")


def _runs(r: RunsReport, start: int) -> list[str]:
    share = f" ({r.n_passing / r.n_tests:.0%})" if r.n_tests else ""
    kinds = ", ".join(f"{k} {v}" for k, v in r.tasks_by_kind.items()) or "none"
    parts = [f"<h3>Environment {escape(r.env_id[:12])}: {escape(r.source)}</h3>"
             f"<p>{escape(r.status)}, {r.n_passing}/{r.n_tests} tests pass{share}; "
             f"tasks: {escape(kinds)}; rollouts: {len(r.rollouts)}</p>"]
    if r.rollouts:
        rows = []
        for ro in r.rollouts:
            rw = ro["reward"]
            value = ("not graded" if not rw else f"masked: {rw.get('error_type')}"
                     if rw.get("masked") else f"{rw.get('value')}")
            flags = ", ".join(json.loads(rw.get("flags") or "[]")) if rw else ""
            rows.append(f"<tr><td>{escape(ro['task_id'][:12])}</td>"
                        f"<td>{escape(ro['policy'])}</td><td>{ro['sample_index']}</td>"
                        f"<td>{escape(str(ro.get('stop_reason')))}</td>"
                        f"<td>{escape(value)}</td><td>{escape(flags or '-')}</td></tr>")
        parts.append("<table class='runs'><tr><th>task</th><th>policy</th><th>attempt</th>"
                     "<th>stop</th><th>reward</th><th>flags</th></tr>"
                     + "".join(rows) + "</table>")
    parts += [_trajectory(t, start + i) for i, t in enumerate(r.trajectories)]
    return parts


def render(data: ReportData) -> str:
    """The whole page as one string."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>codemill report"
             f"</title><style>{CSS}</style></head><body><h1>codemill report</h1>"
             f"<p class='muted'>ledger: {escape(data.ledger)}</p><h2>Runs</h2>"]
    n = 0
    if not data.runs:
        parts.append("<p class='muted'>no run recorded yet (codemill run SOURCE).</p>")
    for r in data.runs:
        parts += _runs(r, n)
        n += len(r.trajectories)
    parts += ["<h2>Training</h2>",
              _img(plots.reward_curve(data.curves), "training reward curve")]
    if not data.suites:
        parts.append("<h2>Evals</h2><p class='muted'>no suite defined yet: "
                     "<code>codemill eval suite NAME</code> makes one from recorded tasks; "
                     "the runs above need none.</p>")
    for sr in data.suites:
        s = sr.suite
        parts.append(f"<h2>Suite {escape(s.name)}@{escape(s.version)}</h2><p>{len(s.tasks)} "
                     f"tasks, k = {s.run.k}, max turns {s.run.max_turns}, max tokens/call "
                     f"{s.run.max_tokens}, temperature {s.run.temperature}, seed "
                     f"{s.run.seed} <span class='muted'>({s.suite_id[:12]})</span></p>")
        parts += [_img(plots.pass_at_k(sr), "pass@k per variant"), _scores(sr),
                  "<h3>Paired comparisons</h3>", _comparisons(sr),
                  "<h3>Per project, kind and difficulty</h3>",
                  _img(plots.per_project(sr), "pass@1 per project"), _breakdown(sr),
                  "<h3>Judge vs execution</h3>",
                  _img(plots.judge_agreement(sr), "judge agreement"), _agreements(sr),
                  "<h3>Trajectories</h3>"]
        for t in sr.trajectories:
            parts.append(_trajectory(t, n))
            n += 1
    parts.append("</body></html>")
    return "".join(parts)


def write_report(data: ReportData, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    return out
