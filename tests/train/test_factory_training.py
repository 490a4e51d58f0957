"""Training through the factory on a real toy environment: expert SFT, then GRPO rounds
with the current weights, checkpoints recorded with lineage, reruns cached; and GRPO that
learns (patch mode): the weights change and the sampled reward rises."""

import json
import math

import pytest

from codemill.train.config import TrainConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ledger_home(tmp_path_factory, bwrap_ready):
    """A fresh home holding the toy environment and its task in the ledger (where the
    factory looks them up)."""
    from codemill.store.ledger import Ledger
    from codemill.store.rows import record_to_row
    from rewards.toyproject import make_toy, toy_settings

    home = tmp_path_factory.mktemp("train-home").absolute()
    settings = toy_settings(home)
    env, task = make_toy(home, settings)
    with Ledger.open(settings) as ledger:
        for table, record in (("environments", env), ("tasks", task)):
            with ledger.writer(table, run_id="setup", asset=table, config_hash="") as w:
                w.add(record_to_row(record))
    return settings, env, task


def test_sft_on_expert_data_then_grpo_rounds(ledger_home, tiny_dir):
    from codemill.factory.training import GrpoJob, SftJob, read_graded, train_grpo, train_sft
    from codemill.store.ledger import Ledger

    settings, env, task = ledger_home
    sft = train_sft(settings, SftJob(
        model=f"transformers:{tiny_dir}", data="expert", per_task=2,
        train=TrainConfig(steps=2, batch_size=2, lr=1e-3, threads=1, device="cpu",
                          lora=True, lora_r=4, lora_layers=1)))
    assert sft.data["resolved"] == 2 and sft.data["sequences"] == 2 and not sft.cached
    assert [m["step"] for m in sft.metrics] == [1, 2]

    steps = []
    job = GrpoJob(model=f"ckpt:{sft.checkpoint_id[:12]}", train=TrainConfig(
        steps=2, batch_size=1, group_size=2, max_new_tokens=6, max_turns=2, threads=1,
        device="cpu", lr=1e-3, max_draws=2))
    grpo = train_grpo(settings, job, on_step=steps.append)
    assert [m["step"] for m in steps] == [1, 2] and not grpo.cached
    for m in steps:
        # A random model never fixes the bug: every group is all-zero, so it is dropped and
        # replaced from the pool (dynamic sampling: the same task again, as a new group)
        # until max_draws * batch_size groups were drawn; the round makes no update.
        assert m["drawn_groups"] == 2 and m["dropped_groups"] == 2 and m["live_groups"] == 0
        assert m["attempts"] == 4 == m["scored"] + _unscored(m)
        assert m["reward_mean"] == 0.0 and m["loss"] is None and m["updates"] == 0
        # The loop's own time and the model's fit inside the rollouts' wall time.
        assert m["model_s"] > 0 and m["harness_s"] + m["model_s"] <= m["rollout_wall_s"]
    again = train_grpo(settings, job)
    assert again.cached and again.checkpoint_id == grpo.checkpoint_id

    with Ledger.open(settings) as ledger:
        rows = {r["kind"]: r for r in ledger.read("checkpoints").to_pylist()}
        # a run's start row says "running"; its finish row (same run id) the outcome
        runs = {r["run_id"]: r for r in ledger.read("runs").to_pylist()
                if r["command"].startswith("train ") and r["status"] != "running"}
        made = {r["run_id"]: r for r in ledger.read("materializations").to_pylist()
                if r["asset"] == "checkpoints"}
    # Each training job materializes the checkpoints asset: a runs row like every other
    # job's and a materializations row, holding its checkpoint row; the cached rerun is a
    # run of its own whose asset was cached, so it made no checkpoint and no row.
    assert len(rows) == 2 and len(made) == 2
    for kind in ("sft", "grpo"):
        run = runs[rows[kind]["run_id"]]
        assert run["command"] == f"train {kind}" and run["status"] == "success"
        assert made[run["run_id"]]["status"] == "success" and made[run["run_id"]]["rows"] == 1
    cached = [r for r in runs.values() if r["command"] == "train grpo"
              and json.loads(r["summary_json"])["checkpoints"]["status"] == "cached"]
    assert len(cached) == 1 and cached[0]["run_id"] != rows["grpo"]["run_id"]
    assert json.loads(rows["sft"]["data"]) == sft.data
    assert rows["sft"]["parent_id"] is None and rows["sft"]["lora"] is True
    assert rows["grpo"]["parent_id"] == sft.checkpoint_id
    assert rows["grpo"]["base_model"] == f"transformers:{tiny_dir}"  # the adapter's base
    assert json.loads(rows["grpo"]["task_ids"]) == [task.task_id]
    assert json.loads(rows["grpo"]["env_ids"]) == [env.env_id]
    assert json.loads(rows["grpo"]["snapshot_ids"]) == [env.snapshot_id]
    used = json.loads(rows["grpo"]["rollout_ids"])
    assert len(used) == 8  # 2 rounds x 2 draws x G
    graded = {g.rollout_id: g for g in read_graded(settings, used)}
    assert set(graded) == set(used) and all(g.trace is not None for g in graded.values())
    assert len(json.loads(rows["sft"]["rollout_ids"])) == 2


