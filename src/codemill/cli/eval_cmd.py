"""``codemill eval``: suites, evals of any model spec, paired comparisons, judges.

    codemill eval suite held-out --project toolz --project semver --k 1 --limit 40
    codemill eval run held-out --model smollm2
    codemill eval compare scripted:look-then-submit smollm2 --suite held-out
    codemill eval judge held-out --model smollm2 --judge heuristic
    codemill eval checkpoints --suite held-out
    codemill eval vibes ENV --model scripted:look-then-submit --model smollm2

Parses and prints; the factory (``codemill.factory.eval_api``) runs and records.
"""

from __future__ import annotations

from typing import Literal

import typer
from rich.table import Table

from codemill.cli.app import State, console, err_console, handle_errors, print_json

app = typer.Typer(help="Evaluate models and checkpoints on held-out suites.",
                  no_args_is_help=True)


def _progress(status):  # type: ignore[no-untyped-def]
    def update(asset: str, done: int, total: int | None) -> None:
        status.update(f"[bold]{asset}[/] {done}/{total or '?'}")
    return update


@app.command("suite")
def suite_cmd(
    name: str = typer.Argument(..., help="Suite name."),
    version: str = typer.Option("1", "--version", help="Suite version (immutable)."),
    project: list[str] = typer.Option([], "--project", "-p", help="Project names."),
    kind: list[str] = typer.Option([], "--kind", help="synth | feature | mined | imported."),
    difficulty: list[str] = typer.Option([], "--difficulty", help="easy | medium | hard."),
    strong_only: bool = typer.Option(False, "--strong-only", help="Only strong tests."),
    env: list[str] = typer.Option([], "--env", help="Environment id prefixes (your repo)."),
    limit: int | None = typer.Option(None, "--limit", help="Sample this many tasks."),
    sample_seed: int = typer.Option(0, "--sample-seed"),
    k: int = typer.Option(1, "--k", help="Attempts per task."),
    max_turns: int = typer.Option(6, "--max-turns"),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Tokens per model call."),
    temperature: float = typer.Option(0.0, "--temperature"),
    seed: int = typer.Option(0, "--seed", help="Attempt i samples with seed + i."),
    mode: Literal["agent", "patch"] = typer.Option(
        "agent", "--mode", help="How every variant runs on it: agent (multi-turn, tools) "
        "or patch (one answer: an edit of the code the failing tests run)."),
    answer_format: Literal["lines", "search_replace"] = typer.Option(
        "lines", "--answer-format", help="Patch mode: line edits (N: text) or "
        "search/replace blocks."),
    listing_functions: int = typer.Option(
        4, "--listing-functions", min=1, help="Patch mode: functions the listing shows at "
        "most, the most suspicious first."),
    observation_limit: int = typer.Option(
        10_000, "--observation-limit", min=200, help="Agent mode: characters of one tool "
        "output the agent is shown (match the policy's training data: 1500 for "
        "codemill train's)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Define a suite from recorded tasks (a repeat of the same definition is a no-op)."""
    with handle_errors():
        from codemill.evals.suites import SuiteRunConfig, SuiteSelection
        from codemill.factory.eval_api import define_suite

        sel = SuiteSelection(projects=tuple(project), kinds=tuple(kind),
                             difficulties=tuple(difficulty), strong_only=strong_only,
                             env_ids=tuple(env), limit=limit, sample_seed=sample_seed)
        run = SuiteRunConfig(k=k, max_turns=max_turns, max_tokens=max_tokens,
                             temperature=temperature, seed=seed, mode=mode,
                             answer_format=answer_format,
                             listing_functions=listing_functions,
                             observation_limit=observation_limit)
        suite = define_suite(State.settings(), name, version, sel, run)
        if as_json:
            print_json({**suite.row(), "tasks": [t.model_dump() for t in suite.tasks]})
            return
        by: dict[str, int] = {}
        for t in suite.tasks:
            by[t.project] = by.get(t.project, 0) + 1
        console.print(f"suite {suite.name}@{suite.version} ({suite.suite_id[:12]}): "
                      f"{len(suite.tasks)} tasks, k={suite.run.k}, {suite.run.mode} mode; "
                      + ", ".join(f"{p} {n}" for p, n in sorted(by.items())), highlight=False)


def score_table(title: str, results: list) -> Table:  # type: ignore[type-arg]
    """One row per eval: pass@1 and pass@k with intervals, masked, cost, stop reasons."""
    t = Table(title=title, title_justify="left")
    for col in ("variant", "pass@1 (95% CI)", "pass@k", "masked", "tokens/attempt",
                "model s/resolved", "stops"):
        t.add_column(col)
    for r in results:
        sc = r.score
        per = sc.cost.model_seconds_per_resolved
        t.add_row(r.variant[:40], str(sc.pass1), str(sc.pass_k[-1]) if sc.pass_k else "",
                  f"{sc.masked}/{sc.attempts}", f"{sc.cost.tokens:.0f}",
                  "-" if per is None else f"{per:.1f}",
                  ", ".join(f"{k} {v}" for k, v in sorted(sc.stop_reasons.items())))
    return t


@app.command("run")
def run_cmd(
    suite: str = typer.Argument(..., help="NAME, NAME@VERSION or suite id prefix."),
    model: str = typer.Option(..., "--model", "-m", help="Model spec, ckpt:ID or oracle."),
    allow_contaminated: bool = typer.Option(False, "--allow-contaminated",
                                            help="Run a contaminated pairing, marked."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Evaluate one variant on a suite (cached: nothing runs twice)."""
    with handle_errors():
        from codemill.factory.eval_api import evaluate

        with err_console.status(f"eval {model}") as status:
            res = evaluate(State.settings(), suite, model,
                           allow_contaminated=allow_contaminated, progress=_progress(status))
        if as_json:
            print_json({"eval_id": res.eval_id, "status": res.status,
                        "score": res.score.to_json(), "contamination": res.contamination})
            return
        console.print(score_table(f"{res.suite.name}@{res.suite.version} ({res.status})",
                                  [res]))
        if res.contamination.get("contaminated"):
            err_console.print(f"[bold yellow]marked:[/] {res.contamination['summary']}")


@app.command("compare")
def compare_cmd(
    a: str = typer.Argument(..., help="Variant A (model spec)."),
    b: str = typer.Argument(..., help="Variant B (model spec)."),
    suite: str = typer.Option(..., "--suite", "-s"),
    allow_contaminated: bool = typer.Option(False, "--allow-contaminated"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Both variants on the same tasks and seeds, paired: difference, McNemar, flips."""
    with handle_errors():
        from codemill.factory.eval_api import compare_variants

        with err_console.status("eval compare") as status:
            ea, eb, cmp = compare_variants(State.settings(), suite, a, b,
                                           allow_contaminated=allow_contaminated,
                                           progress=_progress(status))
        if as_json:
            print_json({"a": ea.score.to_json(), "b": eb.score.to_json(),
                        "comparison": cmp.to_json()})
            return
        console.print(score_table(f"{ea.suite.name}@{ea.suite.version}", [ea, eb]))
        diff = "n/a" if cmp.diff is None else (
            f"{cmp.diff:+.1%} [{cmp.diff_low:+.1%}, {cmp.diff_high:+.1%}]")
        console.print(f"B - A: {diff} over {cmp.pairs} paired attempts "
                      f"({cmp.dropped_masked} dropped as masked); A only {cmp.only_a}, "
                      f"B only {cmp.only_b}; McNemar p = {cmp.p_value:.3g}: {cmp.verdict}",
                      highlight=False)
        for f in cmp.flips:
            console.print(f"  flipped {f.task_id[:12]} ({f.project}): A {f.a_resolved}/"
                          f"{f.attempts}, B {f.b_resolved}/{f.attempts}", highlight=False)


@app.command("judge")
def judge_cmd(
    suite: str = typer.Argument(...),
    model: str = typer.Option(..., "--model", "-m", help="The evaluated variant."),
    judge: str = typer.Option("heuristic", "--judge", help="heuristic or a model spec."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Score an eval's attempts on the rubric; report agreement with execution."""
    with handle_errors():
        from codemill.factory.eval_api import evaluate, judge_eval

        res = evaluate(State.settings(), suite, model)
        rows, agree = judge_eval(State.settings(), res.eval_id, judge)
        if as_json:
            print_json(agree.to_json())
            return
        kappa = "n/a" if agree.kappa is None else f"{agree.kappa:.2f}"
        console.print(f"judge {judge} on {res.variant}: {len(rows)} judged, agreement with "
                      f"execution {agree.agree}, kappa {kappa}, unscored {agree.unscored}; "
                      f"{agree.confusion}", highlight=False)


@app.command("checkpoints")
def checkpoints_cmd(suite: str = typer.Option(..., "--suite", "-s")) -> None:
    """Evaluate every recorded checkpoint not evaluated on the suite yet."""
    with handle_errors():
        from codemill.factory.eval_api import evaluate_checkpoints

        out = evaluate_checkpoints(State.settings(), suite)
        if not out:
            console.print("no checkpoints recorded")
        for cid, res in out:
            what = res if isinstance(res, str) else f"{res.status}: pass@1 {res.score.pass1}"
            console.print(f"{cid[:12]} {what}", highlight=False)


@app.command("vibes")
def vibes_cmd(
    env: str = typer.Argument(..., help="Environment id prefix (e.g. your repo's)."),
    model: list[str] = typer.Option(..., "--model", "-m", help="Variants (repeatable)."),
    judge: str = typer.Option("heuristic", "--judge"),
    functions: int = typer.Option(2, "--functions", help="Functions to ask about."),
    seed: int = typer.Option(0, "--seed"),
    max_turns: int = typer.Option(6, "--max-turns"),
    max_tokens: int = typer.Option(256, "--max-tokens"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Realistic requests (explain, answer, add a test, refactor) answered side by side;
    executable checks in the sandbox, judge preferences otherwise."""
    with handle_errors():
        from codemill.factory.eval_api import vibe_check

        rows = vibe_check(State.settings(), env, list(model), judge=judge,
                          n_functions=functions, seed=seed, max_turns=max_turns,
                          max_tokens=max_tokens)
        if as_json:
            print_json(rows)
            return
        t = Table(title="vibe checks", title_justify="left")
        for col in ("request", "variant", "check", "passed", "judge prefers"):
            t.add_column(col)
        for r in sorted(rows, key=lambda r: (r["request_id"], r["variant"])):
            t.add_row(f"{r['kind']}: {r['request'][:50]}", r["variant"][:30], r["check"],
                      str(r["check_passed"]), r["preference"] or "")
        console.print(t)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="eval")
