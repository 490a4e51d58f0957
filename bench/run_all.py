"""Run every benchmark and print its figures: ``make bench``.

Each ``bench/bench_*.py`` is a standalone script that prints its own table and writes its result
file to ``bench/results/`` (``bench/record.py``); at the end ``docs/benchmarks.md`` is rendered
again from those files (``bench/render_benchmarks.py``). The real-project
build survey (``bench/real_projects.py``) takes tens of minutes; it runs when
``CODEMILL_BENCH_REAL=1`` is set or ``--real`` is passed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    import os

    scripts = sorted(HERE.glob("bench_*.py"))
    if "--real" in argv or os.environ.get("CODEMILL_BENCH_REAL") == "1":
        scripts.append(HERE / "real_projects.py")
    failed = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)])
        print(f"--- {script.name}: exit {rc} in {time.perf_counter() - start:.1f}s", flush=True)
        if rc != 0:
            failed.append(script.name)
    subprocess.call([sys.executable, str(HERE / "render_benchmarks.py")])
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
