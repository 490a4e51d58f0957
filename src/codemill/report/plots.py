"""The report's figures, drawn by matplotlib and embedded as base64 PNG data URIs (the
page needs no network and no files beside it)."""

from __future__ import annotations

import base64
import io
from typing import Any

from codemill.report.data import SuiteReport


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory
    import matplotlib.pyplot as plt

    return plt


def _uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _err(value: float | None, low: float, high: float) -> tuple[float, float, float]:
    v = value or 0.0
    return v, max(0.0, v - low), max(0.0, high - v)


def reward_curve(curves: list[dict[str, Any]]) -> str | None:
    """Training reward per step, one line per checkpoint; None without metrics."""
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for c in curves:
        ax.plot(c["steps"], c["reward"], marker="o", label=f"{c['kind']} {c['checkpoint_id'][:8]}")
    ax.set_xlabel("training step")
    ax.set_ylabel("mean reward")
    ax.set_title("training reward")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _uri(fig)


def pass_at_k(sr: SuiteReport) -> str | None:
    """pass@1 .. pass@k per variant with 95% interval bars (Wilson for pass@1, bootstrap
    over tasks for k > 1)."""
    if not sr.evals:
        return None
    plt = _pyplot()
    k = sr.suite.run.k
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    width = 0.8 / k
    for j in range(k):
        vals, lo, hi = [], [], []
        for ev in sr.evals:
            if j == 0:
                v, a, b = _err(ev.score.pass1.value, ev.score.pass1.low, ev.score.pass1.high)
            else:
                p = ev.score.pass_k[j]
                v, a, b = _err(p.value, p.low, p.high)
            vals.append(v)
            lo.append(a)
            hi.append(b)
        xs = [i + j * width for i in range(len(sr.evals))]
        ax.bar(xs, vals, width, yerr=[lo, hi], capsize=4, label=f"pass@{j + 1}")
    ax.set_xticks([i + width * (k - 1) / 2 for i in range(len(sr.evals))])
    ax.set_xticklabels([ev.variant[:28] for ev in sr.evals], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("resolved")
    ax.set_title(f"pass@k on {sr.suite.name}@{sr.suite.version} (95% intervals)")
    ax.legend(fontsize=8)
    return _uri(fig)


def per_project(sr: SuiteReport) -> str | None:
    """pass@1 per project and variant, with Wilson interval bars."""
    projects = sorted({p for ev in sr.evals for p in ev.score.by.get("project", {})})
    if not projects:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    width = 0.8 / len(sr.evals)
    for j, ev in enumerate(sr.evals):
        rates = ev.score.by.get("project", {})
        errs = [_err(r.value, r.low, r.high) if (r := rates.get(p)) else (0.0, 0.0, 0.0)
                for p in projects]
        ax.bar([i + j * width for i in range(len(projects))], [e[0] for e in errs], width,
               yerr=[[e[1] for e in errs], [e[2] for e in errs]], capsize=3,
               label=ev.variant[:28])
    ax.set_xticks([i + width * (len(sr.evals) - 1) / 2 for i in range(len(projects))])
    ax.set_xticklabels(projects, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pass@1")
    ax.set_title("per project")
    ax.legend(fontsize=8)
    return _uri(fig)


def judge_agreement(sr: SuiteReport) -> str | None:
    """Agreement of each judge's verdict with execution, per variant, with intervals."""
    bars = [(f"{judge}\n{variant[:20]}", a) for judge, items in sr.agreements.items()
            for variant, a in items if a.n]
    if not bars:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    errs = [_err(a.agree.value, a.agree.low, a.agree.high) for _, a in bars]
    ax.bar(range(len(bars)), [e[0] for e in errs],
           yerr=[[e[1] for e in errs], [e[2] for e in errs]], capsize=4, color="#6a8")
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([b[0] for b in bars], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("agreement with execution")
    ax.set_title("judge vs execution")
    return _uri(fig)
