"""`make demo` as a new user meets it: a fresh clone, set-up included, timed; its result kept.

Runbook::

    .venv/bin/python bench/bench_demo.py              # fresh clone of HEAD, `make demo`
    .venv/bin/python bench/bench_demo.py --in-place   # this checkout's venv, a fresh home

The fresh clone (``git clone`` of this checkout's HEAD into a temp dir) runs ``make demo``
there, with its own ``.venv`` and a fresh home: the wall time is set-up plus the demo. The
demo's machine output comes from a second, cached ``codemill demo --json`` in that clone
(it only reads what the timed run recorded; its own seconds are a cache hit's, so they are
not recorded). Writes ``bench/results/demo.json``: base and
trained pass@1 on the held-out project with Wilson intervals, the paired McNemar p and the
whole wall time, with the machine's load (another job on the machine slows every phase).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import figure, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    started = time.monotonic()
    with log.open("a") as fh:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                              timeout=3 * 3600, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--in-place", action="store_true",
                    help="Use this checkout and its .venv (no clone, no set-up).")
    ap.add_argument("--keep", action="store_true", help="Keep the temp dir.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="codemill-demo-"))
    log = tmp / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEMILL_")}
    env["CODEMILL_HOME"] = str(tmp / "home")
    if args.in_place:
        where = ROOT
        wall = _run([str(ROOT / ".venv" / "bin" / "codemill"), "demo"], where, env, log)
    else:
        where = tmp / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True)
        # what is measured is the clone's commit, clean by construction, whatever this
        # checkout's working tree holds meanwhile
        os.environ["BENCH_COMMIT"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
            check=True).stdout.strip()
        wall = _run(["make", "demo"], where, env, log)
    last = [line for line in log.read_text().splitlines() if line.strip()][-1]
    out = subprocess.run([str(where / ".venv" / "bin" / "codemill"), "demo", "--json"],
                         cwd=where, env=env, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout)
    base, trained = res["base"], res["trained"]

    def rate(r: dict) -> dict:
        return {"rate": round(r["rate"] or 0, 4),
                "wilson95": [round(r["low"], 4), round(r["high"], 4)]}

    figures = [
        figure("held-out project: base resolves (pass@1)",
               f"{base['successes']} of {base['graded']}", **rate(base),
               project=res["held_out"]),
        figure("held-out project: trained resolves (pass@1)",
               f"{trained['successes']} of {trained['graded']}", **rate(trained),
               sequences=res["sft"].get("sequences"), reversals=res["sft"].get("reversals"),
               train_tasks=res["train_tasks"],
               loss_first=res["sft"].get("loss_first"), loss_last=res["sft"].get("loss_last")),
        figure("paired: tasks only the trained model resolves", res["only_trained"],
               "tasks", only_base=res["only_base"], mcnemar_p=round(res["mcnemar_p"], 4)),
        figure("`make demo` wall time" + ("" if args.in_place else ", fresh clone, set-up "
                                         "included"), round(wall), "s",
               last_line=last),
    ]
    write_result("demo", "The demo: learning on a held-out project (SmolLM2-135M, patch mode)",
                 figures, measures="`make demo` from a fresh clone: five small example "
                 "projects built and given validated bug tasks; the embedded model and a LoRA "
                 "SFT checkpoint trained on expert answers and mutation reversals of four of "
                 "them evaluated on every task of the fifth, one greedy attempt each.")
    print(last)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
