"""Task sessions over HTTP: what ``codemill env serve`` runs.

    app = serve_app({task.task_id: (task, env)}, home, settings,
                    ServeConfig(max_sessions=8, idle_timeout_s=600, token="s3cret"))
    uvicorn.run(app, host="127.0.0.1", port=8765)

Routes (JSON; every route but ``/health`` needs ``Authorization: Bearer <token>`` when a
token is set):

- ``GET /health``: ``{"status": "ok", "sessions": n, "max_sessions": m, "tasks": k}``
- ``GET /tasks``: the served tasks (id, environment, problem statement)
- ``POST /sessions`` ``{"task_id", "mode": "agent"|"patch"}``: a new session, its first
  episode started; ``{"session_id", "observation"}`` (201)
- ``POST /sessions/{id}/step`` ``{"action": "..."}``: ``{"observation", "done", "reward",
  "stop_reason", "truncated", "verdict"}``; ``reward`` is 0.0 before the end, the grader's
  value at the end, ``null`` when masked (drop the episode; never score it 0)
- ``POST /sessions/{id}/reset``: a new episode in the same session (a fresh fork)
- ``DELETE /sessions/{id}``: close it and remove its fork (204)

An ``observation`` is ``{"text", "messages": [{"role", "content"}]}``, exactly what
``codemill.rollouts.session`` gives (codemill's own agent's view). Each session is its own
sandbox fork; the session's config bounds its steps, time and commands. A session idle
for ``idle_timeout_s`` is closed by a reaper thread, and every session is closed when the
app shuts down, so an abandoned client leaks no fork. Errors are ``{"error": "..."}``
with 401 (token), 404 (unknown task or session), 409 (a step out of order), 422 (a
malformed body) or 503 (at capacity).
"""

from __future__ import annotations

import hmac
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from codemill.core.config import Settings
from codemill.core.records import EnvSpec, TaskSpec
from codemill.rollouts.session import (
    Observation,
    Session,
    SessionConfig,
    SessionError,
    open_session,
)

_ATTEMPT_FIELDS = {"reward_id", "rollout_id", "grading_seconds"}


class ServeConfig(BaseModel):
    """Limits of a session server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_sessions: int = Field(8, ge=1)
    """Sessions open at once (each a sandbox fork); one more is refused with 503."""
    idle_timeout_s: float = Field(600.0, gt=0)
    """A session without a request for this long is closed (its fork removed)."""
    token: str | None = None
    """Bearer token every route but ``/health`` requires; None serves without one (bind to
    loopback then)."""
    session: SessionConfig = SessionConfig()
    """Each session's limits (steps, wall time, command timeout) and grading."""


