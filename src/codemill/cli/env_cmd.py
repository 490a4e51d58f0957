"""``codemill env build|ls|test|exec|shell``: executable environments from repositories.

- ``env build SOURCE``: snapshot (local dir, ``git-url@rev``, ``pypi:NAME==VER``), build in
  the sandbox, run the baseline, record snapshot, environment and per-test rows in the
  ledger. Exit 0 when the environment is usable, 3 when it was built but is not (failed,
  no tests, flaky: the reason is printed), 1 on bad input.
- ``env ls``: the environments in the ledger (latest row of each).
- ``env test ENV``: run the suite (or ``-k EXPR``) in a fresh fork; counts and failures.
- ``env exec ENV -- CMD...``: run a command in a fresh fork; its output and exit code.
- ``env shell ENV``: an interactive bash in a fresh fork (needs a terminal).
- ``env serve TASK...``: the tasks as environments over HTTP (``codemill.interop.serve``):
  sessions (a fork each) with reset/step/grade, limits, idle reaping, a bearer token read
  from ``$CODEMILL_SERVE_TOKEN``; needs the extra ``interop``. Prints its URL, serves until
  interrupted, and closes every session on the way out.

``ENV`` is an environment id or a unique prefix of one (at least 4 hex digits).
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.table import Table

from codemill.cli.app import State, console, err_console, handle_errors, open_reader, print_json
from codemill.cli.envstatus import pass_fraction, passing_text
from codemill.core.errors import BuildError
from codemill.core.ids import short_id
from codemill.core.records import EnvSpec, EnvStatus, Outcome

NOT_USABLE_EXIT = 3
_JSON = typer.Option(False, "--json", help="Print JSON instead of text.")
_ENV = typer.Argument(..., help="Environment id or a unique prefix of one.")


def _say_to(status: Any) -> Any:
    def say(message: str) -> None:
        status.update(f"[bold]env build[/]: {message}")
        if not err_console.is_terminal:
            err_console.print(f"  {message}", highlight=False, soft_wrap=True)
    return say


def _summary(built: Any) -> dict[str, Any]:
    env, row = built.env, built.row
    return {"env_id": env.env_id, "snapshot_id": env.snapshot_id, "status": env.status.value,
            "reason": env.reason, "python": env.python, "venv_path": env.venv_path,
            "lock_hash": env.lock_hash, "n_tests": env.n_tests, "n_passing": env.n_passing,
            "n_flaky": env.n_flaky, "pass_fraction": pass_fraction(env.n_passing, env.n_tests),
            "counts": built.counts,
            "build_seconds": env.build_seconds, "disk_bytes": row.get("disk_bytes"),
            "shared_venv": row.get("shared_venv"), "attempt": row.get("attempt"),
            "python_reason": row.get("python_reason"), "cached": built.cached,
            "test_command": list(env.test_command)}


def build_cmd(
    source: str = typer.Argument(..., help="Local dir, git URL[@rev], or pypi:NAME[==VER]."),
    python: str | None = typer.Option(None, "--python", help="Interpreter version or path."),
    as_json: bool = _JSON,
    show_log: bool = typer.Option(False, "--log", help="Print the build log."),
) -> None:
    """Build an environment from SOURCE, run its baseline and record it."""
    with handle_errors():
        from codemill.factory.environments import build_environment

        settings = State.settings()
        if python:  # a version that is not on this machine is bad input, not a build
            from codemill.envs.interpreters import choose_interpreter

            choose_interpreter(requested=python)
        with err_console.status("[bold]env build[/]: snapshot") as status:
            built = build_environment(source, settings, python=python,
                                      progress=_say_to(status))
        if show_log:
            log = built.row.get("build_log") or "(no build log: built by an older codemill)"
            err_console.print(log, highlight=False, markup=False, soft_wrap=True)
        env = built.env
        if as_json:
            print_json(_summary(built))
        else:
            color = "green" if env.status == EnvStatus.USABLE else "yellow"
            cached = "  (recorded before)" if built.cached else ""
            console.print(f"{short_id(env.env_id)} [{color}]{env.status.value}[/], "
                          f"{passing_text(env.n_passing, env.n_tests)}  "
                          f"python {env.python or '-'}  tests {env.n_tests} "
                          f"passing {env.n_passing} flaky {env.n_flaky}  "
                          f"{env.build_seconds:.0f}s{cached}", highlight=False)
            if env.reason:
                console.print(f"reason: {env.reason}", highlight=False, markup=False,
                              soft_wrap=True)
        if env.status != EnvStatus.USABLE:
            raise typer.Exit(NOT_USABLE_EXIT)


def _latest_envs() -> list[dict[str, Any]]:
    with open_reader() as reader:  # a listing never creates a home
        rows = reader.query(
            "SELECT e.*, s.name AS project, s.source AS source FROM environments e "
            "LEFT JOIN (SELECT DISTINCT ON (snapshot_id) snapshot_id, name, source "
            "FROM snapshots) s USING (snapshot_id) "
            "QUALIFY row_number() OVER (PARTITION BY e.env_id ORDER BY e.created_at DESC) = 1 "
            "ORDER BY e.created_at DESC").to_pylist()
    return rows


def resolve_env(ref: str) -> EnvSpec:
    """The environment ``ref`` (an id or a unique prefix) names, from the ledger."""
    from codemill.factory.lookup import find_env

    with open_reader() as reader:
        return find_env(reader, ref)


def ls_cmd(as_json: bool = _JSON) -> None:
    """List environments (latest row of each), newest first."""
    with handle_errors():
        rows = _latest_envs()
        cols = ["env_id", "project", "python", "status", "n_tests", "n_passing", "n_flaky",
                "build_seconds", "reason", "source", "created_at"]
        if as_json:
            return print_json([{**{c: r.get(c) for c in cols}, "pass_fraction": pass_fraction(
                r.get("n_passing"), r.get("n_tests"))} for r in rows])
        table = Table("env", "project", "python", "status", "pass", "tests", "passing",
                      "flaky", "build s", "reason")
        for r in rows:
            table.add_row(short_id(r["env_id"]), str(r.get("project") or ""),
                          str(r.get("python") or ""), str(r.get("status")),
                          passing_text(r.get("n_passing"), r.get("n_tests")),
                          str(r.get("n_tests")), str(r.get("n_passing")), str(r.get("n_flaky")),
                          f"{r.get('build_seconds') or 0:.0f}",
                          str(r.get("reason") or "")[:60])
        console.print(table)


def test_cmd(
    env_ref: str = _ENV,
    keyword: str | None = typer.Option(None, "-k", help="pytest -k expression."),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds before the run is killed."),
    as_json: bool = _JSON,
) -> None:
    """Run ENV's test suite in a fresh fork and print per-outcome counts and failures."""
    with handle_errors():
        from codemill.envs.forks import run_tests

        env = resolve_env(env_ref)
        report = run_tests(env, State.settings(), keyword=keyword, timeout_s=timeout)
        counts = {o.value: report.count(o) for o in Outcome}
        bad = [r for r in report.results if r.outcome in (Outcome.FAILED, Outcome.ERROR)]
        if as_json:
            print_json({"env_id": env.env_id, "counts": counts, "error": report.error,
                        "exit_code": report.exit_code, "duration_s": report.duration_s,
                        "failures": [{"node_id": r.node_id, "outcome": r.outcome.value,
                                      "message": r.message} for r in bad]})
        else:
            console.print("  ".join(f"{k} {v}" for k, v in counts.items())
                          + f"  ({report.duration_s:.1f}s)", highlight=False)
            for r in bad[:50]:
                last = (r.message.splitlines() or [""])[-1][:160]
                console.print(f"[red]{r.outcome.value}[/] {r.node_id}: {last}",
                              highlight=False, soft_wrap=True)
            if report.error:
                err_console.print(f"[bold red]error:[/] {report.error}", highlight=False)
        if report.error and not report.results:
            raise typer.Exit(1)


