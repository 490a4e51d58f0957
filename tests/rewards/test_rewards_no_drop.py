"""No attempt vanishes: whatever a rollout leaves in its workspace, grading ends in a row.

Real agent loop (scripted replies), real forks, real bwrap sandboxes, real grader over the
toy project (``toyproject``). A file whose name is not UTF-8 once made grading raise while
hashing the diff, so the attempt had no reward row and was planned again: a policy could
make any failing attempt vanish from training.
"""

from __future__ import annotations

import json

from codemill.agent.config import AgentConfig
from codemill.rollouts.plan import RolloutConfig
from codemill.rollouts.runner import run_rollouts

FIX = ('<tool name="edit">\n{"path": "src/calc/ops.py", "old_str": "def add(a, b):\\n'
       '    return a - b", "new_str": "def add(a, b):\\n    return a + b"}\n</tool>')
SUBMIT = '<tool name="submit"></tool>'
# printf with octal escapes: the file name holds bytes 0xff 0xfe, not UTF-8.
NON_UTF8 = "```bash\nprintf 'x\\n' > \"$(printf 'bad\\377\\376.txt')\"; ls\n```"
AGENT = AgentConfig(max_turns=6, command_timeout_s=30, wall_time_s=120)


def _rollout(toy, tmp_path, name, replies):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(replies))
    return run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                        model=f"scripted:{path}", config=RolloutConfig(group_size=1),
                        agent=AGENT)


def test_non_utf8_file_name_still_gives_a_reward_row(toy, tmp_path):
    batch = _rollout(toy, tmp_path, "nonutf8", [NON_UTF8, SUBMIT])
    assert batch.failed == [], batch.failed
    [r] = batch.results
    assert r.reward is not None and not r.reward.masked, (r.reward, r.notes)
    assert r.reward.value == 0.0  # add is still broken
    r.trajectory.diff.encode("utf-8")  # the diff is text every consumer can store


def test_non_utf8_file_name_next_to_a_fix_earns_one(toy, tmp_path):
    batch = _rollout(toy, tmp_path, "nonutf8fix", [NON_UTF8, FIX, SUBMIT])
    assert batch.failed == [], batch.failed
    [r] = batch.results
    assert r.reward is not None and r.reward.value == 1.0, (r.reward, r.notes)


# --- diffs no workspace writes: what a patch-mode policy or a hand-made diff may hold -------

def _grade(toy, diff):
    from codemill.rewards.grader import grade_detailed

    return grade_detailed(toy.task, diff, env=toy.env, home=toy.home, settings=toy.settings,
                          rollout_id="no-drop", policy="hostile")


HOSTILE_DIFFS = {
    "nul in a path": "diff --git a/x\x00y b/x\x00y\nnew file mode 100644\n--- /dev/null\n"
                     "+++ b/x\x00y\n@@ -0,0 +1 @@\n+x\n",
    "lone surrogates": "diff --git a/\ud800 b/\ud800\nnew file mode 100644\n--- /dev/null\n"
                       "+++ b/\ud800\n@@ -0,0 +1 @@\n+\udcff\n",
    "bytes that are not text": bytes(range(256)).decode("utf-8", "surrogateescape") * 64,
    "a forged header in a quoted name": 'diff --git "a/x\\n+++ b/tests/test_ops.py" '
                                        '"b/x\\n+++ b/tests/test_ops.py"\nnew file mode 100644\n',
    "huge": "diff --git a/big.py b/big.py\nnew file mode 100644\n--- /dev/null\n+++ b/big.py\n"
            "@@ -0,0 +1,400000 @@\n" + "+x = 1\n" * 400_000,
}


def test_any_diff_text_ends_in_an_unmasked_zero(toy):
    for name, diff in HOSTILE_DIFFS.items():
        g = _grade(toy, diff)
        r = g.reward
        assert r.value == 0.0 and not r.masked and r.resolved is False, (name, r, g.notes)


def test_huge_and_binary_files_next_to_a_fix_still_earn_one(toy, tmp_path):
    # 40 MB of text and 2 MB of random bytes: the workspace diff marks both without
    # reading them into memory, grading drops them, and the fix beside them counts.
    junk = ("```bash\nhead -c 40000000 /dev/zero | tr '\\0' 'x' > big.txt; "
            "head -c 2000000 /dev/urandom > blob.bin\n```")
    batch = _rollout(toy, tmp_path, "huge", [junk, FIX, SUBMIT])
    assert batch.failed == [], batch.failed
    [r] = batch.results
    assert "Binary files /dev/null and b/big.txt differ" in r.trajectory.diff
    assert len(r.trajectory.diff) < 1 << 20
    assert r.reward.value == 1.0 and "binary_skipped" in r.reward.flags, (r.reward, r.notes)


def test_a_test_file_with_a_non_utf8_name_is_removed_and_shown_printably(toy):
    from codemill.core.diffs import file_diff

    from .toyproject import GOLD_PATCH

    planted = file_diff("tests/test_\udcff.py", None, b"def test_x():\n    assert True\n")
    g = _grade(toy, GOLD_PATCH + planted)
    assert g.reward.value == 1.0, (g.reward, g.notes)
    assert "tests/test_\ufffd.py" in g.restored  # removed before the run, named printably
    "\n".join([*g.notes, *g.restored]).encode("utf-8")