class Refused(Exception):
    """A request the server answers with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SessionPool:
    """The open sessions by id, with their last activity; thread-safe."""

    def __init__(self, tasks: Mapping[str, tuple[TaskSpec, EnvSpec]], home: Path,
                 settings: Settings, config: ServeConfig) -> None:
        self.tasks, self.home, self.settings, self.config = tasks, home, settings, config
        self._sessions: dict[str, Session] = {}
        self._seen: dict[str, float] = {}
        self._reserved = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, task_id: str, mode: Literal["agent", "patch"]) -> tuple[str, Observation]:
        if task_id not in self.tasks:
            raise Refused(404, f"unknown task {task_id!r}; GET /tasks lists the served ones")
        with self._lock:  # reserve the slot first: opening a fork takes a while
            if len(self._sessions) + self._reserved >= self.config.max_sessions:
                raise Refused(503, f"at capacity ({self.config.max_sessions} sessions); "
                                   "close one or retry later")
            self._reserved += 1
        try:
            task, env = self.tasks[task_id]
            session = open_session(task, env, self.home, self.settings, mode,
                            config=self.config.session)
            try:
                obs = session.reset()
            except BaseException:
                session.close()
                raise
            sid = uuid.uuid4().hex
            with self._lock:
                self._sessions[sid], self._seen[sid] = session, time.monotonic()
        finally:
            with self._lock:
                self._reserved -= 1
        return sid, obs

    def get(self, sid: str) -> Session:
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                raise Refused(404, f"no session {sid!r} (closed, reaped or never opened)")
            self._seen[sid] = time.monotonic()
            return session

    def close(self, sid: str) -> bool:
        with self._lock:
            session = self._sessions.pop(sid, None)
            self._seen.pop(sid, None)
        if session is not None:
            session.close()
        return session is not None

    def reap(self) -> list[str]:
        """Close the sessions idle for longer than the timeout; return their ids."""
        now = time.monotonic()
        with self._lock:
            idle = [sid for sid, seen in self._seen.items()
                    if now - seen > self.config.idle_timeout_s]
        return [sid for sid in idle if self.close(sid)]

    def close_all(self) -> None:
        for sid in list(self._sessions):
            self.close(sid)


class OpenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_id: str
    mode: Literal["agent", "patch"] = "agent"


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str


def _obs(obs: Observation) -> dict[str, Any]:
    return {"text": obs.text,
            "messages": [{"role": m.role, "content": m.content} for m in obs.messages]}


def _reaper(pool: SessionPool, stop: threading.Event) -> None:
    every = min(5.0, pool.config.idle_timeout_s / 4)
    while not stop.wait(every):
        pool.reap()


def serve_app(tasks: Mapping[str, tuple[TaskSpec, EnvSpec]], home: Path, settings: Settings,
              config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI app serving sessions over ``tasks`` (``task_id -> (task, env)``); see
    the module docstring. ``app.state.pool`` is its ``SessionPool``."""
    config = config or ServeConfig()
    pool = SessionPool(dict(tasks), Path(home).absolute(), settings, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        reaper = threading.Thread(target=_reaper, args=(pool, stop), daemon=True,
                                  name="codemill-serve-reaper")
        reaper.start()
        try:
            yield
        finally:
            stop.set()
            reaper.join(10)
            pool.close_all()

    app = FastAPI(title="codemill task sessions", lifespan=lifespan)
    app.state.pool = pool

    @app.middleware("http")
    async def bearer(request: Request, call_next: Any) -> Any:
        if config.token is not None and request.url.path != "/health":
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {config.token}".encode()):
                return JSONResponse({"error": "missing or wrong bearer token"}, 401)
        return await call_next(request)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, exc.status)

    @app.exception_handler(SessionError)
    async def out_of_order(request: Request, exc: SessionError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, 409)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"malformed request: {why}"}, 422)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "sessions": len(pool), "max_sessions": config.max_sessions,
                "tasks": len(pool.tasks)}

    @app.get("/tasks")
    def list_tasks() -> list[dict[str, str]]:
        return [{"task_id": t.task_id, "env_id": e.env_id,
                 "problem_statement": t.problem_statement} for t, e in pool.tasks.values()]

    @app.post("/sessions", status_code=201)
    def create_session(body: OpenRequest) -> dict[str, Any]:
        sid, obs = pool.open(body.task_id, body.mode)
        return {"session_id": sid, "observation": _obs(obs)}

    @app.post("/sessions/{sid}/step")
    def step(sid: str, body: StepRequest) -> dict[str, Any]:
        session = pool.get(sid)
        obs, done = session.step(body.action)
        out: dict[str, Any] = {"observation": _obs(obs), "done": done, "reward": 0.0,
                               "stop_reason": None, "truncated": False, "verdict": {}}
        if done:
            reward = session.grade()
            out.update(reward=reward.value, stop_reason=str(session.stop_reason),
                       truncated=session.truncated,
                       verdict=reward.model_dump(mode="json", exclude=_ATTEMPT_FIELDS))
        return out

    @app.post("/sessions/{sid}/reset")
    def reset(sid: str) -> dict[str, Any]:
        return {"observation": _obs(pool.get(sid).reset())}

    @app.delete("/sessions/{sid}", status_code=204)
    def close(sid: str) -> Response:
        if not pool.close(sid):
            raise Refused(404, f"no session {sid!r} (closed, reaped or never opened)")
        return Response(status_code=204)

    return app


def run(app: FastAPI, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve ``app`` on ``host:port`` (0: a free port) until interrupted; ``announce``
    gets the URL once the socket is bound. Shutting down closes every session."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections made as soon as the URL is announced wait, not fail
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    announce(f"http://{shown}:{sock.getsockname()[1]}")
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
