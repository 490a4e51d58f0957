"""``codemill tasks ...``: mine, synthesize, validate, list, show, export and import tasks.

    codemill tasks mine ENV [--repo SRC] [--rev REV] [--max-commits N] [--max N]
    codemill tasks synth ENV [--max N] [--kinds compare_flip,arith_swap] [--compose N]
    codemill tasks features ENV [--max N] [--kinds stub_body,remove_function]
    codemill tasks validate [TASK...] [--runs K]        re-check tasks in the ledger
    codemill tasks ls [--env ENV] [--json]
    codemill tasks show TASK [--json]
    codemill tasks package TASK                         the agent's workspace layer
    codemill tasks export --format swebench OUT         OUT.jsonl or OUT.parquet
    codemill tasks import FILE --env ENV                SWE-bench JSONL/Parquet, validated
    codemill tasks export-hf DIR                        a Hugging Face dataset (both modes)
    codemill tasks export-verl FILE.parquet             veRL's RL layout (patch mode)

Every candidate ends as a ``task_validations`` row (valid or rejected, with its reason);
valid tasks go to ``tasks``. Rows are committed as each candidate is decided, so a crash
loses at most the one in flight; a rerun skips every candidate id already decided for the
environment (ids are content hashes), so it neither redoes nor duplicates work. The
funnel (counts per stage, rejections by reason) is printed and stored in the run summary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from codemill.cli.app import State, console, err_console, handle_errors, open_reader, print_json
from codemill.core.errors import TaskError
from codemill.core.ids import short_id
from codemill.core.records import TaskSpec

_JSON = typer.Option(False, "--json", help="Print JSON instead of text.")
_ENV = typer.Argument(..., help="Environment id or a unique prefix of one.")
_RUNS = typer.Option(3, "--runs", "-k", help="Repetitions per state (flakiness).")
_MUTANTS = typer.Option(8, "--mutants", help="Mutants run to measure test strength.")
_RETRY = typer.Option(False, "--retry-rejected",
                      help="Decide again candidates rejected in earlier runs.")


def _bed(env_prefix: str) -> Any:
    from codemill.cli.env_cmd import resolve_env
    from codemill.factory.lookup import baseline_reports
    from codemill.tasks.testbed import TestBed

    settings = State.settings()
    env = resolve_env(env_prefix)
    with open_reader() as reader:  # the build's k runs: validation need not run them again
        reports = baseline_reports(reader, env.env_id)
        repeats = baseline_reports(reader, env.env_id, "baseline-repeat")
    return env, TestBed.from_env(env, settings.home, settings.sandbox,
                                 baseline_reports=reports, baseline_repeats=repeats)


def decided(reader: Any, env_id: str, retry_rejected: bool = False
            ) -> tuple[set[str], set[str]]:
    from codemill.factory.lookup import decided_candidates

    return decided_candidates(reader, env_id, retry_rejected=retry_rejected)


def _load_tasks(reader: Any, env_id: str | None = None) -> list[TaskSpec]:
    from codemill.factory.lookup import load_tasks

    return load_tasks(reader, env_id)


def _find_task(reader: Any, ref: str) -> TaskSpec:
    from codemill.factory.lookup import find_task

    return find_task(reader, ref)


def _record(command: str, env_id: str, config: dict[str, Any], funnel: Any,
            decisions: Iterator[tuple[TaskSpec | None, Any]], tasks_present: set[str]
            ) -> list[TaskSpec]:
    """Record decisions one by one (committed each time) through the factory."""
    from codemill.factory.record import recorded_run, validation_row

    made: list[TaskSpec] = []
    with recorded_run(State.settings(), command, {**config, "env_id": env_id}) as rec:
        try:
            for task, row in decisions:
                rec.add(validation_row(row), "task_validations")
                if task is not None and task.task_id not in tasks_present:
                    rec.add(task)
                    tasks_present.add(task.task_id)
                    made.append(task)
                rec.flush()
                _progress(task, row)
        finally:
            rec.summary.update(funnel=funnel.freeze().model_dump(),
                               tasks=[t.task_id for t in made])
    return made


def _progress(task: TaskSpec | None, row: Any) -> None:
    if task is not None:
        weak = " [yellow]weak[/]" if task.metadata.get("weak") else ""
        err_console.print(f"  [green]task[/] {short_id(task.task_id)} "
                          f"F2P={len(task.fail_to_pass)}{weak}", highlight=False)
    else:
        err_console.print(f"  [dim]rejected: {row.reason}[/]", highlight=False)


def _print_funnel(funnel: Any, made: list[TaskSpec], as_json: bool) -> None:
    f = funnel.freeze()
    if as_json:
        print_json({"tasks": [t.task_id for t in made], "funnel": f.model_dump()})
        return
    stages = " -> ".join(f"{s} {getattr(f, s)}" for s in
                         ("candidates", "compiled", "broke_a_test", "passed_validation",
                          "not_flaky", "strong"))
    console.print(f"{len(made)} new task(s); funnel: {stages}", highlight=False)
    if f.skipped_known:
        console.print(f"skipped (decided before): {f.skipped_known}", highlight=False)
    for reason, n in sorted(f.rejected.items(), key=lambda kv: -kv[1]):
        console.print(f"  rejected {n:4d}  {reason}", highlight=False, markup=False)


def _vcfg(runs: int, mutants: int) -> Any:
    from codemill.tasks.validate import ValidationConfig

    return ValidationConfig(runs=runs, max_mutants=mutants)


def _kinds(text: str | None) -> tuple[str, ...] | None:
    return tuple(k.strip() for k in text.split(",") if k.strip()) if text else None


def synth_cmd(env: str = _ENV, max_tasks: int = typer.Option(20, "--max", help="Tasks."),
              kinds: str | None = typer.Option(None, "--kinds", help="Comma-separated."),
              candidates: int = typer.Option(400, "--candidates", help="Screen at most."),
              compose: int = typer.Option(3, "--compose", help="Composite tasks to try."),
              runs: int = _RUNS, mutants: int = _MUTANTS, retry: bool = _RETRY,
              as_json: bool = _JSON) -> None:
    """Synthesize bugs in tested code and validate them."""
    with handle_errors():
        from codemill.tasks.records import FunnelCounter
        from codemill.tasks.synth import SynthConfig, synthesize

        spec, bed = _bed(env)
        cfg = SynthConfig(max_tasks=max_tasks, kinds=_kinds(kinds), max_candidates=candidates,
                          compose=compose, validation=_vcfg(runs, mutants))
        funnel = FunnelCounter(spec.env_id, "synth")
        with open_reader(create=True) as ledger:
            skip, present = decided(ledger, spec.env_id, retry)
        made = _record("tasks synth", spec.env_id, cfg.model_dump(), funnel,
                       synthesize(bed, cfg, funnel=funnel, skip=skip), present)
        _print_funnel(funnel, made, as_json)


def features_cmd(env: str = _ENV, max_tasks: int = typer.Option(10, "--max", help="Tasks."),
                 kinds: str = typer.Option("stub_body,remove_function", "--kinds"),
                 runs: int = _RUNS, mutants: int = _MUTANTS, retry: bool = _RETRY,
                 as_json: bool = _JSON) -> None:
    """Feature tasks: tested functions removed or stubbed, to be implemented."""
    with handle_errors():
        from codemill.tasks.feature_tasks import FeatureConfig, feature_tasks
        from codemill.tasks.records import FunnelCounter

        spec, bed = _bed(env)
        cfg = FeatureConfig(max_tasks=max_tasks, kinds=_kinds(kinds) or ("stub_body",),
                            validation=_vcfg(runs, mutants))
        funnel = FunnelCounter(spec.env_id, "feature")
        with open_reader(create=True) as ledger:
            skip, present = decided(ledger, spec.env_id, retry)
        made = _record("tasks features", spec.env_id, cfg.model_dump(), funnel,
                       feature_tasks(bed, cfg, funnel=funnel, skip=skip), present)
        _print_funnel(funnel, made, as_json)


def _mirror_for(spec: Any, repo: str | None) -> tuple[Path, str, str]:
    from codemill.repos.gitcmd import ensure_mirror
    from codemill.repos.sources import split_rev

    settings = State.settings()
    source, commit = repo, None
    if source is None:
        with open_reader(create=True) as ledger:
            rows = ledger.read("snapshots", row_filter=f"snapshot_id == '{spec.snapshot_id}'",
                               columns=["source", "commit"], limit=1).to_pylist()
        if not rows:
            raise TaskError("the environment's snapshot is not in the ledger; pass --repo")
        source, commit = rows[0]["source"], rows[0].get("commit")
    location, rev = split_rev(source)
    if source.startswith("pypi:"):
        raise TaskError("a PyPI snapshot has no history to mine; pass --repo")
    local = Path(location).expanduser()
    url = str(local.resolve()) if local.exists() else location
    return ensure_mirror(url, settings.home), commit or rev or "HEAD", url


def mine_cmd(env: str = _ENV,
             repo: str | None = typer.Option(None, "--repo", help="Git repo (default: the "
                                             "environment's source)."),
             rev: str | None = typer.Option(None, "--rev", help="Newest commit to mine."),
             max_commits: int = typer.Option(50, "--max-commits"),
             max_tasks: int = typer.Option(20, "--max", help="Tasks."),
             runs: int = _RUNS, mutants: int = _MUTANTS, retry: bool = _RETRY,
             as_json: bool = _JSON) -> None:
    """Mine bug fixes and features from the repository's first-parent history."""
    with handle_errors():
        from codemill.tasks.deps import Installed
        from codemill.tasks.mine import MineConfig, mine
        from codemill.tasks.records import FunnelCounter

        spec, bed = _bed(env)
        mirror, head, url = _mirror_for(spec, repo)
        cfg = MineConfig(max_commits=max_commits, max_tasks=max_tasks,
                         validation=_vcfg(runs, mutants))
        funnel = FunnelCounter(spec.env_id, "mined")
        with open_reader(create=True) as ledger:
            skip, present = decided(ledger, spec.env_id, retry)
        made = _record("tasks mine", spec.env_id, {**cfg.model_dump(), "repo": url}, funnel,
                       mine(bed, mirror, rev or head, cfg, repo=url, funnel=funnel,
                            skip=skip, installed=Installed.of(spec)), present)
        _print_funnel(funnel, made, as_json)


