"""Patch mode on the toy task: the context measured in the broken state (sandboxed), one
model turn read as an edit, graded by the real grader; malformed answers are graded zeros."""

from __future__ import annotations

import pytest

from codemill.agent.models.scripted import ScriptedBackend
from codemill.core.diffs import file_diff
from codemill.core.ids import content_id
from codemill.core.records import SamplingConfig, StopReason
from codemill.rollouts.patch_mode import (
    PATCH_MODE_VERSION,
    expert_answer,
    listing,
    patch_prompt,
    read_answer,
)
from codemill.rollouts.plan import RolloutConfig, plan_rollouts
from codemill.rollouts.runner import run_rollouts
from codemill.tasks.patch_context import PatchContext, Snippet, task_patch_context
from codemill.tasks.testbed import TestBed
from rewards.toyproject import BROKEN_OPS, HIDDEN_TEST

FIX = "2:     return a + b"
PATCH = RolloutConfig(group_size=1, mode="patch")


@pytest.fixture(scope="module")
def context(toy):
    bed = TestBed.from_env(toy.env, toy.home, toy.settings.sandbox)
    return task_patch_context(bed, toy.task, use_cache=False)


def run(toy, reply, config=PATCH):
    model = ScriptedBackend(lambda messages, tools: reply, name="scripted:patch")
    batch = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                         model=model, config=config)
    [result] = batch.results
    return result


def test_context_is_the_broken_code_the_failing_tests_reach_and_nothing_of_the_fix(toy,
                                                                                  context):
    assert context.error is None
    [snippet] = context.snippets  # only add() runs in the failing tests; sub/mul do not
    assert (snippet.path, snippet.start, snippet.name) == ("src/calc/ops.py", 1, "add")
    assert snippet.lines == ("def add(a, b):", "    return a - b")
    assert context.files["src/calc/ops.py"] == BROKEN_OPS
    assert "FAILED tests/test_ops.py::test_add" in context.failing_output
    assert "assert" in context.failing_output
    prompt = patch_prompt(toy.task.problem_statement, context)
    assert toy.task.problem_statement.strip() in prompt
    assert context.failing_output in prompt and "1: def add(a, b):" in prompt
    assert "2:     return a - b" in prompt
    assert "a + b" not in prompt  # the gold line
    for line in HIDDEN_TEST.splitlines():
        if len(line.strip()) > 6:
            assert line.strip() not in prompt  # the hidden test's code
    # the top function's most suspicious line is marked, and survives the cache's JSON
    assert context.marked == (("src/calc/ops.py", 2),)
    # repeated with its text, so a one-line fix is a near-copy of the line above the ask
    assert "Most suspicious lines:\nsrc/calc/ops.py\n2:     return a - b\n" in prompt
    assert PatchContext.from_json(context.to_json()) == context


def test_marking_can_be_turned_off(toy):
    from codemill.tasks.patch_context import PatchContextConfig

    bed = TestBed.from_env(toy.env, toy.home, toy.settings.sandbox)
    plain = task_patch_context(bed, toy.task, PatchContextConfig(max_marked=0),
                               use_cache=False)
    assert plain.error is None and plain.marked == ()
    assert "Most suspicious" not in patch_prompt(toy.task.problem_statement, plain)


def test_suspects_rank_the_function_holding_the_fix_first(toy):
    from codemill.evals.locate import edited_lines
    from codemill.tasks.patch_context import broken_state, suspects

    bed = TestBed.from_env(toy.env, toy.home, toy.settings.sandbox)
    found = suspects(bed, broken_state(bed, toy.task), toy.task.fail_to_pass)
    top = found.ranked[0]
    assert (top.path, top.name, top.start, top.end, top.focus) == ("src/calc/ops.py", "add",
                                                                   1, 2, 2)
    assert top.score == 1.0  # run by every failing test and by no passing one
    assert top.hot == (2,)  # the def line runs at import, which belongs to no test
    assert edited_lines(toy.task.gold_patch) == {("src/calc/ops.py", 2)}
    assert found.texts["src/calc/ops.py"] == BROKEN_OPS