def test_sft_in_patch_mode_trains_on_graded_expert_answers(ledger_home, tiny_dir):
    """``SftJob(mode="patch")``: the gold patch as line edits of the prompt's listing,
    answered through the patch-mode rollout path, graded 1 by the real grader, and trained
    on until the tiny model answers the task itself (greedy, graded)."""
    from codemill.factory.train_data import read_graded, sample_policy
    from codemill.factory.training import SftJob, train_sft
    from codemill.train.policy import load_policy

    settings, env, task = ledger_home
    job = SftJob(model=f"transformers:{tiny_dir}", data="expert", mode="patch", train=TrainConfig(
        steps=80, batch_size=1, lr=3e-3, threads=1, device="cpu"))
    sft = train_sft(settings, job)
    assert sft.data["trajectories"] == 1 and sft.data["resolved"] == 1, sft.data
    [expert] = [g for g in read_graded(settings) if g.rollout_id in
                json.loads(_checkpoint_row(settings, sft.checkpoint_id)["rollout_ids"])]
    tok = load_policy(tiny_dir, TrainConfig(device="cpu")).tokenizer
    answer = tok.decode([i for i, m in zip(expert.trace.completion_ids, expert.trace.loss_mask,
                                           strict=True) if m], skip_special_tokens=True)
    assert answer.strip() == "2:     return a + b"  # the gold patch, as the prompt asks
    [greedy] = sample_policy(settings, f"ckpt:{sft.checkpoint_id}", [task],
                             {env.env_id: env}, temperature=0.0, max_new_tokens=24,
                             mode="patch")
    said = tok.decode(greedy.trace.completion_ids, skip_special_tokens=True)
    assert greedy.reward == 1.0, (said, [round(m["loss"], 3) for m in sft.metrics])
    assert train_sft(settings, job).cached  # same data and config: the same checkpoint
    # Another seed orders the training data otherwise but asks the scripted expert the
    # same question: its recorded answer and grade are reused, nothing is graded again.
    graded = len(read_graded(settings))
    reseeded = job.model_copy(update={"train": job.train.model_copy(
        update={"seed": 1, "steps": 1})})
    again = train_sft(settings, reseeded)
    assert not again.cached and len(read_graded(settings)) == graded
    assert expert.rollout_id in json.loads(
        _checkpoint_row(settings, again.checkpoint_id)["rollout_ids"])
    # The cache key holds the resolved task set, not the selection as typed: with another
    # set of validated tasks the same job is another materialization.
    from codemill.factory.checkpoints import job_inputs

    other = job.model_copy(update={"tasks": ("f" * 12,)})
    assert job_inputs(settings, job)["n_tasks"] == 1 and job_inputs(settings, other)["n_tasks"] == 0
    assert job_inputs(settings, job)["tasks"] != job_inputs(settings, other)["tasks"]
    # ... and the version of the prompt the data is made with: a new prompt is new data
    from codemill.rollouts.patch_mode import PATCH_MODE_VERSION
    from codemill.tasks.patch_context import CONTEXT_VERSION

    assert job_inputs(settings, job)["prompt"] == f"patch-{PATCH_MODE_VERSION}.{CONTEXT_VERSION}"
    agent = job.model_copy(update={"mode": "agent"})
    assert job_inputs(settings, agent)["prompt"] != job_inputs(settings, job)["prompt"]


