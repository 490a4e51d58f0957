"""Hostile code in the bwrap sandbox: each case is contained, has a clear result, and leaves
the host untouched. Everything here runs for real (bubblewrap, overlays, cgroups)."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from codemill.core.errors import SandboxError
from codemill.sandbox.api import SandboxSpec, open_sandbox
from codemill.sandbox.cgroups import leftover_cgroups

PY = "/usr/bin/python3"


def py(sb, code: str, **kw):
    return sb.run([PY, "-c", code], **kw)


# --- network --------------------------------------------------------------------------------
def test_no_dns_and_no_outside_addresses(sandbox):
    res = py(sandbox, "import socket\ntry:\n socket.getaddrinfo('pypi.org', 443)\n"
                      " print('resolved')\nexcept OSError as e:\n print('dns failed')")
    assert res.stdout.strip() == "dns failed"
    code = ("import socket\ns = socket.socket(); s.settimeout(2)\n"
            "try:\n s.connect(('1.1.1.1', 80)); print('connected')\n"
            "except OSError as e:\n print('refused', e.errno)")
    assert py(sandbox, code).stdout.startswith("refused")


def test_cannot_reach_host_loopback(sandbox):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = ("import socket\ns = socket.socket(); s.settimeout(2)\n"
            f"try:\n s.connect(('127.0.0.1', {port})); print('connected')\n"
            "except OSError:\n print('refused')")
    res = py(sandbox, code)
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.accept()  # nothing ever reached the host's listener
    server.close()
    assert res.stdout.strip() == "refused"


# --- writes and reads outside the workspace -------------------------------------------------
def test_writes_outside_the_workspace_fail(bwrap_ready, base_layer, home, tmp_path, limits):
    env = tmp_path / "env"
    env.mkdir()
    host_tmp = Path("/tmp") / f"codemill-escape-{uuid.uuid4().hex}"
    spec = SandboxSpec(layers=[base_layer], env_dir=env, limits=limits())
    targets = ["/etc/codemill-x", "/usr/codemill-x", "/env/x", "/codemill-x",
               str(tmp_path / "x"), "/proc/sys/kernel/hostname", "/sys/x"]
    with open_sandbox(spec, home) as sb:
        for target in targets:
            res = sb.run(["sh", "-c", f"echo pwned > {target}"])
            assert res.exit_code != 0, target
        # /tmp inside is private: writing there works and never reaches the host's /tmp
        assert sb.run(["sh", "-c", f"echo x > {host_tmp} && cat {host_tmp}"]).stdout == "x\n"
    assert not Path("/etc/codemill-x").exists() and not Path("/usr/codemill-x").exists()
    assert not (env / "x").exists() and not host_tmp.exists() and not (tmp_path / "x").exists()


def test_host_secrets_are_not_visible(sandbox, home):
    (home / "catalog.db").write_text("ledger secret")
    checks = {
        "/etc/shadow": "cat /etc/shadow",
        "/root": "ls -A /root",
        "home": f"cat {home}/catalog.db",
        "upper": f"ls {sandbox.dir}",
        "ssh": "ls /etc/ssh",
    }
    for name, cmd in checks.items():
        res = sandbox.run(["sh", "-c", cmd])
        assert res.exit_code != 0 and "secret" not in res.stdout, name
    seen = sandbox.run(["ls", "/"]).stdout.split()
    assert "root" not in seen and "home" not in seen and "work" not in seen


# --- resource bombs -------------------------------------------------------------------------
def test_fork_bomb_hits_the_pids_limit(bwrap_ready, base_layer, home, limits):
    spec = SandboxSpec(layers=[base_layer], limits=limits(pids=32))
    bomb = ("import os, time\nn = 0\nwhile True:\n try:\n  if os.fork() == 0:\n"
            "   time.sleep(60)\n  n += 1\n except OSError:\n  print('limit at', n, flush=True)"
            "\n  time.sleep(60)")
    with open_sandbox(spec, home) as sb:
        res = py(sb, bomb, timeout_s=3)
        assert res.timed_out and res.killed_reason == "pids"
        forked = int(res.stdout.split()[-1])
        assert 0 < forked < 32
        assert sb.run(["true"]).ok  # the sandbox is usable again
    assert leftover_cgroups(f"codemill-{sb.id}") == []


def test_memory_bomb_is_killed_as_memory(bwrap_ready, base_layer, home, limits):
    spec = SandboxSpec(layers=[base_layer], limits=limits(memory_mb=96))
    bomb = "chunks = []\nwhile True:\n chunks.append(b'x' * (8 << 20))"
    with open_sandbox(spec, home) as sb:
        res = py(sb, bomb, timeout_s=20)
    assert res.killed_reason == "memory" and not res.ok and not res.timed_out


def test_disk_fill_is_bounded(bwrap_ready, base_layer, home, limits):
    spec = SandboxSpec(layers=[base_layer], limits=limits(disk_mb=8))
    with open_sandbox(spec, home) as sb:
        big = py(sb, "open('big', 'wb').write(b'x' * (16 << 20))")
        # RLIMIT_FSIZE stops the write at 8 MB; the disk watcher may see the 8 MB file plus
        # the sandbox's other writes first and kill the run. Either way the bound holds.
        assert not big.ok
        assert "File too large" in big.stderr or big.killed_reason == "disk"
        assert os.path.getsize(sb.upper / "big") <= 8 << 20
        tmp = sb.run(["sh", "-c", "head -c 16000000 /dev/zero > /tmp/f"])
        assert not tmp.ok  # the private /tmp is sized too
        many = sb.run(["sh", "-c", "for i in 1 2 3 4 5 6; do head -c 4000000 /dev/zero > f$i;"
                                   " done; sleep 30"], timeout_s=20)
        assert many.killed_reason == "disk" and many.duration_s < 10


def test_infinite_loop_times_out(sandbox):
    res = py(sandbox, "while True: pass", timeout_s=1)
    assert res.timed_out and res.killed_reason == "timeout" and res.exit_code != 0
    assert 1 <= res.duration_s < 3


def test_sigterm_is_no_protection(sandbox):
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: pass"
    res = py(sandbox, code, timeout_s=1)
    assert res.timed_out and res.duration_s < 3


def test_daemons_do_not_outlive_the_run(sandbox, host_pids):
    marker = f"codemill-daemon-{uuid.uuid4().hex}"
    code = ("import os, time\nif os.fork() == 0:\n os.setsid()\n if os.fork() == 0:\n"
            "  os.closerange(0, 3)\n  time.sleep(300)\n os._exit(0)\nos.wait()\n"
            f"print('parent done')  # {marker}")
    res = py(sandbox, code)
    assert res.ok and res.stdout == "parent done\n"
    shell = sandbox.run(["sh", "-c", f"setsid -f sh -c 'sleep 300 # {marker}' && nohup sh -c "
                                     f"'sleep 300 # {marker}' >/dev/null 2>&1 & echo started"])
    assert shell.ok
    assert host_pids(marker) == []
    # also when the run is killed at its deadline while daemons are still being made
    code = (f"import os, time\nfor i in range(5):\n if os.fork() == 0:\n  os.setsid()\n"
            f"  time.sleep(300)  # {marker}\ntime.sleep(300)")
    assert py(sandbox, code, timeout_s=1).timed_out
    assert host_pids(marker) == []


# --- escapes through the file system and the kernel ------------------------------------------
def test_symlink_escapes_are_refused_on_the_host_side(sandbox, home):
    secret = home / "secret.txt"
    secret.write_text("do not read")
    links = (f"ln -s /etc/shadow shadow; ln -s {secret} secret; ln -s ../../etc/passwd up;"
             f" ln -s /etc etcdir; ln -s {home} homedir; ln -s README.md ok;"
             " ln -s /repo/pkg pkglink")
    assert sandbox.run(["sh", "-c", links]).ok
    shadow_before = Path("/etc/shadow").read_bytes()
    for name in ("shadow", "secret", "up", "etcdir/passwd", "homedir/secret.txt",
                 "../etc/passwd", "/etc/passwd", "/repo/../etc/passwd", "pkg/../../x"):
        with pytest.raises(SandboxError):
            sandbox.read_file(name)
        with pytest.raises(SandboxError):
            sandbox.write_file(name, b"pwned")
    assert Path("/etc/shadow").read_bytes() == shadow_before
    assert secret.read_text() == "do not read"
    assert sandbox.read_file("ok") == b"hello\nworld\n"
    sandbox.write_file("pkglink/new.py", b"x = 1\n")  # links that stay inside are fine
    assert sandbox.read_file("pkg/new.py") == b"x = 1\n"
    # inside, the links only reach the sandbox's own view
    res = sandbox.run(["sh", "-c", "cat secret; cat shadow; cat homedir/secret.txt"])
    assert "do not read" not in res.stdout and res.exit_code != 0


def test_setuid_binaries_give_no_privilege(sandbox):
    res = sandbox.run(["sh", "-c", "grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs)' /proc/self/status"])
    fields = dict(line.split(":", 1) for line in res.stdout.splitlines())
    assert fields["Uid"].split()[0] == "65534" and int(fields["CapEff"], 16) == 0
    assert int(fields["CapBnd"], 16) == 0 and fields["NoNewPrivs"].strip() == "1"
    for cmd in ("su -c id root </dev/null", "mount -t tmpfs x /repo", "unshare -r id",
                "chown root README.md"):
        assert sandbox.run(["sh", "-c", cmd]).exit_code != 0, cmd
    assert sandbox.run(["id", "-u"]).stdout == "65534\n"


def test_host_processes_are_invisible(sandbox):
    res = sandbox.run(["sh", "-c", "ls /proc | grep -c '^[0-9]'"])
    assert int(res.stdout) <= 4  # bwrap's init, sh, ls, grep
    me = os.getpid()
    res = py(sandbox, f"import os\ntry:\n os.kill({me}, 0); print('visible')\n"
                      "except OSError:\n print('hidden')")
    assert res.stdout.strip() == "hidden"
    res = py(sandbox, "import ctypes\nlibc = ctypes.CDLL(None)\n"
                      f"print(libc.ptrace(16, {me}, 0, 0))")  # PTRACE_ATTACH
    assert res.stdout.strip() == "-1"


def test_signals_to_the_parent_do_not_reach_the_harness(sandbox):
    res = sandbox.run(["sh", "-c", "kill -9 $PPID; kill -9 1; kill -9 -1; echo survived"])
    assert res.exit_code is not None
    time.sleep(0.05)
    assert sandbox.run(["true"]).ok  # we (the harness) are still here and so is the sandbox


def test_results_dir_holds_only_plain_files_after_a_run(sandbox):
    host, inside = sandbox.results_dir
    plant = (f"ln -s /etc/shadow {inside}/junit.xml; mkfifo {inside}/fifo; mkdir {inside}/d;"
             f" ln -s / {inside}/d/root; echo ok > {inside}/real.xml")
    assert sandbox.run(["sh", "-c", plant]).ok
    assert sorted(os.listdir(host)) == ["d", "real.xml"] and os.listdir(host / "d") == []


def test_cgroup_limits_are_enforced_here(bwrap_ready, base_layer, home, limits):
    from codemill.sandbox.cgroups import RunCgroup

    probe = RunCgroup.create(f"codemill-probe-{uuid.uuid4().hex[:8]}", limits())
    try:
        assert {"memory", "pids", "cpu"} <= probe.limits_applied
    finally:
        assert probe.remove()
    spec = SandboxSpec(layers=[base_layer], limits=limits(cpu_quota=0.25))
    spin = ("import time\nend = time.time() + 1.5\nwhile time.time() < end: pass\n"
            "print(time.process_time())")
    with open_sandbox(spec, home) as sb:
        used = float(py(sb, spin).stdout)
    assert used < 1.5 * 0.25 + 0.2  # a quarter of one core, whatever the load
