"""What ``codemill eval`` calls: define suites, evaluate variants, compare, judge.

Every write goes through ``materialize`` (the ``suites``, ``evals``, ``judgments`` and
``vibe_checks`` assets, loaded from ``graph.ASSET_MODULES``), so each is recorded with
its cache key and a repeat is a cache hit. Reads come back as plain rows for the CLI and the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codemill.core.config import Settings
from codemill.core.errors import FactoryError
from codemill.evals.compare import Comparison, compare
from codemill.evals.judge import Agreement, agreement
from codemill.evals.measures import VariantScore, score
from codemill.evals.suites import SuiteRunConfig, SuiteSelection, SuiteSpec
from codemill.factory import eval_inputs as inputs
from codemill.factory.evaluation import eval_config
from codemill.factory.graph import REGISTRY, load_modules
from codemill.factory.materialize import MaterializeResult, materialize

ProgressFn = Callable[[str, int, "int | None"], None]


def _read(settings: Settings) -> Any:
    from codemill.store.ledger import Ledger

    ledger = Ledger.open(settings)
    return ledger, inputs.ledger_reader(ledger)


def _run(asset: str, cfg: dict[str, Any], settings: Settings, command: str,
         progress: ProgressFn | None = None) -> MaterializeResult:
    load_modules()  # codemill's assets (graph.ASSET_MODULES)
    result = materialize([asset], {asset: cfg}, settings, registry=REGISTRY, command=command,
                         progress=progress)
    outcome = result.outcomes[asset]
    if outcome.status == "failed":
        raise FactoryError(f"{asset}: {outcome.error}")
    return result


def define_suite(settings: Settings, name: str, version: str, selection: SuiteSelection,
                 run: SuiteRunConfig, description: str = "") -> SuiteSpec:
    """Record suite ``name@version`` (a repeat with the same definition is cached)."""
    cfg = {"name": name, "version": version, "selection": selection.model_dump(mode="json"),
           "run": run.model_dump(mode="json"), "description": description}
    _run("suites", cfg, settings, f"eval suite {name}@{version}")
    return get_suite(settings, f"{name}@{version}")


def get_suite(settings: Settings, ref: str) -> SuiteSpec:
    ledger, read = _read(settings)
    with ledger:
        return inputs.find_suite(read, ref)


@dataclass
class EvalResult:
    eval_id: str
    suite: SuiteSpec
    variant: str
    samples: list[dict[str, Any]]
    score: VariantScore
    contamination: dict[str, Any]
    status: str
    """``success`` (ran now) or ``cached`` (evaluated before: nothing ran)."""


def evaluate(settings: Settings, suite_ref: str, variant: str, *,
             allow_contaminated: bool = False, progress: ProgressFn | None = None
             ) -> EvalResult:
    """Evaluate ``variant`` on the suite, or return the recorded eval (cache hit)."""
    cfg = eval_config(settings, suite_ref, variant, allow_contaminated)
    result = _run("evals", cfg, settings, f"eval run {cfg['variant']}", progress)
    loaded = load_eval(settings, cfg["eval_id"], status=result.outcomes["evals"].status)
    if loaded.status == "success":
        _track(settings, loaded, cfg.get("checkpoint_id"))
    return loaded


def _track(settings: Settings, result: EvalResult, checkpoint_id: str | None) -> None:
    """An eval that ran now also goes to TensorBoard (``codemill.train.tracking``): a
    checkpoint's beside its training curve, at its last training step; another model's in
    its own directory at step 0. Skipped without the ``tensorboard`` package (evals run
    without the ``train`` extra)."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        return
    from codemill.train.tracking import logdir, tensorboard_scalars

    step = 0
    if checkpoint_id:
        ledger, read = _read(settings)
        with ledger:
            rows = read("checkpoints", row_filter=f"checkpoint_id == '{checkpoint_id}'")
        step = max((int(r.get("step") or 0) for r in rows), default=0)
    sc = result.score
    metrics: dict[str, Any] = {"step": step, "pass@1": sc.pass1.value,
                               "masked_rate": sc.masked_rate}
    metrics.update({f"pass@{p.k}": p.value for p in sc.pass_k[1:]})
    with tensorboard_scalars(logdir(settings.home, checkpoint_id or result.variant),
                             f"eval/{result.suite.name}") as log:
        log(metrics)


