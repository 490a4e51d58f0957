"""Does the factory make a model better? Base vs SFT vs SFT+GRPO on projects never trained on.

Runbook::

    nice -n 5 .venv/bin/python bench/bench_learn.py > bench/out/learn.log 2>&1 &
    .venv/bin/python bench/bench_learn.py --report        # what is measured so far (and
                                                          # bench/results/learn.json from it)
    .venv/bin/python bench/bench_learn.py --until data    # stop after a stage
    .venv/bin/python bench/bench_learn.py --stage eval:base:patch   # one stage alone
    .venv/bin/python bench/bench_learn.py --split held-out --until data   # held-out data only
    .venv/bin/python bench/bench_learn.py --prepare-sft DIR   # the sft stage's data, for
        # `python -m codemill.train.remote DIR` on a GPU machine; copy DIR/<id> into
        # bench/out/learn_home/checkpoints/ and the sft stage records it without training

Stages, each resumable (rows appended as JSON lines to ``bench/out/learn.jsonl``; a stage
already there is skipped; environments, tasks, rollouts and training states recorded in the
home ``bench/out/learn_home`` are reused, so a killed run goes on where it stopped):

1. ``data:PROJECT``, one per project: ``codemill env build pypi:NAME==VER`` and ``codemill
   tasks synth`` through the CLI, as a user would, two projects at a time. TRAIN projects
   give up to ``--train-tasks`` tasks each, HELD_OUT ones up to ``--held-out-tasks``. No
   project is in both lists, and none gets a setting of its own.
2. ``eval:base``: SmolLM2-135M on every held-out task in patch mode (greedy, one attempt),
   through the factory's evals (suite ``learn-held-out``); pass@1 with a Wilson interval.
3. ``sft``: ``train_sft`` in patch mode on the TRAIN tasks' expert answers (the gold patch
   written as line edits of the listing the prompt shows, recorded and graded like any
   patch-mode rollout: only answers the grader rewards 1 are trained on) and mutation
   reversals of the TRAIN projects' released code (``SFT``).
4. ``eval:sft``; 5. ``grpo`` from the SFT checkpoint on TRAIN tasks (patch mode, G = 8,
   dynamic sampling); 6. ``eval:grpo``.
7. ``agent:*``: the three models in agent mode on 40 of the held-out tasks.
   ``time:base:agent`` (only with ``--stage``) runs the base model's agent-mode eval again
   from nothing, under a suite version named after the commit: its wall time with today's
   sampler, and how many outcomes match the recorded eval (``retime``).
   Further arms, each with its patch-mode eval: ``sft2`` (the SFT recipe again from the SFT
   checkpoint, ``SFT2``), ``grpo2`` (GRPO from sft2), ``grpo3`` (8 more GRPO rounds from
   grpo2, ``GRPO3``), ``grpo16`` (8 more GRPO rounds from grpo, ``GRPO16``), ``grpof`` (GRPO
   from sft with the format reward and never-tried tasks first, ``GRPOF``; ``grpof2`` the
   same with a larger step, ``GRPOF2``), ``sft1`` (a
   one-function listing, ``patch1``). From a fresh home the
   quickest way to the best model: ``--stage`` sft, sft2, grpo2, grpo3, then their evals.
   ``gold:held-out`` and ``gold:train`` (only with ``--stage``) grade every task's gold
   patch through ``codemill grade --predictions``: the share an honest fix can win under
   today's grader, by project, and the ids of the rest (``gold``).
8. ``report``: each trained model paired with the base and with its parent (exact McNemar
   on the discordant tasks), the GRPO curve (``bench/out/learn_curve.png``), and the result
   file ``bench/results/learn.json`` for ``docs/benchmarks.md``. Figures of the last result
   file that no stage of this home produced again (a home on a new machine holds only what
   ran there) are kept, each marked with the commit and date it was measured at.

The split is by project: a task's project is the ``pypi:`` source of its snapshot.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stages import (  # noqa: E402
    canonical,
    cli,
    done_stages,
    log,
    record,
    run_stage,
    split_by_project,
    tasks_with_projects,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"

TRAIN = (
    "toolz==0.12.0", "more-itertools==10.1.0", "humanize==4.9.0", "tabulate==0.9.0",
    "parse==1.19.0", "idna==3.4", "packaging==23.1", "natsort==8.4.0", "schema==0.7.5",
    "voluptuous==0.13.1", "six==1.16.0", "pluggy==1.0.0", "iniconfig==1.1.1",
    "markupsafe==2.1.3", "python-dateutil==2.8.2", "attrs==23.1.0", "tomlkit==0.12.1",
    "simplejson==3.19.1", "mistune==2.0.5", "arrow==1.2.3",
)
"""Trained on: 20 projects."""
HELD_OUT = (
    "semver==2.13.0", "itsdangerous==2.1.2", "python-slugify==5.0.2", "inflection==0.5.1",
    "cachetools==5.3.1", "pyparsing==3.0.9",
)
"""Never trained on: every task of these projects is evaluated."""
SYNTH = ["--compose", "0", "--runs", "2", "--mutants", "2"]
"""Single-site bugs, two runs per state (flakiness), two mutants for test strength."""


# --- stage 1: data -----------------------------------------------------------------------


def project_data(home: Path, project: str, split: str, want: int) -> dict:
    """Build the project's environment and synthesize up to ``want`` validated tasks
    (a resumed stage tops up to the target instead of adding that many more)."""
    t = time.monotonic()
    try:
        env = cli(["env", "build", f"pypi:{project}", "--json"], home)
        assert isinstance(env, dict)
        built = time.monotonic() - t
        if env.get("status") != "usable":
            return {"split": split, "env": env.get("status"), "tasks": 0,
                    "why": str(env.get("reason") or env.get("status_reason") or "")[:300],
                    "build_s": round(built, 1)}
        have = len(cli(["tasks", "ls", "--env", env["env_id"], "--json"], home) or [])
        if want - have > 0:
            cli(["tasks", "synth", env["env_id"], "--max", str(want - have), *SYNTH, "--json"],
                home)
        total = len(cli(["tasks", "ls", "--env", env["env_id"], "--json"], home) or [])
        return {"split": split, "env_id": env["env_id"], "env": "usable", "tasks": total,
                "build_s": round(built, 1), "synth_s": round(time.monotonic() - t - built, 1)}
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {"split": split, "error": str(exc)[-400:]}


def data(home: Path, results: Path, have: dict, args: argparse.Namespace) -> None:
    todo = [(p, "held-out", args.held_out_tasks) for p in HELD_OUT] + \
           [(p, "train", args.train_tasks) for p in TRAIN]
    todo = [x for x in todo if f"data:{x[0]}" not in have
            and args.split in ("all", x[1])]

    def one(item: tuple[str, str, int]) -> None:
        project, split, want = item
        log(f"data: {project} ({split}, up to {want} tasks)")
        t = time.monotonic()
        row = {"stage": f"data:{project}", **project_data(home, project, split, want),
               "seconds": round(time.monotonic() - t, 1)}
        record(results, row)
        log(f"data: {project}: {json.dumps(row)[:300]}")

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, todo))


# --- the split ------------------------------------------------------------------------


def split_tasks(home: Path) -> tuple[list, list]:
    """(train tasks, held-out tasks) of the home, split by project."""
    train, held, _ = split_by_project(home, TRAIN, HELD_OUT)
    return train, held


# --- evals -------------------------------------------------------------------------------

SUITE = "learn-held-out"
RUNS = {
    "patch": {"version": "patch-128", "limit": None,
              "run": {"mode": "patch", "k": 1, "max_turns": 1, "max_tokens": 128}},
    "agent": {"version": "agent-40x256-obs1500", "limit": 40,
              "run": {"mode": "agent", "k": 1, "max_turns": 6, "max_tokens": 256,
                      "observation_limit": 1500}},
    "patch1": {"version": "patch-128-f1", "limit": None,
               "run": {"mode": "patch", "k": 1, "max_turns": 1, "max_tokens": 128,
                       "listing_functions": 1}},
}
"""One greedy attempt per task. Patch mode: every held-out task; agent mode: 40 of them
(seeded, stratified by project), each tool output cut to 1,500 characters as in the agent
data the models are trained on (``agent-40x256``, at the agent's default of 10,000, spent
~5.3k prompt tokens an attempt and measured the trained models off their distribution);
``patch1``: patch mode with a listing of the most suspicious function only
(``bench_localization.py`` measures how often it holds the fix), trained and evaluated as
its own arm (``sft1``)."""


def evaluate(home: Path, model: str, mode: str, version: str | None = None,
             task_ids: tuple[str, ...] = (), seed: int = 0) -> dict:
    """``model`` on the held-out suite of ``mode`` through the factory's evals (a cached
    asset: a rerun reuses recorded attempts). Keeps each task's outcome for pairing.
    ``version``, ``task_ids`` and ``seed`` name another suite (``retime``)."""
    os.environ["CODEMILL_HOME"] = str(home)
    from codemill.core.config import load_settings
    from codemill.evals.suites import SuiteRunConfig, SuiteSelection
    from codemill.factory import eval_api

    settings = load_settings()
    spec = RUNS[mode]
    run = SuiteRunConfig(temperature=0.0, seed=seed, wall_time_s=900, **spec["run"])
    names = tuple(p.split("==")[0] for p in HELD_OUT)
    version = version or spec["version"]
    selection = (SuiteSelection(task_ids=task_ids) if task_ids
                 else SuiteSelection(projects=names, limit=spec["limit"]))
    suite = eval_api.define_suite(settings, SUITE, version, selection, run)
    t = time.monotonic()
    res = eval_api.evaluate(settings, f"{SUITE}@{version}", model,
                            progress=lambda a, d, n: log(f"eval {model[:17]} {mode} {a}: {d}/{n}"))
    p = res.score.pass1
    outcomes = {s["task_id"]: (None if s["masked"] else int(bool(s["resolved"])))
                for s in res.samples}
    return {"model": model, "mode": mode, "eval_id": res.eval_id,
            "suite": f"{SUITE}@{version}", "tasks": len(suite.tasks),
            "projects": sorted({t.project for t in suite.tasks}), "graded": res.score.graded,
            "resolved": p.successes, "rate": p.value, "low": p.low, "high": p.high,
            "masked": res.score.masked, "stops": res.score.stop_reasons,
            "eval_s": round(time.monotonic() - t, 1), "outcomes": outcomes}


def gold(home: Path, split: str) -> dict:
    """The gold patch of every task of ``split`` (``held-out`` or ``train``) through
    ``codemill grade --predictions``, as a user grades a SWE-bench predictions file: how
    many an honest fix can win under today's grader (the suite's ceiling for every model),
    by project, and the ids of the rest with their reasons (each one is a grading defect
    or a task that should not be in the suite)."""
    names = HELD_OUT if split == "held-out" else TRAIN
    wanted = {canonical(name): name for name in names}
    tasks = [(wanted[p], t) for p, t in tasks_with_projects(home)[0] if p in wanted]
    project = {t.task_id: name for name, t in tasks}
    preds = OUT / f"gold-{split}.jsonl"
    with preds.open("w") as fh:
        for _, t in tasks:
            fh.write(json.dumps({"instance_id": t.task_id, "model_name_or_path": "gold",
                                 "model_patch": t.gold_patch}) + "\n")
    t0 = time.monotonic()
    out = cli(["grade", "--predictions", str(preds), "--json"], home, timeout=6 * 3600)
    rows = out["predictions"]
    per: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = per.setdefault(project[r["task_id"]], {"tasks": 0, "rewarded": 0,
                                                        "zero": 0, "masked": 0})
        counts["tasks"] += 1
        counts["rewarded" if r["reward"] == 1.0 else "masked" if r["reward"] is None
               else "zero"] += 1
    return {"split": split, "tasks": len(rows),
            "rewarded": sum(r["reward"] == 1.0 for r in rows), "projects": per,
            "not_rewarded": [{k: r[k] for k in ("task_id", "reward", "error_type", "flags")}
                             for r in rows if r["reward"] != 1.0],
            "grade_s": round(time.monotonic() - t0, 1)}


def retime(home: Path, recorded: dict, mode: str) -> dict:
    """The recorded eval ``recorded`` (base model) run again from nothing: the same tasks
    and budgets as a suite named after this commit, with a sampling seed taken from the
    commit too. Greedy decoding ignores the seed, but attempts are identified by it, so
    the factory runs every attempt afresh (recorded as an eval of its own) instead of
    reading the recorded ones. Gives an eval's wall time with today's sampler; the greedy
    outcomes should be the recorded ones, and how many match is reported beside it."""
    from codemill.rollouts.runner import IN_FLIGHT
    from record import head_commit

    commit = head_commit()[:10]
    version = f"{RUNS[mode]['version']}-retime-{commit}"
    row = evaluate(home, recorded["model"], mode, version=version,
                   task_ids=tuple(sorted(recorded["outcomes"])), seed=int(commit[:7], 16))
    same = sum(row["outcomes"].get(t) == o for t, o in recorded["outcomes"].items())
    return {**row, "retimes": recorded["eval_id"], "recorded_eval_s": recorded["eval_s"],
            "same_outcomes": same, "in_flight": IN_FLIGHT}


# --- training ----------------------------------------------------------------------------

SFT = ["--steps", "160", "--batch", "8", "--lr", "1e-3", "--lora", "--lora-mlp",
       "--lora-layers", "8", "--max-len", "2048", "--save-every", "5", "--precision", "bf16",
       "--reversals", "1600"]
"""LoRA on attention and MLP of the last 8 layers at a LoRA learning rate, under bf16
autocast (the demo's recipe: the backward pass stops at the lowest adapted layer, and bf16
about doubles the step rate here). The data: the expert answers of the training tasks and
about 1600 mutation reversals of the same projects' released code (``codemill.tasks.
reversal``); 160 steps of 8 is about three quarters of one pass."""
SFT2 = ("--seed", "1")
"""``sft2``: the SFT recipe again from the SFT checkpoint (its adapter trained further),
seed 1: the same expert answers and about 1,600 other mutation reversals of the training
projects (the reversals are drawn by the seed), in another order. Whether more steps on
more of the same kind of data still lift the held-out rate."""
GRPO = ["--rounds", "8", "--tasks-per-round", "4", "--group", "8", "--max-draws", "3",
        "--updates", "2", "--lr", "5e-5", "--max-tokens", "128", "--max-turns", "1",
        "--max-len", "2048"]
"""G = 8, four groups with a signal a round (dynamic sampling draws up to 12), two
updates a round so the clip acts; the sampler and trainer are both fp32 (TIS on)."""
GRPO3 = ("--seed", "1")
"""``grpo3``: the GRPO recipe again from the ``grpo2`` checkpoint, 8 more rounds under
seed 1 (other draws), so the policy has had 16 rounds in all: whether the training reward
that was still rising at round 8 carries over to the held-out projects."""


GRPO16 = ("--seed", "1")
"""``grpo16``: the GRPO recipe again from the ``grpo`` checkpoint, 8 more rounds under seed 1
(16 rounds from sft in all), in one process: whether the training reward still rising at
round 8 carries over to the held-out projects."""
GRPOF = ("--format-reward", "-0.5", "--task-order", "untried_first", "--rounds", "6")
"""``grpof``: the GRPO recipe from the ``sft`` checkpoint for 6 rounds (each round builds
the patch contexts of the never-tried tasks it draws, so a round is slower than grpo's),
with an unusable answer worth -0.5 in its group's advantages (the recorded reward stays 0)
and never-tried tasks drawn first.
The SFT model's most frequent held-out failure is copying the line it picked unchanged
(the report's "answers that could not be used"), and grpo's live groups came from a few
training tasks: a group that mixes usable and unusable answers carries a signal on any
task, so the update reaches many tasks."""
GRPOF2 = (*GRPOF, "--lr", "2e-4", "--updates", "4")
"""``grpof2``: ``grpof`` with a larger step (learning rate 2e-4 instead of 5e-5, four
updates a round instead of two). grpof's wide signal left every greedy held-out answer as
sft wrote it, with small gradients and no token clipped: whether the update, not the
signal, was what held it back."""

ARMS = {"sft": ("base", None), "grpo": ("sft", "GRPO"), "sft2": ("sft", None),
        "grpo2": ("sft2", "GRPO from sft2"), "grpo3": ("grpo2", "GRPO from grpo2"),
        "grpo16": ("grpo", "GRPO from grpo"), "sft1": ("base", None),
        "grpof": ("sft", "GRPO with the format reward, from sft"),
        "grpof2": ("sft", "GRPO with the format reward and a larger step, from sft")}
"""Each trained model: (its parent, the title of its GRPO curve or None for SFT). The report
pairs each with the base and with its parent."""


def train(home: Path, kind: str, model: str, listing_functions: int | None = None,
          prepare: Path | None = None, extra: tuple[str, ...] = ()) -> dict:
    """The ``sft`` / ``grpo`` stage through the CLI. ``prepare``: only ``train sft
    --prepare`` into that folder (for ``python -m codemill.train.remote`` on a GPU machine;
    copied back into the home's checkpoints, the stage then records it without training)."""
    train_tasks, _ = split_tasks(home)
    args = ["train", kind, "--model", model, "--mode", "patch", "--threads", "2",
            *(SFT if kind == "sft" else GRPO), *extra, "--json"]
    if prepare is not None:
        args += ["--prepare", str(prepare)]
    if listing_functions is not None:
        args += ["--listing-functions", str(listing_functions)]
    if kind == "sft":
        args += ["--data", "expert"]
    for t in train_tasks:
        args += ["--task", t.task_id]
    out = cli(args, home, timeout=8 * 3600)
    assert isinstance(out, dict)
    return {**out, "train_tasks": len(train_tasks)}


# --- report ------------------------------------------------------------------------------


def paired(a: dict, b: dict) -> dict:
    """B against A on the tasks both graded: discordant counts and the exact McNemar p."""
    from codemill.evals.stats import mcnemar_exact

    both = [(a["outcomes"][t], b["outcomes"][t]) for t in a["outcomes"]
            if a["outcomes"][t] is not None and b["outcomes"].get(t) is not None]
    only_a = sum(1 for x, y in both if x and not y)
    only_b = sum(1 for x, y in both if y and not x)
    diff = (sum(y for _, y in both) - sum(x for x, _ in both)) / len(both) if both else None
    return {"pairs": len(both), "only_a": only_a, "only_b": only_b, "diff": diff,
            "p": mcnemar_exact(only_a, only_b)}


def curve(metrics: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [m for m in metrics if m.get("reward_mean") is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([m["step"] for m in rounds], [m["reward_mean"] for m in rounds], marker="o",
            label="mean reward of the drawn groups")
    ax.plot([m["step"] for m in rounds],
            [m["live_groups"] / max(1, m["drawn_groups"]) for m in rounds], marker="s",
            label="live share of drawn groups")
    ax.set_xlabel("GRPO round")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("SmolLM2-135M, patch mode, GRPO on training projects")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def grpo_rounds(metrics: list[dict], name: str = "GRPO") -> list[dict]:
    """The GRPO curve as figures: one a round (mean reward of the drawn groups, groups drawn,
    alive and kept, the update's size and importance ratios, the unusable answers where the
    run logged them), then the totals. A batch slot
    is alive after dynamic sampling when a group with a signal filled it. ``name`` heads
    each figure (one GRPO run's from another's)."""
    from record import figure

    figs, rounds = [], [m for m in metrics if m.get("drawn_groups")]
    per_round = int(GRPO[GRPO.index("--tasks-per-round") + 1])
    for n, m in enumerate(rounds):
        kept = min(m["live_groups"], per_round)
        figs.append(figure(f"{name} round {n}: mean reward of the drawn groups",
                           round(m["reward_mean"] or 0, 4), drawn=m["drawn_groups"],
                           alive=m["live_groups"], batch_alive=f"{kept} of {per_round}",
                           sequences=m.get("sequences"), updates=m.get("updates"),
                           grad_norm=_rounded(m.get("grad_norm")),
                           clip_frac=_rounded(m.get("clip_frac")),
                           is_ratio_max=_rounded(m.get("is_ratio_max")),
                           round_s=round(m.get("round_seconds") or 0),
                           **{k: m[k] for k in ("format_errors", "resident_gb",
                                                "peak_resident_gb") if k in m}))
    if rounds:
        kept = sum(min(m["live_groups"], per_round) for m in rounds)
        figs.append(figure(f"{name} batch groups alive after dynamic sampling",
                           f"{kept} of {per_round * len(rounds)}", rounds=len(rounds)))
        figs.append(figure(f"{name} drawn groups alive (before dynamic sampling)",
                           f"{sum(m['live_groups'] for m in rounds)} of "
                           f"{sum(m['drawn_groups'] for m in rounds)}"))
        # Whether the signal came from many tasks or the same few every round: a round
        # draws the tasks known to be in range first (codemill.train.grpo.choose_tasks).
        alive = Counter(t[:12] for m in rounds
                        for t, (passes, n) in m.get("task_results", {}).items() if 0 < passes < n)
        drawn = {t for m in rounds for t in m.get("task_results", {})}
        # Counted by test rewards (a pass and a fail in the group): a run with a format
        # reward has more groups alive than this, on tasks none of its samples solved.
        figs.append(figure(f"{name} tasks behind the alive groups",
                           f"{len(alive)} of {len(drawn)} drawn",
                           alive_by="a passing and a failing sample (test rewards)",
                           alive_groups_by_task=dict(alive.most_common())))
    return figs


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def trajectories(home: Path, row: dict, model: str, resolved: int = 3,
                 failed: int = 1) -> list[dict[str, str]]:
    """Examples behind an eval's pass@1, read from the ledger: the first ``resolved``
    resolved held-out tasks, then the first ``failed`` answers that edited the fix's line
    wrongly and as many that changed nothing (by task id), each with the prompt's marked
    lines, the model's answer and the diff the grader applied."""
    from codemill.evals.locate import where_edited

    rows = eval_answers(home, row["eval_id"])
    verdicts = {"fix line": "not resolved: a wrong edit of the fix's line",
                "no edit": "not resolved: the answer changed nothing"}
    picked = [(r, "resolved") for r in rows if r["resolved"]][:resolved]
    answered = [(r, where_edited(r["diff"], r["gold_patch"])) for r in rows
                if not r["resolved"] and r["content"].strip()]
    for place in verdicts:  # a wrong fix at the right place; an answer that changed nothing
        picked += [(r, verdicts[place]) for r, at in answered if at == place][:failed]
    out = []
    for r, verdict in picked:
        _, marks, rest = r["task_prompt"].partition("Most suspicious lines:")
        marked = rest.split("\n\n")[0] if marks else " (the prompt marks none)"
        text = (f"Most suspicious lines (from the prompt):{marked}\n\n"
                f"Answer:\n{r['content'].strip()}\n\nDiff graded:\n{r['diff'] or '(none)'}")
        if not r["resolved"]:
            text += f"\nThe task's fix (never shown to the model):\n{r['gold_patch']}"
        out.append({"title": f"{model}, {r['project']}, task {r['task_id'][:12]}: {verdict}",
                    "text": text})
    return out


def eval_answers(home: Path, eval_id: str) -> list[dict]:
    """Each attempt of an eval, by task id: its project, verdict, prompt, first answer
    (empty when the model never answered), diff and the task's gold patch."""
    return ledger_rows(
        home, "select s.task_id, s.project, s.resolved, r.task_prompt, r.diff, "
        "coalesce(st.content, '') as content, t.gold_patch from eval_samples s "
        "join rollouts r on r.rollout_id = s.rollout_id "
        "left join steps st on st.rollout_id = s.rollout_id and st.step_index = 0 "
        "join tasks t on t.task_id = s.task_id "
        f"where s.eval_id = '{eval_id}' order by s.task_id")


def ledger_rows(home: Path, sql: str) -> list[dict]:
    """``sql`` over the ledger of ``home``, as dicts."""
    os.environ["CODEMILL_HOME"] = str(home)
    from codemill.core.config import load_settings
    from codemill.store.reader import LedgerReader

    with LedgerReader.open(load_settings()) as ledger:
        return ledger.query(sql).to_pylist()


def edit_places(home: Path, eval_id: str) -> dict[str, int]:
    """Where the eval's answers edited against each task's gold fix (``evals.locate``):
    tells a wrong place from a wrong fix at the right place. Read after grading."""
    from codemill.evals.locate import tally

    return tally((r["diff"], r["gold_patch"]) for r in eval_answers(home, eval_id))


def unusable(home: Path, eval_id: str) -> dict[str, int]:
    """Why the eval's answers could not be used, as the rollouts recorded it (numbers in a
    reason become ``N``), most frequent first: tells an untrained format from a trained
    model that declines to change the line it picked (``the edit changes nothing``)."""
    import re

    rows = ledger_rows(
        home, "select r.error from eval_samples s join rollouts r on r.rollout_id = "
        f"s.rollout_id where s.eval_id = '{eval_id}' and r.error is not null")
    counts: dict[str, int] = {}
    for r in rows:
        reason = re.sub(r"\d+", "N", r["error"].removeprefix("malformed answer: "))
        counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def by_operator(home: Path, eval_id: str) -> dict[str, tuple[int, int]]:
    """(resolved, graded) per the held-out task's mutation operator (a synthesized task's
    ``operator`` metadata; ``composite`` for several): tells the kinds of bug a model fixes
    from the kinds it cannot (a statement replaced by ``pass`` asks it to write the deleted
    code, a flipped condition to remove one token), most frequent first."""
    rows = ledger_rows(
        home, "select s.resolved, s.masked, json_extract_string(t.metadata, '$.operator') "
        "as operator from eval_samples s join tasks t on t.task_id = s.task_id "
        f"where s.eval_id = '{eval_id}'")
    counts: dict[str, tuple[int, int]] = {}
    for r in rows:
        if not r["masked"]:
            op = r["operator"] or "unknown"
            solved, graded = counts.get(op, (0, 0))
            counts[op] = (solved + bool(r["resolved"]), graded + 1)
    return dict(sorted(counts.items(), key=lambda kv: -kv[1][1]))


def grpo_task_pool(home: Path, train_ids: set[str]) -> dict[str, int]:
    """How many training tasks any GRPO run of the home sampled, and on how many any
    sample was rewarded 1 (under today's grading rules): the pool GRPO can learn from at
    all, since a task no sample solves gives only dead groups."""
    from codemill.rewards.config import HARNESS_VERSION

    rows = ledger_rows(
        home, "select task_id, max(case when value >= 1 then 1 else 0 end) as solved "
        "from rewards where policy like 'grpo:%' and not masked "
        f"and harness_version = '{HARNESS_VERSION}' group by task_id")
    rows = [r for r in rows if r["task_id"] in train_ids]
    return {"sampled": len(rows), "solved": sum(r["solved"] for r in rows),
            "train_tasks": len(train_ids)}


def last_result() -> dict:
    """The last result file (``bench/results/learn.json``), or {} when there is none."""
    path = ROOT / "bench" / "results" / "learn.json"
    return json.loads(path.read_text()) if path.exists() else {}


def recorded(old: dict) -> str:
    """``COMMIT DATE`` of a result file: where a carried figure was measured."""
    return f"{old.get('commit', '')[:10]} {old.get('date', '')}"


def carried_over(figs: list[dict], old: dict) -> list[dict]:
    """Figures of the last result file ``old`` that no stage recorded here produced again
    (a home on a new machine holds only the stages run there), each marked with the commit
    and date it was measured at, so one stage's rerun does not erase the others' results."""
    fresh = {f["what"] for f in figs}
    kept = []
    for f in old.get("figures", []):
        if f["what"] in fresh:
            continue
        detail = dict(f.get("detail") or {})
        detail.setdefault("recorded", recorded(old))
        kept.append({**f, "detail": detail})
    return kept


def carried_examples(old: dict) -> list[dict] | None:
    """The example trajectories of the last result file ``old``, each title marked with
    the commit and date they were read at, when no eval of this home has examples yet."""
    mark = f"recorded {recorded(old)}"
    return [{**e, "title": e["title"] if "recorded" in e["title"]
             else f"{e['title']} ({mark})"} for e in old.get("examples") or []] or None


def report(have: dict, home: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from record import figure, write_result

    figs = []
    for mode in ("patch", "agent", "patch1"):
        for model in ("base", *ARMS):
            row = have.get(f"eval:{model}:{mode}")
            if row is None:
                continue
            figs.append(figure(f"{mode} mode: {model} resolves (pass@1)",
                               f"{row['resolved']} of {row['graded']}",
                               rate=round(row["rate"] or 0, 4),
                               wilson95=[round(row["low"], 4), round(row["high"], 4)],
                               masked=row["masked"], projects=len(row["projects"]),
                               eval_s=row["eval_s"], stops=row.get("stops"),
                               **{k: row[k] for k in ("commit", "harness") if k in row}))
            places = edit_places(home, row["eval_id"])
            figs.append(figure(f"{mode} mode: {model} answers edited the fix's line",
                               f"{places['fix line']} of {row['graded']}", **places))
            if mode == "agent":
                continue  # an agent's unusable turns get feedback; its stops say the rest
            reasons = unusable(home, row["eval_id"])
            figs.append(figure(f"{mode} mode: {model} answers that could not be used",
                               f"{sum(reasons.values())} of {row['graded']}",
                               reasons=reasons))
            ops = by_operator(home, row["eval_id"])
            figs.append(figure(f"{mode} mode: {model} resolves by the bug's operator",
                               f"{sum(solved > 0 for solved, _ in ops.values())} of "
                               f"{len(ops)} operators",
                               **{op: f"{s} of {n}" for op, (s, n) in ops.items()}))
        pairs = [("base", arm) for arm in ARMS] + [
            (parent, arm) for arm, (parent, _) in ARMS.items() if parent != "base"]
        for a, b in pairs:
            ra, rb = have.get(f"eval:{a}:{mode}"), have.get(f"eval:{b}:{mode}")
            if ra and rb:
                pr = paired(ra, rb)
                figs.append(figure(f"{mode} mode: {b} minus {a} (paired)",
                                   round(pr["diff"] or 0, 4), "pass@1",
                                   mcnemar_p=round(pr["p"], 4), pairs=pr["pairs"],
                                   only_a=pr["only_a"], only_b=pr["only_b"]))
    for split in ("held-out", "train"):
        row = have.get(f"gold:{split}")
        if row is not None:
            figs.append(figure(f"{split} gold patches the grader rewards",
                               f"{row['rewarded']} of {row['tasks']}",
                               projects=row["projects"], not_rewarded=row["not_rewarded"],
                               grade_s=row["grade_s"],
                               **{k: row[k] for k in ("commit", "harness") if k in row}))
    if "time:base:agent" in have:
        row = have["time:base:agent"]
        figs.append(figure("agent mode: the base model's 40-task eval run again, wall time",
                           row["eval_s"], "s", tasks=row["tasks"], in_flight=row["in_flight"],
                           recorded_eval_s=row["recorded_eval_s"],
                           resolved=f"{row['resolved']} of {row['graded']}",
                           same_outcomes_as_recorded=row["same_outcomes"]))
    for arm, (_, title) in ARMS.items():
        if title is not None and arm in have:
            figs += grpo_rounds(have[arm].get("metrics", []), title)
    if "grpo" in have:
        curve(have["grpo"].get("metrics", []), OUT / "learn_curve.png")
        pool = grpo_task_pool(home, {t.task_id for t in split_tasks(home)[0]})
        figs.append(figure("training tasks any GRPO sample solved",
                           f"{pool['solved']} of {pool['sampled']} sampled", **pool))
    # counted from the ledger (what training and the evals use): a data stage that stopped
    # with an error may still have recorded tasks
    data_rows = [r for k, r in have.items() if k.startswith("data:")]
    train_tasks, held_tasks, envs = split_by_project(home, TRAIN, HELD_OUT)
    for split, tasks in (("train", train_tasks), ("held-out", held_tasks)):
        rows = [r for r in data_rows if r.get("split") == split]
        if not rows:
            continue
        figs.append(figure(f"{split} projects with tasks",
                           len({envs[t.env_id].snapshot_id for t in tasks}), "projects",
                           tasks=len(tasks),
                           stage_errors=[r["stage"][5:] for r in rows if r.get("error")]))
    old = last_result()
    figs += carried_over(figs, old)
    shown = [m for m in ("grpo16", "grpo3", "grpo2", "sft2", "grpo", "sft")
             if f"eval:{m}:patch" in have]
    write_result("learn", "Learning on held-out projects (SmolLM2-135M, 2 CPU cores)", figs,
                 measures="Base, SFT and SFT+GRPO SmolLM2-135M on every task of projects "
                 "never trained on (patch mode) and on 40 of them (agent mode): one greedy "
                 "attempt each, graded by the real grader; paired exact McNemar tests. "
                 "The examples below are read from the ledger: held-out patch-mode answers "
                 "of the latest trained model, resolved and not.",
                 examples=trajectories(home, have[f"eval:{shown[0]}:patch"], shown[0])
                 if shown else carried_examples(old))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=OUT / "learn_home")
    ap.add_argument("--results", type=Path, default=OUT / "learn.jsonl")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--until", help="Stop after this stage (data, eval:base:patch, sft, ...).")
    ap.add_argument("--stage", help="Run this one stage alone (its inputs must be recorded; "
                    "e.g. eval:base:patch while the training projects are still prepared).")
    ap.add_argument("--jobs", type=int, default=2, help="Projects prepared at once.")
    ap.add_argument("--split", choices=("all", "held-out", "train"), default="all",
                    help="Prepare only these projects' data (the agent-mode eval of the "
                    "base model needs only the held-out ones).")
    ap.add_argument("--prepare-sft", type=Path, metavar="DIR",
                    help="Make the sft stage's data and write it into DIR for a GPU "
                    "machine (codemill.train.remote), instead of training here.")
    ap.add_argument("--train-tasks", type=int, default=10)
    ap.add_argument("--held-out-tasks", type=int, default=30)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    args.home.mkdir(parents=True, exist_ok=True)
    have = done_stages(args.results)
    if args.report:
        for name, row in have.items():
            print(name, json.dumps({k: v for k, v in row.items() if k != "outcomes"})[:600])
        report(have, args.home)  # the result file, from every stage recorded so far
        return
    if not args.stage:
        data(args.home, args.results, have, args)
    if args.until == "data":
        return
    if args.prepare_sft:
        print(json.dumps(train(args.home, "sft", "smollm2", prepare=args.prepare_sft)))
        return
    import torch

    torch.set_num_threads(2)
    home = args.home
    ckpt = {k: (lambda k=k: f"ckpt:{have[k]['checkpoint_id']}") for k in ARMS}
    stages = {
        "eval:base:patch": lambda: evaluate(home, "smollm2", "patch"),
        "sft": lambda: train(home, "sft", "smollm2"),
        "eval:sft:patch": lambda: evaluate(home, ckpt["sft"](), "patch"),
        "grpo": lambda: train(home, "grpo", ckpt["sft"]()),
        "eval:grpo:patch": lambda: evaluate(home, ckpt["grpo"](), "patch"),
        "eval:base:agent": lambda: evaluate(home, "smollm2", "agent"),
        "eval:sft:agent": lambda: evaluate(home, ckpt["sft"](), "agent"),
        "eval:grpo:agent": lambda: evaluate(home, ckpt["grpo"](), "agent"),
        "time:base:agent": lambda: retime(home, have["eval:base:agent"], "agent"),
        "eval:base:patch1": lambda: evaluate(home, "smollm2", "patch1"),
        "sft2": lambda: train(home, "sft", ckpt["sft"](), extra=SFT2),
        "eval:sft2:patch": lambda: evaluate(home, ckpt["sft2"](), "patch"),
        "grpo2": lambda: train(home, "grpo", ckpt["sft2"]()),
        "eval:grpo2:patch": lambda: evaluate(home, ckpt["grpo2"](), "patch"),
        "grpo3": lambda: train(home, "grpo", ckpt["grpo2"](), extra=GRPO3),
        "eval:grpo3:patch": lambda: evaluate(home, ckpt["grpo3"](), "patch"),
        "grpo16": lambda: train(home, "grpo", ckpt["grpo"](), extra=GRPO16),
        "eval:grpo16:patch": lambda: evaluate(home, ckpt["grpo16"](), "patch"),
        "grpof": lambda: train(home, "grpo", ckpt["sft"](), extra=GRPOF),
        "eval:grpof:patch": lambda: evaluate(home, ckpt["grpof"](), "patch"),
        "grpof2": lambda: train(home, "grpo", ckpt["sft"](), extra=GRPOF2),
        "eval:grpof2:patch": lambda: evaluate(home, ckpt["grpof2"](), "patch"),
        "gold:held-out": lambda: gold(home, "held-out"),
        "gold:train": lambda: gold(home, "train"),
        "sft1": lambda: train(home, "sft", "smollm2", listing_functions=1),
        "eval:sft1:patch1": lambda: evaluate(home, ckpt["sft1"](), "patch1"),
    }
    if args.stage:
        run_stage(args.results, have, args.stage, stages[args.stage])
        report(have, home)
        return
    for name, fn in stages.items():
        if name not in have and not name.startswith("time:"):
            run_stage(args.results, have, name, fn)
        report(have, home)
        if name == args.until:
            return


if __name__ == "__main__":
    main()