def test_sft_with_reversals_adds_released_lines_of_the_tasks_projects(ledger_home, tiny_dir):
    """``SftJob(reversals=N)``: besides the graded expert answers, mutation reversals of the
    job's projects (``codemill.tasks.reversal``), each answering with a line of the
    snapshot as released; none from a project without a coverage map (said), and only in
    patch mode."""
    from pydantic import ValidationError

    from codemill.factory.training import SftJob, plan_sft
    from codemill.tasks.testbed import TestBed
    from codemill.train.policy import load_policy
    from rewards.toyproject import FILES

    settings, env, task = ledger_home
    job = SftJob(model=f"transformers:{tiny_dir}", data="expert", mode="patch", reversals=6,
                 train=TrainConfig(steps=1, batch_size=1, threads=1, device="cpu"))
    plain = plan_sft(settings, job.model_copy(update={"reversals": 0}), "plain")
    said: list[str] = []
    unmapped = plan_sft(settings, job, "unmapped", said.append)
    assert unmapped.data["reversals"] == 0 and unmapped.ckpt_id == plain.ckpt_id
    assert any("no coverage map" in m for m in said), said

    TestBed.from_env(env, settings.home, settings.sandbox).coverage_map()  # sandboxed run
    plan = plan_sft(settings, job, "mapped")
    assert 1 <= plan.data["reversals"] <= 6
    assert plan.data["sequences"] == plain.data["sequences"] + plan.data["reversals"]
    assert plan.ckpt_id != plain.ckpt_id  # other data, another checkpoint
    # one id, one model: trained in the order of the sequences' ids, whatever order the
    # ledger returned the expert answers and the reversals were made in
    assert [s.rollout_id for s in plan.seqs] == sorted(s.rollout_id for s in plan.seqs)
    tok = load_policy(tiny_dir, TrainConfig(device="cpu")).tokenizer
    released = FILES["src/calc/ops.py"].splitlines()
    expert_ids = {s.rollout_id for s in plain.seqs}
    for seq in plan.seqs:
        if seq.rollout_id in expert_ids:
            continue
        answer = tok.decode([i for i, m in zip(seq.ids, seq.mask, strict=True) if m],
                            skip_special_tokens=True).strip()
        n, text = answer.split(":", 1)
        assert text.strip() == released[int(n) - 1].strip(), answer
        prompt = tok.decode([i for i, m in zip(seq.ids, seq.mask, strict=True) if not m])
        assert "may fail" in prompt and "tests/test_ops.py::test_" in prompt
        assert released[int(n) - 1] not in prompt.split("Most suspicious lines:")[0]
    with pytest.raises(ValidationError, match="patch-mode"):
        SftJob(model=job.model, mode="agent", reversals=6)