def exec_cmd(
    env_ref: str = _ENV,
    command: list[str] = typer.Argument(..., help="The command, after --."),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds before it is killed."),
) -> None:
    """Run a command in a fresh fork of ENV; pass through its output and exit code."""
    with handle_errors():
        from codemill.envs.forks import exec_in_env

        if command and command[0] == "--":
            command = command[1:]
        env = resolve_env(env_ref)
        res = exec_in_env(env, State.settings(), command, timeout_s=timeout)
        sys.stdout.write(res.stdout)
        sys.stdout.flush()
        sys.stderr.write(res.stderr)
        if res.timed_out:
            err_console.print(f"[bold red]error:[/] timed out after {timeout:.0f}s")
            raise typer.Exit(124)
        code = res.exit_code if res.exit_code is not None else 1
        raise typer.Exit(code if code >= 0 else 128 - code)


def shell_cmd(env_ref: str = _ENV) -> None:
    """An interactive bash in a fresh fork of ENV (changes are discarded on exit)."""
    with handle_errors():
        from codemill.envs.forks import shell_in_env

        if not sys.stdin.isatty():
            raise BuildError("env shell needs a terminal (stdin is not a tty)")
        env = resolve_env(env_ref)
        raise typer.Exit(shell_in_env(env, State.settings()))