def _revalidate(bed: Any, tasks: Iterable[TaskSpec], cfg: Any, funnel: Any
                ) -> Iterator[tuple[TaskSpec | None, Any]]:
    from codemill.tasks.validate import candidate_from_task, validate

    for task in tasks:
        funnel.reached("candidates")
        funnel.reached("compiled")
        funnel.reached("broke_a_test")
        try:
            c = candidate_from_task(bed, task)
        except TaskError as exc:
            from codemill.tasks.validate import reject

            funnel.reject("patch does not apply")
            yield None, reject(bed.env_id, None, "patch does not apply", "candidates",
                               candidate_id=task.task_id, kind=str(task.kind), detail=str(exc))
            continue
        yield validate(bed, c, cfg, funnel)


def validate_cmd(task_ids: list[str] = typer.Argument(
                     None, help="Task ids, prefixes or instance_ids (default: all)."),
                 runs: int = _RUNS, mutants: int = _MUTANTS, as_json: bool = _JSON) -> None:
    """Re-check tasks from the ledger: gold passes, broken fails, flakiness, strength."""
    with handle_errors():
        from codemill.tasks.records import FunnelCounter

        with open_reader(create=True) as ledger:
            tasks = [_find_task(ledger, t) for t in task_ids] if task_ids else _load_tasks(
                ledger)
        by_env: dict[str, list[TaskSpec]] = {}
        for t in tasks:
            by_env.setdefault(t.env_id, []).append(t)
        for env_id, group in by_env.items():
            _, bed = _bed(env_id)
            funnel = FunnelCounter(env_id, "validate")
            made = _record("tasks validate", env_id, {"tasks": [t.task_id for t in group]},
                           funnel, _revalidate(bed, group, _vcfg(runs, mutants), funnel),
                           {t.task_id for t in group})
            _print_funnel(funnel, made, as_json)


