"""Task sessions through `codemill env serve` against in-process, and sessions held at once.

Runbook (as root, with bubblewrap installed; about 2 minutes on 2 cores)::

    .venv/bin/python bench/bench_serve.py                      # the recorded figures
    .venv/bin/python bench/bench_serve.py --episodes 2 --hold 8 --no-write   # a smoke run

It builds the toy task (``tests/rewards/toyproject.py``: a one-line bug in ``calc.add``) in a
temporary home, records it in that home's ledger, and starts ``codemill env serve`` on it as
a separate process on a loopback port (as a user would). Every episode is the same scripted
fix (look with ``cat``, edit, submit: three steps, graded 1 by the real grader in the
sandbox) and opens its own session, so its own sandbox fork. Measured:

1. episodes per minute with ``--episodes`` episodes on 1 and on 4 threads, each through the
   session API in this process (``open_session``, ``reset``, ``step``, ``grade``, ``close``)
   and through the server over HTTP with plain httpx (``POST /sessions``, three
   ``POST .../step``, ``DELETE``); every episode must earn 1;
2. the price of HTTP on one step: the ``cat`` step's latency, p50, in process and served;
3. sessions held at once: ``--hold`` sessions opened one after another on a server whose
   limit is ``--hold`` (the open latency of each, the server's memory before and after,
   the forks' disk), then one more (it must be refused with 503), then one ``cat`` step in
   every held session, then all closed: the forks, sessions and processes left (all 0).

The load average is recorded with the result (``bench/record.py``): the development machine
is shared, and other work on it slows every figure here; the ratios measured in one run
are what to compare.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from codemill.agent.config import AgentConfig  # noqa: E402
from codemill.rollouts.session import SessionConfig, open_session  # noqa: E402
from codemill.store.ledger import Ledger  # noqa: E402
from codemill.store.rows import record_to_row  # noqa: E402
from record import figure, write_result  # noqa: E402
from rewards.toyproject import make_toy, toy_settings  # noqa: E402

CODEMILL = Path(sys.executable).parent / "codemill"
LOOK = "The add function subtracts. Let me look.\n```bash\ncat src/calc/ops.py\n```"
FIX = [
    LOOK,
    '<tool name="edit">\n{"path": "src/calc/ops.py", "old_str": "def add(a, b):\\n'
    '    return a - b", "new_str": "def add(a, b):\\n    return a + b"}\n</tool>',
    '<tool name="submit"></tool>',
]
MAX_STEPS = 10
"""The episodes' step limit, in process and served (``--max-steps``)."""
FIGURES: list[dict] = []


def load_now() -> float:
    """The 1-minute load average as a figure is taken (the machine is shared)."""
    return round(os.getloadavg()[0], 2)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def record_toy(env, task, settings) -> None:
    """The toy's environment and task in its home's ledger, where `codemill env serve`
    looks them up."""
    with Ledger.open(settings) as ledger:
        for table, record in (("environments", env), ("tasks", task)):
            with ledger.writer(table, run_id="bench-serve", asset=table, config_hash="") as w:
                w.add(record_to_row(record))


def forks(home: Path) -> int:
    root = home / "tmp" / "sandboxes"
    return len(list(root.iterdir())) if root.is_dir() else 0


def tree_pids(root: int) -> list[int]:
    """``root`` and its live descendants."""
    parents: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(proc.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def disk_kb(path: Path) -> int:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=False)
    return int(out.stdout.split()[0]) if out.returncode == 0 and out.stdout else 0


