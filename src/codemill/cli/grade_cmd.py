"""``codemill grade`` and ``codemill rollout``: honest rewards, and GRPO rollout groups.

    codemill grade TASK --patch FILE [--record] [--json]
    codemill grade --predictions preds.jsonl [--json]
    codemill rollout TASK... | all  --model SPEC --group G [--temperature T] [--top-p P]
                     [--seed S] [--max-turns N] [--agent codemill|mini-swe-agent] [--json]

``grade`` grades a diff for one task (TASK: a task id or a unique prefix) in a fresh
sandbox and prints the reward, its flags and each selected test's verdict; ``--record``
also writes the ``rewards`` row. ``--predictions`` grades a SWE-bench predictions file
(each ``instance_id`` a task's exported instance id, or an imported instance's own),
records every reward (policy: its ``model_name_or_path``) and prints SWE-bench's summary:
resolved, unresolved, masked (``error_ids``) and empty patches.

``rollout`` runs G samples of the model per task, each in its own fork of the task's
workspace, grades them, and writes their rows (``rollouts``, ``steps``, ``trajectories``,
``rewards``: ``codemill.store.rows.rollout_rows``) in batches as samples finish (the
executor from settings: local pool or Ray). A rerun skips every sample whose rollout id
is already in the ledger, so a crashed run resumes without duplicates. ``--agent
mini-swe-agent`` runs mini-swe-agent's own agent instead
(``codemill.factory.mini_swe_agent``), one episode after another; its episodes are new on
every run.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal

import typer

from codemill.cli.app import State, console, err_console, handle_errors, open_reader, print_json
from codemill.cli.checks import check_model
from codemill.core.errors import TaskError
from codemill.core.ids import bytes_id, short_id

_JSON = typer.Option(False, "--json", help="Print JSON instead of text.")


def _tasks(reader: Any, refs: list[str]) -> list[Any]:
    from codemill.factory.lookup import find_task, load_tasks

    tasks = load_tasks(reader)
    if refs == ["all"]:
        if not tasks:
            raise TaskError("no tasks in the ledger (codemill tasks synth/mine first)")
        return tasks
    return [find_task(reader, ref, tasks) for ref in refs]


def _envs(reader: Any, tasks: list[Any]) -> dict[str, Any]:
    from codemill.factory.lookup import find_env

    return {env_id: find_env(reader, env_id) for env_id in sorted({t.env_id for t in tasks})}


def _existing_rollouts(ledger: Any, policy: str) -> set[str]:
    if "rollouts" not in ledger.table_names():
        return set()
    rows = ledger.read("rollouts", columns=["rollout_id", "policy"]).to_pylist()
    return {r["rollout_id"] for r in rows if r["policy"] == policy}


def _reward_json(reward: Any) -> dict[str, Any]:
    return reward.model_dump(mode="json")


def grade_command(task_ref: str, patch: Path, record: bool, as_json: bool) -> None:
    from codemill.rewards.grader import grade_detailed

    settings = State.settings()
    diff = patch.read_text(encoding="utf-8", errors="replace")
    with open_reader() as reader:
        [task] = _tasks(reader, [task_ref])
        env = _envs(reader, [task])[task.env_id]
    rollout_id = f"patch-{bytes_id(diff.encode())[:16]}"
    err_console.print(f"grading {patch} for task {short_id(task.task_id)}", highlight=False)
    g = grade_detailed(task, diff, env=env, home=settings.home, settings=settings,
                       rollout_id=rollout_id, policy="patch")
    if record:
        from codemill.factory.record import recorded_run

        with recorded_run(settings, "grade", {"task": task.task_id,
                                              "patch": str(patch)}) as rec:
            rec.add(g.reward)
    if as_json:
        print_json({"reward": _reward_json(g.reward), "notes": g.notes,
                    "restored": g.restored,
                    "tests": [t.__dict__ for t in g.tests]})
        return
    r = g.reward
    value = "masked" if r.masked else f"{r.value:.1f}"
    color = "yellow" if r.masked else ("green" if r.value else "red")
    console.print(f"reward [{color}]{value}[/]  resolved {r.resolved}  F2P "
                  f"{r.f2p_passed}/{r.f2p_total}  P2P regressions {len(r.p2p_regressions)}  "
                  f"{r.grading_seconds:.1f}s", highlight=False)
    if r.error_type:
        console.print(f"error: {r.error_type}", highlight=False)
    if r.flags:
        console.print(f"flags: {', '.join(r.flags)}", highlight=False)
    for t in g.tests:
        mark = "ok " if t.ok else "BAD"
        flaky = " (flaky, masked)" if t.flaky else ""
        console.print(f"  {mark} {t.kind} {t.outcome:8} {t.node_id}{flaky}", highlight=False,
                      markup=False)
    for note in g.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)


def predictions_command(path: Path, as_json: bool) -> None:
    """Grade every prediction of a SWE-bench predictions file and record each reward. The
    whole file is read and every instance resolved to a task before anything is graded,
    so a bad file is one error and no rows. Predictions are graded on the settings'
    executor workers (threads around sandboxes; every core by default), recorded and
    printed in file order."""
    from concurrent.futures import ThreadPoolExecutor

    from codemill.core.ids import content_id
    from codemill.factory.executor_base import available_cpus
    from codemill.factory.lookup import find_task, load_tasks
    from codemill.factory.record import recorded_run
    from codemill.rewards.grader import grade
    from codemill.tasks.swebench import read_predictions

    settings = State.settings()
    preds = read_predictions(path)
    with open_reader() as reader:
        pool = load_tasks(reader)
        tasks = [find_task(reader, p["instance_id"], pool) for p in preds]
        envs = _envs(reader, tasks)
    err_console.print(f"grading {len(preds)} predictions from {path}", highlight=False)
    results: list[dict[str, Any]] = []
    with recorded_run(settings, "grade predictions", {"predictions": str(path),
                                                       "n": len(preds)}) as rec:
        def graded(pair: tuple[dict[str, Any], Any]) -> Any:
            pred, task = pair
            model, diff = pred["model_name_or_path"], pred["model_patch"]
            rollout_id = "pred-" + content_id("prediction", task.task_id, model, diff)[:16]
            return grade(task, diff, env=envs[task.env_id], home=settings.home,
                         settings=settings, rollout_id=rollout_id, policy=model)

        pairs = list(zip(preds, tasks, strict=True))
        workers = settings.executor.workers or available_cpus()
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="grade") as graders:
            rewards = graders.map(graded, pairs)  # grade() ends in a reward, never raises
            for (pred, task), reward in zip(pairs, rewards, strict=True):
                model, diff = pred["model_name_or_path"], pred["model_patch"]
                rec.add(reward)
                results.append({"instance_id": pred["instance_id"], "task_id": task.task_id,
                                "model_name_or_path": model, "empty_patch": not diff.strip(),
                                "reward": reward.value, "resolved": reward.resolved,
                                "error_type": reward.error_type, "flags": list(reward.flags)})
                if not as_json:
                    value = "masked" if reward.masked else f"{reward.value:.0f}"
                    err_console.print(f"  {pred['instance_id']}  reward {value}",
                                      highlight=False)
        summary = _predictions_summary(results)
        rec.summary.update({k: v for k, v in summary.items() if k != "predictions"})
    if as_json:
        print_json(summary)
        return
    console.print(f"predictions {summary['total']}  resolved {len(summary['resolved_ids'])}"
                  f"  unresolved {len(summary['unresolved_ids'])}  masked "
                  f"{len(summary['error_ids'])}  empty patches "
                  f"{len(summary['empty_patch_ids'])}", highlight=False)


def _predictions_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """SWE-bench's report keys (``resolved_ids``, ``unresolved_ids``, ``error_ids`` for
    masked rewards, ``empty_patch_ids``) over the graded predictions."""
    def ids(keep: Any) -> list[str]:
        return [r["instance_id"] for r in results if keep(r)]

    return {"total": len(results),
            "resolved_ids": ids(lambda r: r["resolved"] is True),
            "unresolved_ids": ids(lambda r: r["resolved"] is False),
            "error_ids": ids(lambda r: r["reward"] is None),
            "empty_patch_ids": ids(lambda r: r["empty_patch"]),
            "predictions": results}


def rollout_command(task_refs: list[str], model: str, group: int, temperature: float,
                    top_p: float, seed: int | None, max_turns: int, as_json: bool,
                    mode: str = "agent") -> None:
    from codemill.agent.config import AgentConfig
    from codemill.core.records import SamplingConfig
    from codemill.factory.executors import make_executor
    from codemill.factory.record import recorded_run
    from codemill.rollouts.plan import RolloutConfig
    from codemill.rollouts.runner import stream_rollouts

    settings = State.settings()
    sampling = SamplingConfig(temperature=temperature, top_p=top_p, seed=seed)
    config = RolloutConfig(group_size=group, sampling=sampling, mode=mode)  # type: ignore[arg-type]
    agent = AgentConfig(max_turns=max_turns, sampling=sampling)
    with open_reader() as reader:
        tasks = _tasks(reader, task_refs)
        envs = _envs(reader, tasks)
        existing = _existing_rollouts(reader, model)
    run_config = {"model": model, "tasks": [t.task_id for t in tasks],
                  "rollout": config.model_dump(mode="json"),
                  "agent": agent.model_dump(mode="json")}
    with recorded_run(settings, "rollout", run_config) as rec, \
            make_executor(settings) as executor:
        batch, results = stream_rollouts(
            tasks, envs=envs, home=settings.home, settings=settings, model=model,
            config=config, agent=agent, existing=existing, executor=executor)
        err_console.print(f"{batch.planned} rollouts to run, {batch.skipped} already "
                          "recorded", highlight=False)
        _persist(rec, results)
        summary = _summary(batch)
        rec.summary.update(summary)
    if as_json:
        print_json(summary)
        return
    console.print(f"rollouts {summary['rollouts']}  resolved rate "
                  f"{summary['resolved_rate'] if summary['resolved_rate'] is not None else '-'}"
                  f"  masked {summary['masked']}  failed {summary['failed']}  skipped "
                  f"{summary['skipped']}", highlight=False)
    if summary["flags"]:
        flags = ", ".join(f"{k} {v}" for k, v in summary["flags"].items())
        console.print(f"flags: {flags}", highlight=False)


def mini_rollout_command(task_refs: list[str], model: str, group: int, temperature: float,
                         max_turns: int, as_json: bool) -> None:
    """``rollout --agent mini-swe-agent``: mini-swe-agent episodes on the tasks, their
    commands in the tasks' sandbox forks, graded and recorded
    (``codemill.factory.mini_swe_agent``); the model is called through litellm (a local
    spec is served on loopback for the run)."""
    from codemill.factory.mini_swe_agent import run_mini_swe_agents
    from codemill.interop.mini_swe_agent import MiniConfig, model_from_spec

    settings = State.settings()
    with open_reader() as reader:
        tasks = _tasks(reader, task_refs)
        envs = _envs(reader, tasks)

    def say(ep: Any) -> None:
        r, t = ep.reward, ep.trajectory
        value = "masked" if r.masked else f"{r.value:.0f}"
        err_console.print(f"  {short_id(t.rollout_id)} task {short_id(t.task_id)} "
                          f"{ep.exit_status} reward {value}", highlight=False)

    err_console.print(f"{len(tasks) * group} mini-swe-agent episodes to run", highlight=False)
    with model_from_spec(model, settings.home, temperature=temperature) as mini:
        done = run_mini_swe_agents(tasks, envs, settings, lambda: mini, group=group,
                                   config=MiniConfig(step_limit=max_turns),
                                   policy=f"mini-swe-agent/{model}", progress=say)
    rewards = [d.episode.reward for d in done]
    scored = [r for r in rewards if not r.masked]
    summary = {"rollouts": len(done), "masked": len(rewards) - len(scored),
               "resolved": sum(1 for r in scored if r.resolved),
               "resolved_rate": round(sum(1 for r in scored if r.resolved) / len(scored), 4)
               if scored else None,
               "run_id": done[0].run_id if done else None}
    if as_json:
        print_json(summary)
        return
    console.print(f"rollouts {summary['rollouts']}  resolved {summary['resolved']}  masked "
                  f"{summary['masked']}", highlight=False)


def _persist(rec: Any, results: Any) -> None:
    """Record each finished sample's rows through the factory; they commit in batches."""
    from codemill.rollouts.runner import RolloutResult
    from codemill.store.rows import rollout_rows

    for result in results:
        if not isinstance(result, RolloutResult):
            item, error = result
            err_console.print(f"  [red]failed[/] {short_id(item.rollout_id)}: {error}",
                              highlight=False)
            continue
        traj, item = result.trajectory, result.item
        for table, row in rollout_rows(traj, env_id=item.task.env_id, group_id=item.group_id,
                                       reward=result.reward):
            rec.add(row, table)
        r = result.reward
        value = "-" if r is None else ("masked" if r.masked else f"{r.value:.0f}")
        err_console.print(f"  {short_id(item.rollout_id)} task {short_id(item.task.task_id)}"
                          f" #{item.sample_index} {traj.stop_reason.value} reward {value}",
                          highlight=False)


