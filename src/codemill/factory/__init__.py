"""Layer 5: assets, the DAG, cache keys and executors; writes the ledger.

The public surface::

    from codemill.factory import asset, AssetContext, plan, materialize, make_executor

    @asset("environments", code_version="1", deps=("snapshots",))
    def environments(ctx: AssetContext): ...

    result = materialize(["environments"], {"environments": {"python": "3.11"}}, settings)
    result.raise_for_status()   # or inspect result.outcomes

The real pipeline's assets live in ``codemill.factory.pipeline`` (a module or package whose
import declares them); ``load_modules()`` imports it when present.

Importing this package is cheap: no pyiceberg, pyarrow or ray until a plan, a
materialization or a Ray executor needs them.
"""

from codemill.factory.asset import Asset, AssetContext, Side
from codemill.factory.cache import Plan, PlanStep, cache_key
from codemill.factory.executors import Executor, ItemError, LocalExecutor, make_executor
from codemill.factory.graph import REGISTRY, Registry, asset, load_modules
from codemill.factory.materialize import (
    AssetOutcome,
    MaterializeResult,
    materialize,
    plan,
)

__all__ = [
    "REGISTRY",
    "Asset",
    "AssetContext",
    "AssetOutcome",
    "Executor",
    "ItemError",
    "LocalExecutor",
    "MaterializeResult",
    "Plan",
    "PlanStep",
    "Registry",
    "Side",
    "asset",
    "cache_key",
    "load_modules",
    "make_executor",
    "materialize",
    "plan",
]