class Server:
    """``codemill env serve TASK`` as its own process on a free loopback port."""

    def __init__(self, home: Path, settings, task_id: str, max_sessions: int) -> None:
        env = {**os.environ, "CODEMILL_HOME": str(home), "CODEMILL_EXECUTOR__WORKERS": "1"}
        env.pop("CODEMILL_SERVE_TOKEN", None)
        for key, value in settings.sandbox.model_dump().items():
            env[f"CODEMILL_SANDBOX__{key.upper()}"] = str(value)
        self.proc = subprocess.Popen(
            [str(CODEMILL), "env", "serve", task_id, "--port", "0",
             "--max-sessions", str(max_sessions), "--max-steps", str(MAX_STEPS)],
            env=env, cwd=home.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if " at http" not in line:
            self.proc.kill()
            raise RuntimeError(f"codemill env serve did not start: {line}"
                               f"{self.proc.stderr.read() if self.proc.stderr else ''}")
        self.url = line.split(" at ", 1)[1].strip()

    def stop(self) -> tuple[int, str]:
        """Interrupt it (Ctrl-C), as a user would; its exit code and stderr."""
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, err


def in_process(env, task, home: Path, settings, config: SessionConfig,
               step_s: list[float]) -> Callable[[], float]:
    def episode() -> float:
        with open_session(task, env, home, settings, "agent", config=config) as session:
            session.reset()
            for i, action in enumerate(FIX):
                t = time.perf_counter()
                _, done = session.step(action)
                if i == 0:
                    step_s.append(time.perf_counter() - t)
            assert done, "the scripted fix submits on its third step"
            value = session.grade().value
        assert value == 1.0, f"the scripted fix earned {value}"
        return value
    return episode


def served(url: str, task_id: str, step_s: list[float]) -> Callable[[], float]:
    local = threading.local()  # one connection per thread, reused as a client would

    def episode() -> float:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = httpx.Client(base_url=url, timeout=300)
        opened = http.post("/sessions", json={"task_id": task_id})
        assert opened.status_code == 201, opened.text
        sid = opened.json()["session_id"]
        for i, action in enumerate(FIX):
            t = time.perf_counter()
            out = http.post(f"/sessions/{sid}/step", json={"action": action})
            if i == 0:
                step_s.append(time.perf_counter() - t)
            assert out.status_code == 200, out.text
        result = out.json()
        assert result["done"] and result["reward"] == 1.0, result
        assert http.delete(f"/sessions/{sid}").status_code == 204
        return result["reward"]
    return episode


def rate(episode: Callable[[], float], episodes: int, threads: int) -> tuple[float, float]:
    """``(episodes per minute, median seconds per episode)`` of ``episodes`` episodes run on
    ``threads`` threads."""
    durations: list[float] = []

    def timed(_: int) -> None:
        t = time.perf_counter()
        episode()
        durations.append(time.perf_counter() - t)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(timed, range(episodes)))
    wall = time.perf_counter() - start
    return episodes / wall * 60, statistics.median(durations)


def bench_rates(env, task, home: Path, settings, server: Server, episodes: int) -> None:
    config = SessionConfig(agent=AgentConfig(max_turns=MAX_STEPS, wall_time_s=1800))
    local_steps: list[float] = []
    http_steps: list[float] = []
    mine = in_process(env, task, home, settings, config, local_steps)
    theirs = served(server.url, task.task_id, http_steps)
    mine(), theirs()  # warm: the task's workspace layer is packaged on first use
    local_steps.clear()
    http_steps.clear()
    for threads in (1, 4):
        n = episodes * threads
        a, a_med = rate(mine, n, threads)
        b, b_med = rate(theirs, n, threads)
        print(f"{threads} thread(s), {n} episodes: in process {a:.1f}/min "
              f"(median {a_med:.2f} s), served {b:.1f}/min (median {b_med:.2f} s), "
              f"served/in-process {b / a:.2f}")
        FIGURES.append(figure(f"episodes per minute in process, {threads} thread(s)", a,
                              "episodes/min", episodes=n, median_episode_s=round(a_med, 2),
                              load_1min=load_now()))
        FIGURES.append(figure(f"episodes per minute through `codemill env serve`, "
                              f"{threads} thread(s)", b, "episodes/min", episodes=n,
                              median_episode_s=round(b_med, 2),
                              served_over_in_process=round(b / a, 3), load_1min=load_now()))
    a, b = pct(local_steps, 0.5) * 1000, pct(http_steps, 0.5) * 1000
    print(f"`cat` step p50: in process {a:.1f} ms, served {b:.1f} ms")
    FIGURES.append(figure("one `cat` step, p50, served (in process beside it)", b, "ms",
                          in_process_ms=round(a, 1), steps=len(http_steps),
                          load_1min=load_now()))


