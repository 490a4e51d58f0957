"""``codemill factory plan|materialize``: what would run and why; run it.

Assets come from the pipeline module (``codemill.factory.pipeline``, when present) plus
any ``--module`` given, a dotted module name or a ``.py`` file declaring assets with
``@codemill.factory.asset`` (``--no-pipeline`` leaves the pipeline out, for a graph of
one's own whose names would clash with it). Per-asset config comes from
``--asset-config FILE``, TOML or JSON with one table per asset name::

    [environments]
    python = "3.11"
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from codemill.cli.app import State, console, err_console, handle_errors, print_json
from codemill.core.errors import ConfigError
from codemill.core.ids import short_id

NO_ASSETS = ("no assets registered: codemill.factory.pipeline is absent or declares none; "
             "declare assets in a module and pass --module MODULE_OR_FILE")

_TARGETS = typer.Argument(None, help="Assets to plan (default: all); upstream is included.")
_MODULES = typer.Option([], "--module", "-m",
                        help="Import assets from a dotted module or a .py file (repeatable).")
_ASSET_CONFIG = typer.Option(None, "--asset-config",
                             help="TOML or JSON file: one table of config per asset.")
_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
_PIPELINE = typer.Option(True, "--pipeline/--no-pipeline",
                         help="Also load codemill's own pipeline assets (when present).")


def _load(modules: list[str], asset_config: Path | None,
          pipeline: bool) -> dict[str, Any] | None:
    """Import asset modules; return the per-asset config, or None if no asset exists."""
    from codemill.factory.graph import REGISTRY, load_modules

    load_modules(modules, pipeline=pipeline)
    if not len(REGISTRY):
        return None
    if asset_config is None:
        return {}
    try:
        text = asset_config.read_text()
        data = json.loads(text) if asset_config.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:  # JSONDecodeError and TOMLDecodeError both
        raise ConfigError(f"{asset_config}: cannot read asset config: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{asset_config}: expected one table of config per asset name")
    return data


def _nothing(as_json: bool) -> None:
    if as_json:
        print_json([])
    err_console.print(NO_ASSETS, highlight=False, soft_wrap=True)


def plan_cmd(
    targets: list[str] | None = _TARGETS,
    module: list[str] = _MODULES,
    asset_config: Path | None = _ASSET_CONFIG,
    as_json: bool = _JSON,
    pipeline: bool = _PIPELINE,
) -> None:
    """Show, per asset in order, whether it would run or is cached, and why."""
    with handle_errors():
        config = _load(module, asset_config, pipeline)
        if config is None:
            return _nothing(as_json)
        from codemill.factory.materialize import plan

        the_plan = plan(targets or None, config, State.settings())
        if as_json:
            return print_json(the_plan.to_json())
        table = Table("asset", "action", "key", "why")
        for s in the_plan.steps:
            style = "green" if s.action == "cached" else "yellow"
            table.add_row(s.asset, f"[{style}]{s.action}[/]", short_id(s.cache_key), s.reason)
        console.print(table)
        n = len(the_plan.to_run)
        console.print(f"{n} to run, {len(the_plan.steps) - n} cached")


def materialize_cmd(
    targets: list[str] | None = _TARGETS,
    module: list[str] = _MODULES,
    asset_config: Path | None = _ASSET_CONFIG,
    as_json: bool = _JSON,
    pipeline: bool = _PIPELINE,
) -> None:
    """Run what the plan says; record every materialization and the run in the ledger.
    Exits 1 when an asset failed (its downstream assets are skipped)."""
    with handle_errors():
        config = _load(module, asset_config, pipeline)
        if config is None:
            return _nothing(as_json)
        from codemill.factory.materialize import materialize

        last: dict[str, float] = {}

        def show(name: str, done: int, total: int | None) -> None:
            # At most one line a second per asset, and always the last one.
            now = time.monotonic()
            if as_json or (now - last.get(name, 0.0) < 1.0 and done != total):
                return
            last[name] = now
            err_console.print(f"  {name}: {done}/{total or '?'}", highlight=False)

        result = materialize(targets or None, config, State.settings(),
                             command="factory materialize " + " ".join(targets or []),
                             progress=show)
        if as_json:
            print_json(result.to_json())
        else:
            table = Table("asset", "status", "rows", "seconds", "detail")
            for o in result.outcomes.values():
                detail = o.error or o.reason
                table.add_row(o.asset, o.status, str(o.rows), f"{o.seconds:.2f}", detail)
            console.print(table)
            console.print(f"run {result.run_id}: {'ok' if result.ok else 'failed'}")
        result.raise_for_status()


def register(app: typer.Typer) -> None:
    factory = typer.Typer(help="The asset graph: plan what would run, materialize it.",
                          no_args_is_help=True)
    factory.command("plan")(plan_cmd)
    factory.command("materialize")(materialize_cmd)
    app.add_typer(factory, name="factory")
