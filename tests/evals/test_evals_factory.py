"""Evals through the factory on the toy project: real sandboxes, real grading, a real
ledger. Suites, cached evals, paired comparison, judges that never touch rewards, and the
contamination guard on checkpoint rows written through the factory."""

from __future__ import annotations

import json

import pytest

from codemill.core.errors import FactoryError
from codemill.evals.suites import SuiteRunConfig, SuiteSelection
from codemill.factory import eval_api
from codemill.store.ledger import Ledger
from tiny_models import word_level_llama

from .conftest import seed

RUN = SuiteRunConfig(k=2, max_turns=3, max_tokens=64, temperature=0.5, seed=3,
                     wall_time_s=120)


def _rows(settings, table):
    with Ledger.open(settings) as ledger:
        return ledger.read(table).to_pylist()


def test_suite_eval_cache_compare_and_judge(world):
    settings, _snap, tasks = world
    suite = eval_api.define_suite(settings, "toy", "1", SuiteSelection(), RUN)
    assert {t.task_id for t in suite.tasks} == {t.task_id for t in tasks}
    assert {t.project for t in suite.tasks} == {"calc"}
    # the same definition again is a cache hit; other members under the same version refused
    assert eval_api.define_suite(settings, "toy", "1", SuiteSelection(), RUN) == suite
    with pytest.raises(FactoryError, match="already defined"):
        eval_api.define_suite(settings, "toy", "1", SuiteSelection(limit=1), RUN)

    oracle = eval_api.evaluate(settings, "toy", "oracle")
    assert oracle.status == "success" and len(oracle.samples) == 4
    assert oracle.score.pass1.successes == 4 and oracle.score.masked == 0
    assert oracle.score.pass_k[1].value == 1.0
    assert oracle.contamination["lineage_known"] is False
    rollouts_after_first = len(_rows(settings, "rollouts"))
    again = eval_api.evaluate(settings, "toy@1", "oracle")
    assert again.status == "cached" and again.samples == oracle.samples
    assert len(_rows(settings, "rollouts")) == rollouts_after_first  # nothing ran twice

    a, b, cmp = eval_api.compare_variants(settings, "toy", "scripted:submit", "oracle")
    assert a.score.pass1.successes == 0 and b.status == "cached"
    assert (cmp.pairs, cmp.only_a, cmp.only_b) == (4, 0, 4)
    assert cmp.diff == 1.0 and len(cmp.flips) == 2
    assert cmp.p_value == pytest.approx(2 / 16)

    rewards_before = sorted(_rows(settings, "rewards"), key=lambda r: r["reward_id"])
    judged, agree = eval_api.judge_eval(settings, oracle.eval_id, "heuristic")
    judged_a, agree_a = eval_api.judge_eval(settings, a.eval_id, "heuristic")
    assert len(judged) == 4 and all(j["overall"] is not None for j in judged)
    assert all(set(json.loads(j["scores"])) == {"correctness_argument", "minimality",
                                                 "readability", "explanation"}
               for j in judged)
    assert agree.n == 4 and agree.agree.successes == 4  # oracle patches: pass/resolved
    assert agree_a.confusion["fail/unresolved"] == 4  # empty diffs
    assert sorted(_rows(settings, "rewards"), key=lambda r: r["reward_id"]) == rewards_before
    n_judgments = len(_rows(settings, "judgments"))
    eval_api.judge_eval(settings, oracle.eval_id, "heuristic")
    assert len(_rows(settings, "judgments")) == n_judgments  # judged once per judge


def test_checkpoint_evals_are_guarded_by_lineage(world):
    settings, snap, tasks = world
    eval_api.define_suite(settings, "toy", "1", SuiteSelection(), RUN)
    ckpt = {"checkpoint_id": "c0ffee" + "0" * 58, "kind": "sft", "base_model": "smollm2",
            "parent_id": None, "path": "/nonexistent", "lora": False, "step": 1,
            "task_ids": json.dumps([tasks[0].task_id]), "snapshot_ids": "[]",
            "env_ids": "[]", "rollout_ids": "[]", "config_hash": "x", "config": "{}",
            "metrics": "[]"}
    child = {**ckpt, "checkpoint_id": "beef" + "1" * 60, "kind": "grpo",
             "parent_id": ckpt["checkpoint_id"], "task_ids": "[]"}
    seed(settings, {"checkpoints": [ckpt, child]})
    with pytest.raises(FactoryError, match="refused: contaminated: 1 suite task"):
        eval_api.evaluate(settings, "toy", "ckpt:beef")
    assert _rows(settings, "eval_samples") == []
    # evaluating every checkpoint: both refused (the parent trained on a suite task)
    results = eval_api.evaluate_checkpoints(settings, "toy")
    assert [r for _, r in results if not isinstance(r, str)] == []
    assert all("contaminated" in r for _, r in results)



def test_a_suite_shows_the_agent_observations_cut_at_its_limit(world, tmp_path):
    """The suite's observation limit is what its attempts' agent saw: a command printing
    ~24 kB comes back cut to the limit, head and tail kept, in the recorded steps."""
    settings, _snap, _tasks = world
    replies = tmp_path / "long-output.json"
    replies.write_text(json.dumps(["```bash\nseq 1 5000\n```", '<tool name="submit"></tool>']))
    run = SuiteRunConfig(k=1, max_turns=3, max_tokens=64, wall_time_s=120,
                         observation_limit=300)
    eval_api.define_suite(settings, "terse", "1", SuiteSelection(limit=1), run)
    result = eval_api.evaluate(settings, "terse", f"scripted:{replies}")
    assert result.status == "success" and len(result.samples) == 1
    ids = {s["rollout_id"] for s in result.samples}
    shown = [json.loads(r["observations"]) for r in _rows(settings, "steps")
             if r["rollout_id"] in ids and r["step_index"] == 0]
    assert len(shown) == 1
    text = shown[0][0]["content"]
    assert "\n1\n" in f"\n{text}" and "5000" in text  # head and tail kept
    assert "\n2500\n" not in text and len(text) <= 300  # the middle cut at the limit