def test_correct_line_edit_earns_one_through_the_real_grader(toy):
    r = run(toy, f"Here is the fix:\n```\n{FIX}\n```")
    traj = r.trajectory
    assert traj.stop_reason == StopReason.SUBMITTED and traj.error is None
    assert len(traj.steps) == 1 and "1: def add(a, b):" in traj.task_prompt
    assert "+    return a + b" in traj.diff and "-    return a - b" in traj.diff
    assert r.reward.value == 1.0 and r.reward.resolved and not r.reward.masked


def test_expert_answer_of_the_gold_patch_earns_one(toy, context):
    answer = expert_answer(context, toy.task.gold_patch)
    assert answer == FIX
    assert run(toy, answer).reward.value == 1.0


def test_search_replace_block_earns_one(toy):
    # ``return a - b`` alone is in add() and sub(): the block must say which one
    reply = ("src/calc/ops.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n=======\n"
             "def add(a, b):\n    return a + b\n>>>>>>> REPLACE\n")
    config = RolloutConfig(group_size=1, mode="patch", answer_format="search_replace")
    r = run(toy, reply, config)
    assert "SEARCH" in r.trajectory.task_prompt
    assert r.trajectory.stop_reason == StopReason.SUBMITTED
    assert r.reward.value == 1.0


@pytest.mark.parametrize(("reply", "stop", "error"), [
    ("2:     return a * b", StopReason.SUBMITTED, None),  # well formed, wrong: graded 0
    ("The bug is in add; it subtracts.", StopReason.FORMAT_ERROR, "no `N: text` line"),
    ("7:     return a + b", StopReason.FORMAT_ERROR, "line 7 is not in the listing"),
    ("2:     return a - b", StopReason.FORMAT_ERROR, "changes nothing"),
    # a changed comment or a line's trailing space is no edit a test could see
    ("2:     return a - b  # add", StopReason.FORMAT_ERROR, "but comments or whitespace"),
    ("2:     return a - b   ", StopReason.FORMAT_ERROR, "but comments or whitespace"),
    ("2:     return a-b", StopReason.FORMAT_ERROR, "but comments or whitespace"),
    ("2:     return (a - b", StopReason.SUBMITTED, None),  # breaks the file: a change
    ("<<<<<<< SEARCH\nreturn a / b\n=======\nreturn a + b\n>>>>>>> REPLACE",
     StopReason.FORMAT_ERROR, "SEARCH text not found"),
])
def test_wrong_or_malformed_answer_is_a_graded_zero_with_its_reason(toy, reply, stop, error):
    r = run(toy, reply)
    assert r.trajectory.stop_reason == stop
    if error is None:
        assert r.trajectory.error is None and r.trajectory.diff
    else:
        assert error in r.trajectory.error and r.trajectory.diff == ""
    assert r.reward is not None and r.reward.value == 0.0 and not r.reward.masked
    assert r.reward.resolved is False


def test_a_failing_model_is_masked_not_zero(toy):
    def boom(messages, tools):
        raise RuntimeError("endpoint down")

    batch = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                         model=ScriptedBackend(boom), config=PATCH)
    [r] = batch.results
    assert r.trajectory.stop_reason == StopReason.MODEL_ERROR
    assert r.reward.masked and r.reward.value is None and r.reward.error_type == "infra:model"


def test_patch_ids_differ_from_agent_ids_which_are_unchanged(toy):
    sampling = SamplingConfig(temperature=1.0, seed=0)
    [agent] = plan_rollouts([toy.task], "p", RolloutConfig(group_size=1, sampling=sampling))
    [patch] = plan_rollouts([toy.task], "p", RolloutConfig(group_size=1, sampling=sampling,
                                                           mode="patch"))
    assert agent.rollout_id == content_id("rollout", toy.task.task_id, "p", sampling, 0)
    assert agent.group_id == content_id("group", toy.task.task_id, "p", sampling)
    assert patch.rollout_id != agent.rollout_id and patch.group_id != agent.group_id
    assert patch.mode == "patch"
    # the default listing keeps the ids made before the listing could be shortened
    assert patch.rollout_id == content_id("rollout", toy.task.task_id, "p", sampling, 0,
                                          "patch", "lines", PATCH_MODE_VERSION)
    [short] = plan_rollouts([toy.task], "p", RolloutConfig(
        group_size=1, sampling=sampling, mode="patch", listing_functions=1))
    assert short.rollout_id != patch.rollout_id and short.group_id != patch.group_id


