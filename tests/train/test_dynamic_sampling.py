"""Dynamic sampling (DAPO): a group whose rewards are all equal is replaced from the pool
until the batch is full; what a round drew, dropped, and left out is counted.

The sampler handed to ``collect_round`` here is a table: each task's rewards are fixed,
so which groups are live is known in advance and the counts can be checked exactly."""

import random

from codemill.core.records import TokenTrace
from codemill.train.config import TrainConfig
from codemill.train.grpo import Drawn, Sample, choose_tasks, collect_round, round_data

TRACE = TokenTrace(prompt_ids=(1,), completion_ids=(2, 3), loss_mask=(1, 1),
                   logprobs=(-1.0, -1.0))


class TableSampler:
    """G samples per task with the rewards ``table[task]`` gives (None = masked), the
    first ``failed`` attempts of a draw leaving no sample; records every draw."""

    def __init__(self, table, failed=0):
        self.table, self.failed, self.draws = table, failed, []

    def __call__(self, task_ids, draw):
        self.draws.append((draw, list(task_ids)))
        samples = []
        for task in task_ids:
            for i, r in enumerate(self.table[task]):
                samples.append(Sample(f"{draw}/{task}/{i}", task, f"{draw}/{task}", TRACE, r,
                                      status="masked" if r is None else "scored"))
        return Drawn(samples[self.failed:], self.failed)


def test_all_equal_groups_are_replaced_from_the_pool_until_the_batch_is_full():
    table = {"dead-a": [0.0] * 4, "dead-b": [1.0] * 4,
             "live-a": [1.0, 0.0, 0.0, 0.0], "live-b": [1.0, 1.0, 0.0, None],
             "live-c": [0.0, 1.0, 1.0, 1.0]}
    # The recorded pass rates put the dead tasks first (in range) and the live ones after
    # (rate 0 or 1 recorded: out of range), so the first draw is all dead.
    history = {"dead-a": (1, 2), "dead-b": (1, 2), "live-a": (0, 3), "live-b": (3, 3),
               "live-c": (0, 1)}
    cfg = TrainConfig(batch_size=2, group_size=4, max_draws=3)
    sampler = TableSampler(table)
    data, _ = collect_round(sorted(table), history, sampler, cfg, round_index=0)
    first, second = sampler.draws
    assert first[0] == "0.0" and sorted(first[1]) == ["dead-a", "dead-b"]
    assert second[0] == "0.1" and len(second[1]) == 2 and set(second[1]) < {
        "live-a", "live-b", "live-c"}
    assert data.drawn == 4 and data.dropped == 2 and data.dead_groups == 2
    assert data.groups - data.dead_groups == 2 == cfg.batch_size
    assert {s.rollout_id.split("/")[1] for s in data.seqs} == set(second[1])
    # every planned attempt is scored or counted: 4 groups x G = 16
    scored = sum(n for _, n in data.task_results.values())
    masked = int("live-b" in second[1])
    assert data.left_out == ({"masked": 1} if masked else {})
    assert data.attempts == 16 == scored + masked
    assert data.reward_mean == sum(r for t in sorted(first[1]) + second[1]
                                   for r in table[t] if r is not None) / scored


def test_a_round_stops_at_max_draws_and_counts_failed_attempts():
    # One task, always dead: the pool is walked again (new groups of the same task) until
    # max_draws * batch_size groups were drawn; attempts whose worker failed are counted.
    cfg = TrainConfig(batch_size=1, group_size=4, max_draws=3)
    sampler = TableSampler({"t": [0.0] * 4}, failed=1)
    data, _ = collect_round(["t"], {}, sampler, cfg, round_index=5)
    assert [d for d, _ in sampler.draws] == ["5.0", "5.1", "5.2"]
    assert data.drawn == 3 and data.dropped == 3 and not data.seqs
    assert data.attempts == 12 and data.left_out == {"failed": 3}
    assert data.task_results == {"t": [0, 9]}
    # max_draws=1 turns the refill off
    once = TableSampler({"t": [0.0] * 4})
    data, _ = collect_round(["t"], {}, once, cfg.model_copy(update={"max_draws": 1}), 0)
    assert len(once.draws) == 1 and data.drawn == 1 and data.dropped == 1


def test_tasks_inside_the_pass_rate_range_come_first_then_untried_ones():
    cfg = TrainConfig(pass_rate_low=0.0, pass_rate_high=1.0)
    history = {"never": (0, 8), "always": (8, 8), "some": (3, 8), "once": (1, 16)}
    pool = ["always", "never", "new", "some", "newer", "once"]
    for seed in range(5):  # whatever the shuffle
        order = choose_tasks(pool, history, 6, cfg, random.Random(seed))
        assert set(order[:2]) == {"some", "once"} and set(order[2:4]) == {"new", "newer"}
        assert set(order[4:]) == {"always", "never"}
    assert len(choose_tasks(pool, history, 3, cfg, random.Random(0))) == 3


def test_untried_first_puts_never_tried_tasks_before_the_ones_in_range():
    cfg = TrainConfig(task_order="untried_first")
    history = {"never": (0, 8), "always": (8, 8), "some": (3, 8), "once": (1, 16)}
    pool = ["always", "never", "new", "some", "newer", "once"]
    for seed in range(5):
        order = choose_tasks(pool, history, 6, cfg, random.Random(seed))
        assert set(order[:2]) == {"new", "newer"} and set(order[2:4]) == {"some", "once"}
        assert set(order[4:]) == {"always", "never"}


def test_format_reward_gives_a_signal_to_a_group_none_of_which_passes():
    # Four answers, none passing; two could not be used (no edit, or one that changes
    # nothing). Recorded rewards alone: a dead group. With format_reward the unusable ones
    # count less than the tried ones; the recorded rewards and reward_mean stay 0.
    stops = ["format_error", "submitted", "format_error", "submitted"]
    samples = [Sample(f"r{i}", "t", "g", TRACE, 0.0, stop) for i, stop in enumerate(stops)]
    plain = round_data(samples, TrainConfig(group_size=4))
    assert plain.dead_groups == 1 and not plain.seqs and plain.format_errors == 2
    shaped = round_data(samples, TrainConfig(group_size=4, format_reward=-0.5))
    assert shaped.dead_groups == 0 and shaped.reward_mean == 0.0 and shaped.format_errors == 2
    adv = {s.rollout_id: s.advantage for s in shaped.seqs}
    assert adv == {"r0": -0.25, "r1": 0.25, "r2": -0.25, "r3": 0.25}
    assert all(s.reward == 0.0 for s in samples)