def test_each_new_checkpoint_gets_its_eval_once(world, tmp_path):
    settings, _snap, _tasks = world
    run = SuiteRunConfig(k=1, max_turns=2, max_tokens=8, wall_time_s=120)
    eval_api.define_suite(settings, "toy", "1", SuiteSelection(), run)
    weights = str(word_level_llama(tmp_path / "ckpt"))
    row = {"kind": "sft", "base_model": "transformers:tiny", "parent_id": None,
           "path": weights, "lora": False, "step": 1, "task_ids": "[]",
           "snapshot_ids": "[]", "env_ids": "[]", "rollout_ids": "[]", "config": "{}",
           "metrics": "[]"}
    seed(settings, {"checkpoints": [{**row, "checkpoint_id": "d1" * 32}]})
    first = eval_api.evaluate_checkpoints(settings, "toy")
    assert [(c[:4], r.status) for c, r in first] == [("d1d1", "success")]
    assert first[0][1].variant == "ckpt:" + "d1" * 32 and len(first[0][1].samples) == 2
    assert first[0][1].score.graded + first[0][1].score.masked == 2
    # a second checkpoint arrives: only it runs; the first is a cache hit
    seed(settings, {"checkpoints": [{**row, "checkpoint_id": "e2" * 32, "step": 2,
                                     "parent_id": "d1" * 32}]})
    second = dict(eval_api.evaluate_checkpoints(settings, "toy"))
    assert second["d1" * 32].status == "cached" and second["e2" * 32].status == "success"
    assert len({r["rollout_id"] for r in _rows(settings, "eval_samples")}) == 4
    third = dict(eval_api.evaluate_checkpoints(settings, "toy"))
    assert {r.status for r in third.values()} == {"cached"}


def test_attempts_graded_under_other_rules_are_regraded_not_resampled(world, toy, tmp_path):
    """A ledger holding recorded attempts whose rewards came from another harness version
    (here: stale zeros): the eval grades those attempts again from their rows, under
    today's rules, and samples nothing new."""
    from codemill.core.config import CatalogConfig
    from codemill.rewards.config import HARNESS_VERSION

    settings, snap, tasks = world
    run = SuiteRunConfig(k=1, max_turns=3, max_tokens=64, wall_time_s=120)
    eval_api.define_suite(settings, "toy", "1", SuiteSelection(), run)
    first = eval_api.evaluate(settings, "toy", "oracle")
    assert first.score.pass1.successes == 2

    def rows(table):
        meta = ("run_id", "code_version", "created_at")
        return [{k: v for k, v in r.items() if k not in meta} for r in _rows(settings, table)]

    wh = tmp_path / "other-warehouse"
    wh.mkdir()
    other = settings.model_copy(update={"catalog": CatalogConfig(
        uri=f"sqlite:///{tmp_path / 'other.db'}", warehouse=wh.as_uri())})
    stale = [{**r, "harness_version": "codemill-grade-0", "value": 0.0, "resolved": False}
             for r in rows("rewards")]
    seed(other, {"snapshots": [snap], "environments": [toy.env], "tasks": tasks,
                 "rollouts": rows("rollouts"), "steps": rows("steps"), "rewards": stale})
    eval_api.define_suite(other, "toy", "1", SuiteSelection(), run)
    again = eval_api.evaluate(other, "toy", "oracle")
    assert again.status == "success" and again.score.pass1.successes == 2
    assert sorted(r["rollout_id"] for r in _rows(other, "rollouts")) == sorted(
        r["rollout_id"] for r in _rows(settings, "rollouts"))  # nothing resampled
    current = [r for r in _rows(other, "rewards") if r["harness_version"] == HARNESS_VERSION]
    assert len(current) == 2 and all(r["value"] == 1.0 for r in current)


def test_a_patch_mode_eval_reports_its_contexts_before_its_attempts(world):
    """A new patch-mode suite first builds each task's context (a covered sandbox run,
    minutes for a real suite): that phase is reported, then the attempts."""
    settings, _snap, tasks = world
    run = SuiteRunConfig(k=1, max_turns=1, max_tokens=64, mode="patch", wall_time_s=120)
    eval_api.define_suite(settings, "toy-patch", "1", SuiteSelection(), run)
    seen: list[tuple[str, int, int | None]] = []
    result = eval_api.evaluate(settings, "toy-patch", "oracle",
                               progress=lambda name, done, total: seen.append((name, done,
                                                                               total)))
    assert result.status == "success" and result.score.graded == len(tasks)
    contexts = [s for s in seen if s[0] == "evals (contexts)"]
    attempts = [s for s in seen if s[0] == "evals" and s[1] > 0]
    assert [d for _, d, _ in contexts] == list(range(1, len(tasks) + 1))
    assert {t for _, _, t in contexts} == {len(tasks)}
    assert seen.index(contexts[-1]) < seen.index(attempts[0])