def test_a_shorter_listing_is_its_own_context_and_grades_the_same(toy):
    res = run(toy, FIX, PATCH.model_copy(update={"listing_functions": 1}))
    assert res.reward is not None and res.reward.value == 1.0
    cached = sorted(p.name for p in (toy.home / "cache" / "patch_context").glob(
        f"{toy.task.task_id}-*"))
    assert any(n.endswith("-max_functions1.json") for n in cached), cached


# --- the answer reader on a two-file listing (no sandbox) -------------------------------

A = "def f(x):\n    if x:\n        return 1\n    return 0\n"
B = "import os\n\n\ndef g(y):\n    return y\n"
TWO = PatchContext(task_id="t", snippets=(Snippet("pkg/a.py", 1, tuple(A.splitlines())),
                                          Snippet("pkg/b.py", 4, ("def g(y):", "    return y"))),
                   files={"pkg/a.py": A, "pkg/b.py": B})


def test_listing_names_each_file_then_numbered_lines():
    assert listing(TWO) == ("pkg/a.py\n1: def f(x):\n2:     if x:\n3:         return 1\n"
                            "4:     return 0\npkg/b.py\n4: def g(y):\n5:     return y")


def test_line_edits_keep_indentation_insert_and_delete():
    # a replacement keeps the line's indent; an added line is taken as written
    got = read_answer("3: return 2\n3: # two\n", TWO)
    assert got.ok and "+        return 2\n+# two\n" in got.diff
    assert "pkg/a.py" in got.diff and "pkg/b.py" not in got.diff
    assert read_answer("5: return -y", TWO).diff.count("+    return -y") == 1  # only in b.py
    deleted = read_answer("2:\n3:", TWO)
    assert deleted.ok and "-    if x:" in deleted.diff and "-        return 1" in deleted.diff


def test_a_line_number_in_two_files_needs_the_file_named():
    assert "several listed files" in read_answer("4: return 9", TWO).error
    named = read_answer("pkg/b.py\n4: def g(z):", TWO)
    assert named.ok and "+def g(z):" in named.diff and "a/pkg/b.py" in named.diff


def test_search_text_must_be_unique():
    twice = PatchContext(task_id="t", snippets=TWO.snippets,
                         files={"pkg/a.py": A, "pkg/b.py": "def g(y):\n    return 0\n"})
    reply = "<<<<<<< SEARCH\n    return 0\n=======\n    return 2\n>>>>>>> REPLACE\n"
    assert read_answer(reply, TWO).ok
    assert read_answer(reply, twice).error == (
        "SEARCH text occurs more than once")


@pytest.mark.parametrize("new_a", [
    A.replace("return 1", "return 2"),                          # one line
    A.replace("    if x:\n", "    if x > 0:\n    # positive\n"),  # replace and insert
    A.replace("        return 1\n", ""),                        # delete
    A.replace("    return 0\n", "    return 0\n    del x\n"),      # pure insertion
])
def test_expert_answer_reads_back_as_the_gold_change(new_a):
    gold = file_diff("pkg/a.py", A.encode(), new_a.encode())
    answer = expert_answer(TWO, gold)
    assert answer is not None and answer.startswith("pkg/a.py\n")
    assert read_answer(answer, TWO).diff == gold


def test_no_expert_answer_for_a_line_the_listing_does_not_show():
    gold = file_diff("pkg/b.py", B.encode(), B.replace("import os", "import sys").encode())
    assert expert_answer(TWO, gold) is None


