"""Can this machine run the bubblewrap sandbox? Finds the tools once and says what is missing.

Requirements: Linux, running as root (the overlay and the cgroups are set up by root before
dropping to the sandbox uid), bubblewrap, util-linux (``unshare``, ``mount``, ``setpriv``,
``prlimit``) and unprivileged user namespaces. A trial sandbox is started once per process
so that a kernel that forbids what bwrap needs fails with one clear line, not mid-run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from codemill.core.errors import SandboxError

TOOLS = ("bwrap", "unshare", "mount", "setpriv", "prlimit")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ETC_SUBSET = ("passwd", "group", "nsswitch.conf", "hosts", "host.conf", "gai.conf",
              "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone",
              "alternatives", "ssl", "ca-certificates", "ca-certificates.conf", "mime.types",
              "protocols", "services", "os-release", "debian_version", "magic", "inputrc")
TOP_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
INSTALL_HINT = "apt-get install bubblewrap util-linux (or dnf install bubblewrap util-linux)"


@dataclass(frozen=True)
class HostTools:
    bwrap: str
    unshare: str
    mount: str
    setpriv: str
    prlimit: str
    sh: str


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


@cache
def system_binds() -> tuple[str, ...]:
    """bwrap arguments for the read-only system: /usr, the top-level lib/bin dirs (as
    symlinks where the host has merged /usr) and a subset of /etc without secrets."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in TOP_DIRS:
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    etc = Path("/etc")
    for name in ETC_SUBSET:
        args += ["--ro-bind-try", str(etc / name), f"/etc/{name}"]
    for path in sorted(etc.glob("python3*")):  # Debian's python reads sitecustomize here
        args += ["--ro-bind", str(path), str(path)]
    return tuple(args)


@cache
def host_tools() -> HostTools:
    """The absolute paths of the tools, or ``SandboxError`` naming what to install."""
    if os.uname().sysname != "Linux":
        raise SandboxError("the bwrap sandbox needs Linux; use backend='process' for trusted code")
    found = {name: shutil.which(name, path=SYSTEM_PATH) for name in TOOLS}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise SandboxError(
            f"sandbox tools not found: {', '.join(missing)}; install: {INSTALL_HINT}")
    if os.geteuid() != 0:
        raise SandboxError("the bwrap sandbox sets up overlays and cgroups as root before "
                           "dropping to the sandbox uid: run codemill as root (e.g. in a VM or "
                           "container), or use backend='process' for trusted code only")
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        raise SandboxError("unprivileged user namespaces are disabled: "
                           "sysctl -w kernel.unprivileged_userns_clone=1")
    if _read("/proc/sys/user/max_user_namespaces") == "0":
        raise SandboxError("user namespaces are disabled: sysctl -w user.max_user_namespaces=15000")
    tools = HostTools(sh="/bin/sh", **{k: v for k, v in found.items() if v})
    _trial(tools)
    return tools


def _trial(tools: HostTools, uid: int = 65534) -> None:
    argv = [tools.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--no-new-privs", tools.bwrap, "--unshare-all", "--die-with-parent",
            *system_binds(), "--proc", "/proc", "--dev", "/dev",
            "--", "/usr/bin/true"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              env={"PATH": SYSTEM_PATH})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"bubblewrap cannot start: {exc}") from exc
    if proc.returncode != 0:
        line = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise SandboxError(f"bubblewrap cannot create namespaces here ({line}); "
                           "allow unprivileged user namespaces or use backend='process'")
