"""An ASGI app served by uvicorn on a free loopback port, in a thread, for the adapters' tests."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


class Served:
    """``with Served(app) as served:`` ``served.url`` answers until the block ends (the
    app's shutdown runs then)."""

    def __init__(self, app):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "no server"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def forks(toy):
    """The sandbox forks open under the toy home."""
    root = toy.home / "tmp" / "sandboxes"
    return set(root.iterdir()) if root.is_dir() else set()