def _summary(batch: Any) -> dict[str, Any]:
    rewards = [r.reward for r in batch.results if r.reward is not None]
    scored = [r for r in rewards if not r.masked]
    flags: Counter[str] = Counter(f for r in rewards for f in r.flags)
    return {
        "rollouts": len(batch.results), "planned": batch.planned, "skipped": batch.skipped,
        "failed": len(batch.failed), "graded": len(rewards), "masked": len(rewards) - len(scored),
        "resolved": sum(1 for r in scored if r.resolved),
        "resolved_rate": round(sum(1 for r in scored if r.resolved) / len(scored), 4)
        if scored else None,
        "flags": dict(sorted(flags.items())),
        "error_types": dict(Counter(r.error_type for r in rewards if r.error_type)),
    }


def register(app: typer.Typer) -> None:
    @app.command("grade")
    def grade_cmd(
        task: str | None = typer.Argument(None, help="Task id, a unique prefix of one, or "
                                          "the instance_id of its SWE-bench export."),
        patch: Path | None = typer.Option(None, "--patch", "-p", exists=True,
                                          dir_okay=False,
                                          help="Unified diff to grade (git or plain format)."),
        predictions: Path | None = typer.Option(
            None, "--predictions", help="A SWE-bench predictions file (.jsonl or .json: "
            "instance_id, model_name_or_path, model_patch): grade each and record its "
            "reward; instead of TASK and --patch."),
        record: bool = typer.Option(False, "--record", help="Also write the rewards row."),
        as_json: bool = _JSON,
    ) -> None:
        """Grade a diff for a task (reward, flags and per-test verdicts), or every
        prediction of a SWE-bench predictions file."""
        with handle_errors():
            if predictions is not None:
                if task is not None or patch is not None:
                    raise TaskError("--predictions grades a whole file: give no TASK "
                                    "and no --patch with it")
                predictions_command(predictions, as_json)
                return
            if task is None or patch is None:
                raise TaskError("give TASK and --patch FILE, or --predictions FILE")
            grade_command(task, patch, record, as_json)

    @app.command("rollout")
    def rollout_cmd(
        tasks: list[str] = typer.Argument(..., help="Task ids (or prefixes), or 'all'."),
        model: str = typer.Option(..., "--model", "-m",
                                  help="openai:MODEL@URL, scripted:NAME_OR_PATH, "
                                       "transformers:PATH or smollm2."),
        group: int = typer.Option(4, "--group", "-g", min=1, help="Samples per task (G)."),
        temperature: float = typer.Option(1.0, "--temperature", min=0.0),
        top_p: float = typer.Option(1.0, "--top-p", min=0.0, max=1.0),
        seed: int | None = typer.Option(0, "--seed",
                                        help="Base seed; sample i uses seed + i."),
        max_turns: int = typer.Option(30, "--max-turns", min=1),
        mode: Literal["agent", "patch"] = typer.Option(
            "agent", "--mode", help="agent: multi-turn with tools; patch: one answer "
            "(an edit of the code the failing tests run)."),
        agent: Literal["codemill", "mini-swe-agent"] = typer.Option(
            "codemill", "--agent", help="codemill: codemill's own agent; mini-swe-agent: "
            "its DefaultAgent (the interop extra), commands run in the task's sandbox fork "
            "(agent mode only; --top-p and --seed do not apply)."),
        as_json: bool = _JSON,
    ) -> None:
        """Run GRPO rollout groups, grade them, and record rollouts, steps and rewards."""
        with handle_errors():
            check_model(model, State.settings().home)
            if agent == "mini-swe-agent":
                if mode != "agent":
                    raise TaskError("--agent mini-swe-agent runs in agent mode only")
                mini_rollout_command(tasks, model, group, temperature, max_turns, as_json)
                return
            rollout_command(tasks, model, group, temperature, top_p, seed, max_turns, as_json,
                            mode)
