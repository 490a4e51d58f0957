"""The asset registry and its graph: which assets exist and in what order they run.

``REGISTRY`` holds the assets declared with ``codemill.factory.asset``. ``order(targets)``
returns the targets plus everything upstream of them, dependencies first, in a
deterministic order (``graphlib.TopologicalSorter`` fed in name order). Unknown assets and
cycles raise ``FactoryError`` with one line.

Assets are found by importing modules: ``load_modules()`` imports ``ASSET_MODULES``, the one
list of the modules that declare codemill's own assets (the pipeline, evals, judgments, vibe
checks, checkpoints), plus any the caller names, either dotted
(``tests.factory.sample_assets``) or as a ``.py`` file path. Every caller that materializes
codemill's assets loads them through it; nothing registers by a side-effect import of its
own. Importing the same module again replaces its assets rather than clashing.

``order()`` with no targets means every asset that is not ``requested`` (the pipeline);
``reads`` edges are checked (a read of an unknown asset raises) but pull nothing into a
plan (``codemill.factory.asset``).
"""

from __future__ import annotations

import graphlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from codemill.core.errors import FactoryError
from codemill.factory.asset import Asset, AssetFn, Check, make_asset

ASSET_MODULES: tuple[str, ...] = (
    "codemill.factory.pipeline",     # snapshots, environments, tasks, rollouts, rewards
    "codemill.factory.evaluation",   # suites, evals
    "codemill.factory.judging",      # judgments
    "codemill.factory.vibing",       # vibe_checks
    "codemill.factory.checkpoints",  # checkpoints
)
"""Every module declaring codemill's own assets: the one list of them."""


class Registry:
    """Assets by name. Use ``REGISTRY`` unless a test wants its own graph."""

    def __init__(self) -> None:
        self._assets: dict[str, Asset] = {}

    def asset(
        self,
        name: str,
        code_version: str,
        deps: Iterable[str] = (),
        description: str = "",
        checks: Iterable[Check] = (),
        reads: Iterable[str] = (),
        requested: bool = False,
    ) -> Callable[[AssetFn], AssetFn]:
        """Decorator declaring ``fn`` as asset ``name``; returns ``fn`` unchanged."""

        def register(fn: AssetFn) -> AssetFn:
            self.add(make_asset(fn, name, code_version, deps, description, checks, reads,
                                requested))
            return fn

        return register

    def add(self, new: Asset) -> None:
        old = self._assets.get(new.name)
        if old is not None and old.origin != new.origin:
            raise FactoryError(
                f"asset {new.name!r} declared twice: by {old.origin} and {new.origin}"
            )
        self._assets[new.name] = new

    def get(self, name: str) -> Asset:
        try:
            return self._assets[name]
        except KeyError:
            known = ", ".join(sorted(self._assets)) or "none registered"
            raise FactoryError(f"unknown asset {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._assets)

    def __len__(self) -> int:
        return len(self._assets)

    def order(self, targets: Iterable[str] | None = None) -> list[Asset]:
        """``targets`` (default: every asset not ``requested``) and their ``deps`` closure,
        dependencies first. A read of an unknown asset raises; reads add nothing."""
        if isinstance(targets, str):  # one name, not an iterable of characters
            targets = [targets]
        wanted = (sorted(set(targets)) if targets
                  else [n for n in self.names() if not self._assets[n].requested])
        closure: dict[str, Asset] = {}
        stack: list[tuple[str, str | None]] = [(name, None) for name in reversed(wanted)]
        while stack:
            name, wanted_by = stack.pop()
            if name in closure:
                continue
            if name not in self._assets and wanted_by is not None:
                raise FactoryError(f"asset {wanted_by!r} depends on unknown asset {name!r}")
            closure[name] = self.get(name)
            for read in closure[name].reads:
                if read not in self._assets:
                    raise FactoryError(f"asset {name!r} reads unknown asset {read!r}")
            stack.extend((dep, name) for dep in sorted(closure[name].deps, reverse=True))
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for name in sorted(closure):
            sorter.add(name, *sorted(closure[name].deps))
        try:
            return [closure[name] for name in sorter.static_order()]
        except graphlib.CycleError as exc:
            cycle = list(reversed(exc.args[1]))
            raise FactoryError(f"asset cycle: {' -> '.join(cycle)}") from None

    def downstream(self, name: str) -> set[str]:
        """Every asset that depends on or reads ``name``, directly or not."""
        found: set[str] = set()
        frontier = {name}
        while frontier:
            frontier = {a.name for a in self._assets.values()
                        if (set(a.deps) | set(a.reads)) & frontier}
            frontier -= found
            found |= frontier
        return found


REGISTRY = Registry()
asset = REGISTRY.asset


def load_modules(modules: Iterable[str] = (), *, pipeline: bool = True) -> list[str]:
    """Import asset modules so their ``@asset`` declarations register; return their names.

    Each entry is a dotted module name or a path to a ``.py`` file. ``ASSET_MODULES`` are
    imported first when ``pipeline`` is true (codemill's own assets).
    """
    loaded: list[str] = []
    if pipeline:
        for mod in ASSET_MODULES:
            if importlib.util.find_spec(mod) is not None:
                importlib.import_module(mod)
                loaded.append(mod)
    for entry in modules:
        loaded.append(_import(entry))
    return loaded


def _import(entry: str) -> str:
    path = Path(entry)
    if entry.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FactoryError(f"asset module file not found: {entry}")
        resolved = path.resolve()
        name = "codemill_assets_" + "_".join(resolved.with_suffix("").parts[-3:])
        spec = importlib.util.spec_from_file_location(name, resolved)
        if spec is None or spec.loader is None:
            raise FactoryError(f"cannot import asset module file {entry}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        spec.loader.exec_module(module)
        return name
    try:
        importlib.import_module(entry)
    except ImportError as exc:
        raise FactoryError(f"cannot import asset module {entry!r}: {exc}") from exc
    return entry