def import_cmd(file: Path = typer.Argument(..., help="SWE-bench JSONL or Parquet."),
               env: str = typer.Option(..., "--env", help="Environment to validate in."),
               runs: int = _RUNS, mutants: int = _MUTANTS, as_json: bool = _JSON) -> None:
    """Import SWE-bench-format instances and validate them against an environment."""
    with handle_errors():
        from codemill.tasks.records import FunnelCounter
        from codemill.tasks.swebench import from_instance, read_instances

        spec, bed = _bed(env)
        tasks = [from_instance(row, spec.env_id) for row in read_instances(file)]
        funnel = FunnelCounter(spec.env_id, "imported")
        with open_reader(create=True) as ledger:
            _, present = decided(ledger, spec.env_id)
        made = _record("tasks import", spec.env_id, {"file": str(file)}, funnel,
                       _revalidate(bed, tasks, _vcfg(runs, mutants), funnel), present)
        _print_funnel(funnel, made, as_json)


def ls_cmd(env: str | None = typer.Option(None, "--env", help="Only this environment."),
           as_json: bool = _JSON) -> None:
    """List tasks."""
    with handle_errors():
        with open_reader() as ledger:
            tasks = _load_tasks(ledger)
        if env:
            tasks = [t for t in tasks if t.env_id.startswith(env)]
        rows: list[dict[str, Any]] = [
                {"task_id": t.task_id, "env_id": t.env_id, "kind": str(t.kind),
                 "f2p": len(t.fail_to_pass), "p2p": len(t.pass_to_pass),
                 "lines": t.metadata.get("lines_changed"),
                 "kill_rate": t.metadata.get("kill_rate"), "weak": t.metadata.get("weak"),
                 "what": t.metadata.get("operator") or t.metadata.get("feature")
                 or t.metadata.get("subject") or ""} for t in tasks]
        if as_json:
            print_json(rows)
            return
        table = Table(header_style="bold")
        for col in ("task", "env", "kind", "F2P", "P2P", "lines", "kill", "weak", "what"):
            table.add_column(col, no_wrap=True, overflow="ellipsis")
        for r in rows:
            table.add_row(short_id(r["task_id"]), short_id(r["env_id"]), r["kind"],
                          str(r["f2p"]), str(r["p2p"]), str(r["lines"] or ""),
                          "" if r["kill_rate"] is None else f"{r['kill_rate']:.2f}",
                          "yes" if r["weak"] else "", str(r["what"])[:40])
        console.print(table)


