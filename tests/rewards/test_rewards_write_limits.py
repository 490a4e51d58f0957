"""A candidate that writes past the disk limit into the harness results dir (data or
sparse files) earns an unmasked 0: the run is killed for its disk use, its results are
thrown away, and the gold state, run the same way, shows the infrastructure was fine."""

from __future__ import annotations

import pytest

from codemill.rewards import flags as F
from codemill.rewards.grader import grade_detailed
from codemill.tasks.patches import file_diff

from .toyproject import BROKEN_OPS, FILES

FIXED = FILES["src/calc/ops.py"]
FLOOD = {
    "data": "for i in range(48):\n    with open(f'/harness/results/j{i}', 'wb') as f:\n"
            "        f.write(b'x' * (16 << 20))\n",
    "sparse": "for i in range(4):\n    with open(f'/harness/results/s{i}', 'wb') as f:\n"
              "        f.truncate(400 << 20)\n",
}


@pytest.mark.parametrize("kind", sorted(FLOOD))
def test_flooding_the_results_dir_earns_an_unmasked_zero(toy, kind):
    code = "try:\n" + "".join(f"    {line}\n" for line in FLOOD[kind].splitlines()) + \
        "except OSError:\n    pass\n"
    diff = file_diff("src/calc/ops.py", BROKEN_OPS.encode(), (code + FIXED).encode())
    g = grade_detailed(toy.task, diff, env=toy.env, home=toy.home, settings=toy.settings,
                       rollout_id=f"flood-{kind}", policy="hostile")
    r = g.reward
    assert r.value == 0.0 and not r.masked and F.NO_RESULTS in r.flags, (r, g.notes)
