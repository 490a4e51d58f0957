"""A throwaway PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` in a temp dir.

    with pg_server() as uri:      # postgresql+psycopg2://codemill@127.0.0.1:PORT/codemill
        ...

The cluster lives in a fresh directory under the system temp dir, listens on a free
loopback port and on a unix socket in that directory, trusts local connections (nothing
outside the machine can reach it), and is stopped and removed on exit. PostgreSQL refuses
to run as root, so as root the server runs as the ``postgres`` user that Debian's package
creates (``runuser``), with the directory handed to it; as anyone else it runs as them.
``PgUnavailable`` says what is missing (no server binaries, no ``postgres`` user).

Durability is switched off (``fsync``, ``synchronous_commit``): the cluster dies with the
test, and what is measured here is concurrency, which those settings do not change.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "codemill"
"""Superuser made by ``initdb`` and the database the tests use."""
START_TIMEOUT_S = 60


class PgUnavailable(Exception):
    """The machine cannot start a PostgreSQL server (the message says why)."""


def server_bin() -> Path:
    """The directory of ``initdb``/``pg_ctl``/``createdb``: Debian keeps them off PATH,
    one directory per major version (the newest wins); elsewhere, PATH."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    if not found and (initdb := shutil.which("initdb")):
        found = [Path(initdb).parent]
    if not found:
        raise PgUnavailable("PostgreSQL server binaries not found (apt-get install postgresql)")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(root: Path) -> list[str]:
    """The command prefix that runs the server binaries as a non-root user owning ``root``."""
    if os.geteuid() != 0:
        return []
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        raise PgUnavailable("running as root and there is no `postgres` user to run the "
                            "server as (apt-get install postgresql creates it)") from None
    os.chown(root, pw.pw_uid, pw.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if proc.returncode != 0:
        raise PgUnavailable(f"{what} failed ({proc.returncode}): "
                            f"{(proc.stderr or proc.stdout).strip()[-2000:]}")


@contextmanager
def pg_server() -> Iterator[str]:
    """Start a server with an empty database ``codemill``; yield its SQLAlchemy URI."""
    bindir = server_bin()
    # As root the server user must reach the directory: /tmp, not a private TMPDIR. A short
    # path also keeps the unix socket's name under its length limit.
    root = Path(tempfile.mkdtemp(prefix="codemill-pg-",
                                 dir="/tmp" if os.geteuid() == 0 else None))
    data, log = root / "data", root / "server.log"
    started = False
    try:
        prefix = _as_server_user(root)
        _run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust",
              "-E", "UTF8", "--no-sync"], "initdb")
        port = _free_port()
        opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off")
        _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
              "-t", str(START_TIMEOUT_S), "-o", opts, "start"], "pg_ctl start")
        started = True
        _run([*prefix, str(bindir / "createdb"), "-h", str(root), "-p", str(port),
              "-U", USER, USER], "createdb")
        yield f"postgresql+psycopg2://{USER}@127.0.0.1:{port}/{USER}"
    finally:
        if started:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "stop"], capture_output=True, timeout=START_TIMEOUT_S)
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_uri: str, name: str) -> str:
    """Create an empty database ``name`` on the server of ``server_uri``; its URI."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server_uri, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as con:
            con.execute(text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()
    return server_uri.rsplit("/", 1)[0] + f"/{name}"