def serve_cmd(
    task_refs: list[str] = typer.Argument(..., help="Task ids (or unique prefixes) to serve."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8765, "--port", help="Port; 0 picks a free one (printed)."),
    max_sessions: int = typer.Option(8, "--max-sessions", help="Sessions open at once."),
    idle_timeout: float = typer.Option(600.0, "--idle-timeout",
                                       help="Seconds before an idle session is closed."),
    max_steps: int = typer.Option(30, "--max-steps", help="Steps of one episode at most."),
    time_limit: float = typer.Option(1800.0, "--time-limit",
                                     help="Seconds of one episode at most."),
    token_env: str = typer.Option("CODEMILL_SERVE_TOKEN", "--token-env",
                                  help="Variable holding the bearer token (unset: none)."),
) -> None:
    """Serve TASKs as environment sessions over HTTP until interrupted."""
    with handle_errors():
        import os

        from codemill.agent.config import AgentConfig
        from codemill.core.errors import ConfigError
        from codemill.factory.lookup import find_env, find_task
        from codemill.interop.serve import ServeConfig, run, serve_app
        from codemill.rollouts.session import SessionConfig

        token = os.environ.get(token_env) or None
        if token is None and host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"serving on {host} needs a bearer token: set ${token_env}")
        with open_reader() as reader:
            tasks = [find_task(reader, ref) for ref in task_refs]
            served = {t.task_id: (t, find_env(reader, t.env_id)) for t in tasks}
        agent = AgentConfig(max_turns=max_steps, wall_time_s=time_limit)
        config = ServeConfig(max_sessions=max_sessions, idle_timeout_s=idle_timeout,
                             token=token, session=SessionConfig(agent=agent))
        settings = State.settings()
        app = serve_app(served, settings.home, settings, config)

        def announce(url: str) -> None:
            print(f"serving {len(served)} task(s) at {url}", flush=True)

        run(app, host, port, announce)
        # The server stops only on a signal. uvicorn re-raises it after shutdown on some
        # paths and returns normally on others; either way the command was interrupted.
        raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    env = typer.Typer(help="Executable environments: build, list, test, exec, shell, serve.",
                      no_args_is_help=True)
    env.command("build")(build_cmd)
    env.command("ls")(ls_cmd)
    env.command("test")(test_cmd)
    env.command("exec")(exec_cmd)
    env.command("shell")(shell_cmd)
    env.command("serve")(serve_cmd)
    app.add_typer(env, name="env")