def bench_hold(task_id: str, home: Path, server: Server, hold: int) -> None:
    pids = tree_pids(server.proc.pid)
    before_mb, before_forks = rss_mb(pids), forks(home)
    opened: list[str] = []
    open_s: list[float] = []
    with httpx.Client(base_url=server.url, timeout=300) as http:
        for _ in range(hold):
            t = time.perf_counter()
            res = http.post("/sessions", json={"task_id": task_id})
            open_s.append(time.perf_counter() - t)
            assert res.status_code == 201, res.text
            opened.append(res.json()["session_id"])
        after_mb = rss_mb(tree_pids(server.proc.pid))
        held = http.get("/health").json()["sessions"]
        fork_kb = disk_kb(home / "tmp" / "sandboxes")
        refused = http.post("/sessions", json={"task_id": task_id}).status_code
        step_s = []
        for sid in opened:  # every held session still answers, in its own fork
            t = time.perf_counter()
            out = http.post(f"/sessions/{sid}/step", json={"action": LOOK})
            step_s.append(time.perf_counter() - t)
            assert out.status_code == 200 and "return a - b" in out.json()["observation"]["text"]
        t = time.perf_counter()
        for sid in opened:
            assert http.delete(f"/sessions/{sid}").status_code == 204
        close_s = (time.perf_counter() - t) / hold
        left_sessions = http.get("/health").json()["sessions"]
    left_forks = forks(home) - before_forks
    left_procs = len(tree_pids(server.proc.pid)) - len(pids)
    print(f"held {held} sessions (limit {hold}; one more: HTTP {refused}); open p50 "
          f"{pct(open_s, 0.5) * 1000:.0f} ms, p95 {pct(open_s, 0.95) * 1000:.0f} ms; server "
          f"memory {before_mb:.0f} -> {after_mb:.0f} MB; forks on disk {fork_kb} KB; step in "
          f"each p50 {pct(step_s, 0.5) * 1000:.0f} ms; close {close_s * 1000:.0f} ms each; "
          f"left: forks {left_forks}, sessions {left_sessions}, processes {left_procs}")
    FIGURES.append(figure("sessions held open at once (the server's limit; one more is "
                          "refused)", f"{held} of {hold}", "sessions", one_more_got_http=refused,
                          open_p50_ms=round(pct(open_s, 0.5) * 1000),
                          open_p95_ms=round(pct(open_s, 0.95) * 1000),
                          step_in_each_p50_ms=round(pct(step_s, 0.5) * 1000),
                          close_ms_each=round(close_s * 1000), load_1min=load_now()))
    FIGURES.append(figure(f"server memory (process tree RSS) idle, then holding {hold} "
                          "sessions", f"{before_mb:.0f} -> {after_mb:.0f}", "MB",
                          per_session_mb=round((after_mb - before_mb) / hold, 2),
                          forks_on_disk_kb=fork_kb))
    FIGURES.append(figure(f"left after closing the {hold} sessions: forks, sessions, "
                          "processes (goal 0 0 0)", f"{left_forks} {left_sessions} {left_procs}"))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=10,
                    help="Episodes per thread for each rate (1 thread: this many; 4: 4x).")
    ap.add_argument("--hold", type=int, default=64, help="Sessions to hold open at once.")
    ap.add_argument("--no-write", action="store_true", help="Print only; write no result.")
    args = ap.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    tmp = Path(tempfile.mkdtemp(prefix="codemill-bench-serve-"))
    server = None
    try:
        home = tmp / "home"
        settings = toy_settings(home)
        t = time.perf_counter()
        env, task = make_toy(home, settings)
        record_toy(env, task, settings)
        print(f"toy task built and recorded in {time.perf_counter() - t:.1f} s")
        server = Server(home, settings, task.task_id, max_sessions=max(args.hold, 4))
        bench_rates(env, task, home, settings, server, args.episodes)
        bench_hold(task.task_id, home, server, args.hold)
        code, err = server.stop()
        server = None
        leftover = forks(home)
        print(f"server interrupted: exit {code}; forks left {leftover}")
        assert code == 130 and leftover == 0, err
    finally:
        if server is not None:
            server.proc.kill()
            server.proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if not args.no_write:
        write_result("serve", "Task sessions: served over HTTP against in process", FIGURES,
                     measures=(
                         "Agent-mode episodes of the toy task (a scripted fix: `cat`, edit, "
                         "submit; each graded 1 in the sandbox, each its own session and fork) "
                         "through the session API in the benchmark's process and through "
                         "`codemill env serve` (its own process, loopback HTTP, httpx "
                         "clients), on 1 and 4 threads; then sessions held open at once on "
                         "the server up to its limit: open latency, memory, a step in each, "
                         "and what closing them leaves. Measured on the shared 2-core "
                         "development machine beside other jobs (the load average is "
                         "recorded): compare the served and in-process figures of one run."))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