def show_cmd(task: str = typer.Argument(..., help="Task id, prefix or instance_id."),
             as_json: bool = _JSON) -> None:
    """Show one task: labels, metadata, statement and patches."""
    with handle_errors():
        with open_reader() as ledger:
            t = _find_task(ledger, task)
        if as_json:
            print_json(t.model_dump(mode="json"))
            return
        console.print(f"[bold]{t.task_id}[/] {t.kind} env {short_id(t.env_id)}",
                      highlight=False)
        console.print(f"FAIL_TO_PASS ({len(t.fail_to_pass)}): " + ", ".join(t.fail_to_pass),
                      highlight=False, markup=False)
        console.print(f"PASS_TO_PASS: {len(t.pass_to_pass)}; hidden: "
                      + ", ".join(t.hidden_paths), highlight=False, markup=False)
        console.print(json.dumps(t.metadata, indent=2, default=str), highlight=False,
                      markup=False)
        console.print("\n[bold]problem statement[/]\n" + t.problem_statement, highlight=False)
        console.print("[bold]gold patch[/]", highlight=False)
        console.print(t.gold_patch, highlight=False, markup=False)


def package_cmd(task: str = typer.Argument(..., help="Task id, prefix or instance_id.")
                ) -> None:
    """Build the agent's workspace layer of a task (single commit, no history)."""
    with handle_errors():
        from codemill.tasks.package import package_task

        with open_reader() as ledger:
            t = _find_task(ledger, task)
        _, bed = _bed(t.env_id)
        console.print(str(package_task(bed, t)), highlight=False)