def load_eval(settings: Settings, eval_id: str, status: str = "cached") -> EvalResult:
    ledger, read = _read(settings)
    with ledger:
        metrics = read("evals", row_filter=f"eval_id == '{eval_id}'")
        samples = read("eval_samples", row_filter=f"eval_id == '{eval_id}'")
        if not metrics:
            raise FactoryError(f"no eval {eval_id[:12]} recorded")
        suite = inputs.find_suite(read, samples[0]["suite_id"] if samples else
                                  metrics[0]["suite"])
    dedup = {(s["task_id"], s["sample_index"]): s for s in samples}
    rows = sorted(dedup.values(), key=lambda s: (s["task_id"], s["sample_index"]))
    detail = next(json_of(m["details"]) for m in metrics if m["metric"] == "pass@1")
    return EvalResult(eval_id, suite, metrics[0]["policy"], rows, score(rows, suite.run.k),
                      detail.get("contamination", {}), status)


def json_of(text: str | None) -> dict[str, Any]:
    import json

    return json.loads(text or "{}")


def compare_variants(settings: Settings, suite_ref: str, a: str, b: str, *,
                     allow_contaminated: bool = False,
                     progress: ProgressFn | None = None) -> tuple[EvalResult, EvalResult,
                                                                   Comparison]:
    """Evaluate both variants (cached when done before) and compare them paired."""
    ea = evaluate(settings, suite_ref, a, allow_contaminated=allow_contaminated,
                  progress=progress)
    eb = evaluate(settings, suite_ref, b, allow_contaminated=allow_contaminated,
                  progress=progress)
    return ea, eb, compare(ea.variant, ea.samples, eb.variant, eb.samples)


def judge_eval(settings: Settings, eval_id: str, judge: str,
               progress: ProgressFn | None = None) -> tuple[list[dict[str, Any]], Agreement]:
    """Judge an eval's attempts (each once per judge and rubric); rows and agreement."""
    _run("judgments", {"eval_id": eval_id, "judge": judge}, settings,
         f"eval judge {judge}", progress)
    ledger, read = _read(settings)
    with ledger:
        ids = {s["rollout_id"] for s in
               read("eval_samples", row_filter=f"eval_id == '{eval_id}'")}
        rows = [j for j in read("judgments", row_filter=f"judge == '{judge}'")
                if j["rollout_id"] in ids]
    dedup = list({j["judgment_id"]: j for j in rows}.values())
    return dedup, agreement(judge, dedup)


def evaluate_checkpoints(settings: Settings, suite_ref: str, *,
                         progress: ProgressFn | None = None
                         ) -> list[tuple[str, EvalResult | str]]:
    """Materialize the eval of every recorded checkpoint on the suite: new checkpoints
    run, evaluated ones are cache hits, contaminated ones are refused (the reason is
    returned in place of a result)."""
    ledger, read = _read(settings)
    with ledger:
        ids = sorted({r["checkpoint_id"] for r in read("checkpoints",
                                                       columns=["checkpoint_id"])})
    out: list[tuple[str, EvalResult | str]] = []
    for cid in ids:
        try:
            out.append((cid, evaluate(settings, suite_ref, f"ckpt:{cid}", progress=progress)))
        except FactoryError as exc:
            out.append((cid, str(exc)))
    return out


def vibe_check(settings: Settings, env_prefix: str, variants: list[str], *,
               judge: str = "heuristic", n_functions: int = 2, seed: int = 0,
               max_turns: int = 6, max_tokens: int = 256,
               progress: ProgressFn | None = None) -> list[dict[str, Any]]:
    """Each variant answers the vibe-check requests of one environment (see
    ``codemill.factory.vibing``); the rows of this environment and these variants."""
    ledger, read = _read(settings)
    with ledger:
        envs = sorted({r["env_id"] for r in read("environments", columns=["env_id"])
                       if r["env_id"].startswith(env_prefix)})
    if len(envs) != 1:
        raise FactoryError(f"{len(envs) or 'no'} environment(s) match {env_prefix!r}")
    cfg = {"env_id": envs[0], "variants": list(variants), "judge": judge,
           "n_functions": n_functions, "seed": seed, "max_turns": max_turns,
           "max_tokens": max_tokens}
    _run("vibe_checks", cfg, settings, "eval vibes", progress)
    ledger, read = _read(settings)
    with ledger:
        rows = read("vibe_checks", row_filter=f"env_id == '{envs[0]}'")
    return list({r["vibe_id"]: r for r in rows if r["variant"] in variants}.values())