def test_sft_prepared_here_and_trained_elsewhere_is_recorded_here(ledger_home, tiny_dir,
                                                                  tmp_path):
    """``train sft --prepare``: the data is made and graded here under a run of its own,
    the job's sequences and config go to a folder, ``python -m codemill.train.remote``
    trains them in a process that has no home, and the same job run here finds that
    checkpoint finished and records it with the remote run's metrics."""
    import shutil
    import subprocess
    import sys

    from codemill.factory.training import SftJob, plan_sft, prepare_sft, train_sft
    from codemill.store.ledger import Ledger
    from codemill.train.remote import read_prepared

    settings, env, task = ledger_home
    job = SftJob(model=f"transformers:{tiny_dir}", data="expert", mode="patch", train=TrainConfig(
        steps=3, batch_size=1, lr=1e-3, threads=1, device="cpu", lora=True, lora_r=4,
        lora_layers=1, seed=11))
    prepared = tmp_path / "prepared"
    plan = prepare_sft(settings, job, prepared)
    assert not plan.run_dir.exists()  # nothing trained here
    ckpt_id, cfg, manifest, seqs = read_prepared(prepared)
    again = plan_sft(settings, job, "read-only")
    assert (ckpt_id, cfg) == (again.ckpt_id, again.cfg) == (plan.ckpt_id, job.train)
    assert [(s.ids, s.mask, s.rollout_id) for s in seqs] == [
        (s.ids, s.mask, s.rollout_id) for s in again.seqs]
    assert manifest["checkpoint_id"] == ckpt_id and manifest["lora"] is True

    out = subprocess.run([sys.executable, "-m", "codemill.train.remote", str(prepared),
                          "--model", str(tiny_dir)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    remote = prepared / ckpt_id
    assert out.stdout.strip().splitlines()[-1] == str(remote)
    remote_metrics = json.loads((remote / "metrics.json").read_text())
    assert [m["step"] for m in remote_metrics] == [1, 2, 3]

    shutil.copytree(remote, plan.run_dir)
    result = train_sft(settings, job)
    assert result.checkpoint_id == ckpt_id and result.cached  # found finished, not retrained
    assert result.metrics == remote_metrics
    row = _checkpoint_row(settings, ckpt_id)
    assert json.loads(row["metrics"]) == remote_metrics and row["lora"] is True
    assert json.loads(row["task_ids"]) == [task.task_id]
    with Ledger.open(settings) as ledger:
        commands = [r["command"] for r in ledger.read("runs").to_pylist()
                    if r["status"] == "ok"]
    assert "train sft --prepare" in commands


def test_the_remote_trainer_refuses_a_folder_it_was_not_given(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "codemill.train.remote", str(tmp_path),
                          "--model", str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert "not a prepared SFT job" in line


def _checkpoint_row(settings, checkpoint_id):
    from codemill.store.ledger import Ledger

    with Ledger.open(settings) as ledger:
        return next(r for r in ledger.read("checkpoints").to_pylist()
                    if r["checkpoint_id"] == checkpoint_id)


def _unscored(metrics):
    """A round's attempts that have no reward, by reason (every one is counted)."""
    return sum(metrics["left_out"].get(k, 0) for k in ("masked", "ungraded", "failed"))


# Two ways to act on the toy task in patch mode: fix the bug (reward 1), or not (reward 0).
# Short replies, so the tiny model memorizes everything but the choice between them.
# (Agent-mode GRPO rounds through the factory are test_sft_on_expert_data_then_grpo_rounds;
# the learning check runs in patch mode only, to keep the suite within its time.)
WAYS = {"patch": (["```\n2:     return a + b\n```"], ["```\n2:     return a * b\n```"])}
TURNS, NEW_TOKENS, OBS = 3, 96, 1500
RECIPE = {"patch": {"lr": 1e-3, "steps": 10, "measure": 48}}
"""GRPO's learning rate and rounds, and the samples each measurement takes. A fresh AdamW's
first steps move every weight by about ``lr``: at 2e-3 the rounds overshot on transformers
5.24 (mean reward 0.53 before, 0.09 after: the memorized answer broke), at 1e-3 they move
it to the fix. Which samples succeed depends on the sampler's random stream (with the
Gumbel draw, 6 rounds gained +0.16 over 32 samples, under the fixed +0.2 asked before), so
the test asks for a gain that is both large and significant over 48 samples, after 10
rounds."""


def _acted(settings, env, task, tokenizer_dir, mode, name, replies):
    """``replies`` acted out on the task in ``mode`` through the real rollout path (agent
    loop and sandbox, or the patch prompt), recorded token-exactly (``TeacherBackend``),
    graded by the real grader."""
    from codemill.agent.config import AgentConfig
    from codemill.agent.models.scripted import ScriptedBackend
    from codemill.agent.models.teacher import TeacherBackend
    from codemill.core.records import SamplingConfig
    from codemill.rollouts.plan import RolloutConfig
    from codemill.rollouts.runner import run_rollouts

    sampling = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_tokens=NEW_TOKENS)
    agent = AgentConfig(max_turns=TURNS, max_tokens=TURNS * NEW_TOKENS, observation_limit=OBS,
                        sampling=sampling)
    model = TeacherBackend(ScriptedBackend(replies, name=name), tokenizer_dir, name=name)
    batch = run_rollouts([task], envs=[env], home=settings.home, settings=settings,
                         model=model, policy=f"scripted-{mode}-{name}", agent=agent,
                         config=RolloutConfig(group_size=1, sampling=sampling, mode=mode))
    [result] = batch.results
    return result


def _mean_reward(settings, model, task, env, mode):
    """The mean reward of sampled rollouts of ``model`` on the task (graded)."""
    from codemill.factory.train_data import sample_policy

    n = RECIPE[mode]["measure"]
    graded = sample_policy(settings, model, [task], {env.env_id: env}, group=n,
                           temperature=1.0, max_turns=TURNS, max_new_tokens=NEW_TOKENS,
                           observation_limit=OBS, seed=7, mode=mode)
    assert len(graded) == n and all(g.reward is not None for g in graded)
    return sum(g.reward for g in graded) / len(graded)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("mode", ["patch"])
def test_grpo_through_the_factory_changes_the_weights_and_raises_the_reward(
        ledger_home, tiny_dir, tmp_path, mode):
    """SFT on both ways of acting leaves the tiny model split between them; GRPO rounds
    through the factory (rollouts in ``mode`` with the current weights, the real grader,
    dynamic sampling) move it to the fix. Measured by sampling the policy before and
    after (``RECIPE``)."""
    import torch
    from safetensors.torch import load_file

    from codemill.factory.training import GrpoJob, recorded_pass_rates, train_grpo
    from codemill.train.data import from_trace
    from codemill.train.policy import load_policy
    from codemill.train.steps import sft_step

    settings, env, task = ledger_home
    good, bad = WAYS[mode]
    fixed = _acted(settings, env, task, tiny_dir, mode, "fix", good)
    not_fixed = _acted(settings, env, task, tiny_dir, mode, "no-fix", bad)
    assert fixed.reward.value == 1.0 and not_fixed.reward.value == 0.0
    policy = load_policy(tiny_dir, TrainConfig(lr=1e-2, micro_batch=2, threads=1,
                                               device="cpu"))
    seqs = [from_trace(r.trajectory.tokens) for r in (fixed, not_fixed)]
    for _ in range(150):
        m = sft_step(policy, seqs)
    # All but the choice memorized: each sequence pays about ln 2 there, little elsewhere.
    assert m["loss"] * m["loss_tokens"] < 2 * math.log(2) + 0.2, m
    split = tmp_path / "split"
    policy.model.save_pretrained(split)
    policy.tokenizer.save_pretrained(split)
    before = _mean_reward(settings, f"transformers:{split}", task, env, mode)
    # what GRPO knows of the task before its first round: the samples just recorded
    prior = recorded_pass_rates(settings, [f"transformers:{split}"], [task.task_id])
    n = RECIPE[mode]["measure"]
    assert prior == {task.task_id: (round(n * before), n)}

    rounds, said = [], []
    grpo = train_grpo(settings, GrpoJob(
        model=f"transformers:{split}", observation_limit=OBS, mode=mode, train=TrainConfig(
            steps=RECIPE[mode]["steps"], batch_size=1, group_size=8, lr=RECIPE[mode]["lr"],
            max_new_tokens=NEW_TOKENS, max_turns=TURNS, threads=1, device="cpu",
            max_len=4096)), on_step=rounds.append, say=said.append)
    assert [m["step"] for m in rounds] == list(range(1, RECIPE[mode]["steps"] + 1))
    # the first draw builds the task's patch context before sampling, and says so
    assert "draw 0.0: patch context 1/1" in said
    for m in rounds:
        assert m["attempts"] == 8 * m["drawn_groups"] == m["scored"] + _unscored(m)
        assert m["live_groups"] + m["dropped_groups"] == m["drawn_groups"]
        assert 0 < m["resident_gb"] <= m["peak_resident_gb"]  # the round's memory, logged
    made = [m for m in rounds if m["loss"] is not None]
    assert made and all(m["updates"] == 1 and m["live_groups"] == 1 for m in made)
    # The batched sampler and the trainer compute the same log-probs: ratio 1, nothing
    # capped or clipped.
    assert all(m["logp_gap_max"] < 1e-3 and m["is_capped_frac"] == 0.0 for m in made)

    old, new = load_file(split / "model.safetensors"), load_file(grpo.path / "model.safetensors")
    assert old.keys() == new.keys()
    assert any(not torch.equal(old[k], new[k]) for k in old)
    after = _mean_reward(settings, f"ckpt:{grpo.checkpoint_id}", task, env, mode)
    print(f"{mode}: mean reward before {before:.3f}, after {after:.3f}")  # shown by -rA
    pooled = (before + after) / 2  # one-sided two-proportion z-test, n samples each
    z = (after - before) / math.sqrt(2 * pooled * (1 - pooled) / n)
    assert 0.25 <= before <= 0.75 and after >= before + 0.15 and z > 1.645, (before, after, z)