def export_cmd(out: Path = typer.Argument(..., help="Output .jsonl or .parquet file."),
               fmt: str = typer.Option("swebench", "--format", help="Only 'swebench'."),
               env: str | None = typer.Option(None, "--env", help="Only this environment."),
               include_weak: bool = typer.Option(True, "--weak/--no-weak")) -> None:
    """Export tasks in the SWE-bench instance format (JSONL, or Parquet by suffix)."""
    with handle_errors():
        from codemill.tasks.swebench import write_jsonl, write_parquet

        if fmt != "swebench":
            raise TaskError(f"unknown format {fmt!r} (known: swebench)")
        from codemill.factory.lookup import env_rows, snapshot_of

        with open_reader() as ledger:
            tasks = _load_tasks(ledger)
            tasks = [t for t in tasks if (not env or t.env_id.startswith(env))
                     and (include_weak or not t.metadata.get("weak"))]
            snap_of_env = {r["env_id"]: r["snapshot_id"] for r in env_rows(ledger)}
            snaps = {}
            for env_id in {t.env_id for t in tasks}:
                snap = snapshot_of(ledger, snap_of_env.get(env_id, "")) \
                    if env_id in snap_of_env else None
                if snap is not None:
                    snaps[env_id] = snap
        write = write_parquet if out.suffix == ".parquet" else write_jsonl
        n = write(tasks, out, snaps)
        console.print(f"{n} task(s) written to {out}", highlight=False)


_ONLY_ENV = typer.Option(None, "--env", help="Only this environment (id prefix).")
_ANSWER = typer.Option("lines", "--answer-format", help="Patch mode: lines or search_replace.")


def _rl_rows(env: str | None, answer_format: str) -> tuple[Any, Any]:
    from codemill.factory.lookup import find_env
    from codemill.interop.datasets import task_rows

    if answer_format not in ("lines", "search_replace"):
        raise TaskError(f"unknown answer format {answer_format!r} (lines, search_replace)")
    settings = State.settings()
    with open_reader() as reader:
        tasks = [t for t in _load_tasks(reader) if not env or t.env_id.startswith(env)]
        envs = {env_id: find_env(reader, env_id) for env_id in {t.env_id for t in tasks}}
    rows = task_rows([(t, envs[t.env_id]) for t in tasks], settings.home, settings,
                     answer_format)  # type: ignore[arg-type]
    for task_id, why in rows.skipped.items():
        err_console.print(f"skipped {short_id(task_id)}: no patch context: {why}")
    return rows, settings


def export_hf_cmd(out: Path = typer.Argument(..., help="Output directory."),
                  env: str | None = _ONLY_ENV, answer_format: str = _ANSWER) -> None:
    """Save tasks as a Hugging Face dataset (agent and patch prompts) with a README card."""
    with handle_errors():
        from codemill.interop.datasets import save_hf

        rows, _ = _rl_rows(env, answer_format)
        n = save_hf(rows, out)
        console.print(f"{n} task(s) saved to {out} (datasets.load_from_disk)", highlight=False)


def export_verl_cmd(out: Path = typer.Argument(..., help="Output .parquet file."),
                    env: str | None = _ONLY_ENV, answer_format: str = _ANSWER) -> None:
    """Write tasks in veRL's RL Parquet layout (patch mode); grade with
    custom_reward_function.path = codemill/interop/verl_reward.py."""
    with handle_errors():
        from codemill.interop.datasets import save_verl

        rows, settings = _rl_rows(env, answer_format)
        n = save_verl(rows, out, settings.home, settings)
        console.print(f"{n} task(s) written to {out}", highlight=False)


def register(app: typer.Typer) -> None:
    tasks = typer.Typer(help="Mine, synthesize, validate and export tasks.",
                        no_args_is_help=True)
    tasks.command("mine")(mine_cmd)
    tasks.command("synth")(synth_cmd)
    tasks.command("features")(features_cmd)
    tasks.command("validate")(validate_cmd)
    tasks.command("ls")(ls_cmd)
    tasks.command("show")(show_cmd)
    tasks.command("package")(package_cmd)
    tasks.command("export")(export_cmd)
    tasks.command("import")(import_cmd)
    tasks.command("export-hf")(export_hf_cmd)
    tasks.command("export-verl")(export_verl_cmd)
    app.add_typer(tasks, name="tasks")
