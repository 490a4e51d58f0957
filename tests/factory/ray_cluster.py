"""A real Ray cluster on this machine for tests: a head and worker nodes started with
``ray start`` as separate processes, each node with its own resources.

    with RayCluster(workers=2) as cluster:     # head (0 CPUs: control only) + 2 x 1 CPU
        env = cluster.client_env()             # RAY_* for a driver in a subprocess
        cluster.address                        # "127.0.0.1:PORT"
        cluster.kill_raylet(node_id)           # SIGKILL one worker node's raylet
        cluster.restart()                      # stop every node, start a fresh cluster

Scope: every process the cluster starts carries its temp dir (``/tmp/cmray-XXXX``, short:
unix socket paths have a length limit) on its command line; ``stop`` SIGKILLs exactly the
processes whose command line names that dir, never another Ray on the machine (no
``ray stop``, which stops them all). Token authentication is on, with a token file of the
cluster's own (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN_PATH``); drivers get it from
``client_env``. Health checks are fast, so a killed node is declared dead in about two
seconds rather than the default thirty.

The nodes share this machine's filesystem, which is the fleet run's assumption for
snapshots, environments and the warehouse (``settings.home``); nodes on other machines
would need that home on a shared filesystem at the same path.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 180
FAST_HEALTH = {"RAY_health_check_initial_delay_ms": "0", "RAY_health_check_period_ms": "500",
               "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "3"}


class RayUnavailable(Exception):
    """The cluster could not be started (the message holds the command's output)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RayCluster:
    def __init__(self, workers: int = 2, cpus_per_worker: int = 1) -> None:
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.root = Path(tempfile.mkdtemp(prefix="cmray-", dir="/tmp"))
        self.token = self.root / "token"
        self.token.write_text(secrets.token_hex(32))
        self.address = ""
        self._starts = 0

    def client_env(self) -> dict[str, str]:
        """The variables a driver (or ``ray start``) needs to join this cluster."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token),
                "RAY_USAGE_STATS_ENABLED": "0"}

    def _ray(self, *args: str) -> None:
        env = {**os.environ, **self.client_env(), **FAST_HEALTH}
        out = subprocess.run([RAY, "start", *args, "--disable-usage-stats",
                              "--node-ip-address=127.0.0.1",
                              "--object-store-memory=100000000"],
                             capture_output=True, text=True, timeout=START_TIMEOUT_S, env=env)
        if out.returncode != 0:
            raise RayUnavailable(f"ray start {' '.join(args)} failed ({out.returncode}): "
                                 f"{(out.stderr or out.stdout)[-3000:]}")

    def start(self) -> RayCluster:
        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        self._ray("--head", f"--port={port}", "--num-cpus=0", f"--temp-dir={self.root}",
                  "--include-dashboard=false")
        self._starts += 1

        def join(i: int) -> None:
            # A temp dir per node: nodes joining at once in one session dir race for
            # the same socket names there (and one raylet dies on bind).
            own = self.root / f"s{self._starts}w{i}"
            own.mkdir()
            self._ray(f"--address={self.address}", f"--num-cpus={self.cpus_per_worker}",
                      f"--temp-dir={own}")

        with ThreadPoolExecutor(self.workers) as pool:  # workers join at the same time
            list(pool.map(join, range(self.workers)))
        return self

    def pids(self) -> dict[int, str]:
        """pid -> command line of every live process this cluster started."""
        mark = str(self.root)
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if mark in cmd:
                found[int(entry.name)] = cmd
        return found

    def raylets(self) -> dict[str, int]:
        """Node id -> pid of its raylet (the head's included)."""
        out = {}
        for pid, cmd in self.pids().items():
            if "/raylet/raylet " in cmd:
                node = next(a for a in cmd.split() if a.startswith("--node_id="))
                out[node.split("=", 1)[1]] = pid
        return out

    def kill_raylet(self, node_id: str) -> None:
        os.kill(self.raylets()[node_id], signal.SIGKILL)

    def stop(self) -> None:
        """SIGKILL every process of this cluster, until none is left."""
        deadline = time.monotonic() + 30
        while (left := self.pids()) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)

    def restart(self) -> RayCluster:
        self.stop()
        for old in self.root.iterdir():
            if old != self.token:
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink()
        return self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> RayCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