def test_a_suite_records_its_mode_and_agent_suites_keep_their_ids():
    from codemill.evals.suites import SuiteRunConfig, SuiteSelection, SuiteTask, make_suite

    member = SuiteTask(task_id="t1", env_id="e", project="p", kind="synth",
                       difficulty="easy", strength="strong")
    agent = SuiteRunConfig()
    legacy = {k: v for k, v in agent.model_dump(mode="json").items()  # before modes
              if k not in ("mode", "answer_format", "listing_functions", "observation_limit")}
    made = make_suite("s", "1", [member], SuiteSelection(), agent)
    assert made.suite_id == content_id("suite", "s", "1", ["t1"], legacy)
    patch = make_suite("s", "1", [member], SuiteSelection(), SuiteRunConfig(mode="patch"))
    sr = make_suite("s", "1", [member], SuiteSelection(),
                    SuiteRunConfig(mode="patch", answer_format="search_replace"))
    short = make_suite("s", "1", [member], SuiteSelection(),
                       SuiteRunConfig(mode="patch", listing_functions=1))
    terse = make_suite("s", "1", [member], SuiteSelection(),
                       SuiteRunConfig(observation_limit=1500))
    assert len({made.suite_id, patch.suite_id, sr.suite_id, short.suite_id,
                terse.suite_id}) == 5
    assert '"observation_limit":1500' in terse.row()["run_config"]
    before = {k: v for k, v in SuiteRunConfig(mode="patch").model_dump(mode="json").items()
              if k not in ("listing_functions", "observation_limit")}  # before those settings
    assert patch.suite_id == content_id("suite", "s", "1", ["t1"], before)
    assert '"mode":"patch"' in patch.row()["run_config"]


def test_a_big_function_is_shown_as_a_window_around_its_suspicious_line():
    from codemill.tasks.patch_context import function_spans, window

    text = "class C:\n    def big(self):\n" + "".join(f"        x{i} = {i}\n"
                                                  for i in range(40))
    [(start, end, name)] = function_spans(text)
    assert (start, end, name) == (2, 42, "C.big")
    lines = text.splitlines()
    assert window(lines, start, end, 20, 10_000) == (2, 42)  # fits: the whole function
    first, last = window(lines, start, end, 20, 300)
    assert first < 20 < last and last - first < 20  # a window around line 20
    assert window(lines, start, end, 20, 50) == (None, 0)  # not even 3 lines either side


def test_expert_examples_pair_the_rollout_prompt_with_the_gold_answer(toy, context):
    from codemill.rollouts.patch_data import expert_examples

    got = expert_examples([toy.task], envs={toy.env.env_id: toy.env}, home=toy.home,
                          settings=toy.settings)
    [ex] = got.examples
    assert ex.answer == FIX and not got.skipped
    assert ex.messages[1].content == patch_prompt(toy.task.problem_statement, context)


def test_identical_replies_of_a_group_are_graded_once_and_share_the_verdict(toy):
    """A group's samples that wrote the same reply share the first one's verdict, each in
    a reward row of its own that says so; a different reply is graded itself."""
    replies = iter([FIX, FIX, "2:     return a * b", FIX])
    model = ScriptedBackend(lambda messages, tools: next(replies), name="scripted:patch")
    batch = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                         model=model, config=RolloutConfig(group_size=4, mode="patch"))
    rewards = [r.reward for r in sorted(batch.results, key=lambda r: r.item.sample_index)]
    assert [r.value for r in rewards] == [1.0, 1.0, 0.0, 1.0]
    shared = ["shared_verdict" in r.flags for r in rewards]
    assert shared == [False, True, False, True]
    assert rewards[0].grading_seconds > 0 and rewards[1].grading_seconds == 0.0
    assert len({r.reward_id for r in rewards}) == 4
    assert [r.rollout_id for r in rewards] == [r.item.rollout_id for r in sorted(
        batch.results, key=lambda r: r.item.sample_index)]


def test_a_masked_verdict_is_never_shared(toy):
    from codemill.core.records import Reward, Trajectory
    from codemill.rollouts.verdicts import SharedVerdicts

    def traj(n):
        return Trajectory(rollout_id=f"r{n}", task_id="t", policy="p", diff="d",
                          stop_reason=StopReason.SUBMITTED)

    masked = Reward(reward_id="m", rollout_id="r0", task_id="t", env_id="e", value=None,
                    resolved=None, masked=True, error_type="infra:sandbox")
    graded = masked.model_copy(update={"reward_id": "g", "rollout_id": "r1", "value": 1.0,
                                       "resolved": True, "masked": False, "error_type": None})
    verdicts = SharedVerdicts()
    assert verdicts.reward(traj(0), lambda: masked) is masked
    assert verdicts.reward(traj(1), lambda: graded) is graded  # graded itself
    copy = verdicts.reward(traj(2), lambda: pytest.fail("graded twice"))
    assert copy.value == 1.0 and copy.rollout_id == "r2" and "shared_verdict" in copy.flags
    assert (verdicts.graded, verdicts.shared) == (2, 1)
