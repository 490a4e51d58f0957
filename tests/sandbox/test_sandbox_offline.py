"""``run(..., offline=True)``: a command of a network-enabled build sandbox that runs the
project's own code gets no network and cannot write into the venv or the package cache."""

from __future__ import annotations

from pathlib import Path

from codemill.sandbox.api import SandboxSpec, open_sandbox

from .conftest import small_limits

IFACES = ["python3", "-c", "import socket; print(sorted(n for _, n in socket.if_nameindex()))"]


def test_offline_commands_lose_network_and_writable_binds(bwrap_ready, base_layer, home,
                                                           tmp_path: Path):
    env, cache = tmp_path / "env", tmp_path / "cache"
    env.mkdir()
    cache.mkdir()
    spec = SandboxSpec(layers=[base_layer], python_home=Path("/usr"), env_dir=env,
                       env_writable=True, network=True, rw_binds=((cache, "/cache"),),
                       limits=small_limits())
    with open_sandbox(spec, home, backend="bwrap") as sb:
        online = sb.run(IFACES)
        offline = sb.run(IFACES, offline=True)
        wrote = sb.run(["sh", "-c", "touch /env/planted /cache/planted && echo ok"])
        blocked = sb.run(["sh", "-c", "touch /env/hostile; touch /cache/hostile; "
                                      "touch /repo/fine && echo repo-ok"], offline=True)
    assert online.exit_code == 0 and offline.exit_code == 0, (online, offline)
    assert offline.stdout.strip() == "['lo']", offline.stdout
    assert online.stdout.strip() != "['lo']", online.stdout  # the spec's network is there
    assert wrote.stdout.strip() == "ok"
    assert "repo-ok" in blocked.stdout
    assert not (env / "hostile").exists() and not (cache / "hostile").exists()
