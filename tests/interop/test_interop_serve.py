"""The session server on the toy task over loopback HTTP: a scripted episode earns the grader's
1, sessions run side by side in their own forks up to the limit, the token is required,
bad requests get a clear error, and idle or left-over sessions leave no fork behind."""

from __future__ import annotations

import threading
import time

import httpx

from codemill.interop.serve import ServeConfig, serve_app
from codemill.rollouts.session import SessionConfig
from interop.served import Served, forks
from rollouts.test_rollouts_groups import AGENT, FIX

WRONG = FIX[1].replace("a + b", "a * b")
AUTH = {"Authorization": "Bearer s3cret"}


def app(toy, **limits):
    config = ServeConfig(session=SessionConfig(agent=AGENT), **limits)
    return serve_app({toy.task.task_id: (toy.task, toy.env)}, toy.home, toy.settings, config)


def test_scripted_episode_with_a_token(toy):
    before = forks(toy)
    with Served(app(toy, token="s3cret")) as served, httpx.Client(base_url=served.url) as http:
        assert http.get("/health").json() == {"status": "ok", "sessions": 0,
                                              "max_sessions": 8, "tasks": 1}
        denied = http.get("/tasks")
        assert denied.status_code == 401 and "token" in denied.json()["error"]
        wrong = http.get("/tasks", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert [t["task_id"] for t in http.get("/tasks", headers=AUTH).json()] == \
            [toy.task.task_id]
        opened = http.post("/sessions", json={"task_id": toy.task.task_id}, headers=AUTH)
        assert opened.status_code == 201
        sid, obs = opened.json()["session_id"], opened.json()["observation"]
        assert [m["role"] for m in obs["messages"]] == ["system", "user"]
        assert obs["messages"][1]["content"] == toy.task.problem_statement
        steps = [http.post(f"/sessions/{sid}/step", json={"action": a}, headers=AUTH).json()
                 for a in FIX]
        assert [s["reward"] for s in steps] == [0.0, 0.0, 1.0]
        assert [s["done"] for s in steps] == [False, False, True]
        assert steps[-1]["stop_reason"] == "submitted" and steps[-1]["verdict"]["resolved"]
        again = http.post(f"/sessions/{sid}/step", json={"action": FIX[2]}, headers=AUTH)
        assert again.status_code == 409 and "episode is over" in again.json()["error"]
        assert http.post(f"/sessions/{sid}/reset", headers=AUTH).status_code == 200
        assert len(forks(toy) - before) == 1  # the new episode's fork
        assert http.delete(f"/sessions/{sid}", headers=AUTH).status_code == 204
        assert forks(toy) == before
        gone = http.post(f"/sessions/{sid}/step", json={"action": "x"}, headers=AUTH)
        assert gone.status_code == 404 and "no session" in gone.json()["error"]


def test_sessions_side_by_side_up_to_the_limit_and_bad_requests(toy):
    before = forks(toy)
    with Served(app(toy, max_sessions=2)) as served, httpx.Client(base_url=served.url,
                                                                  timeout=120) as http:
        opened: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda: opened.append(http.post(
            "/sessions", json={"task_id": toy.task.task_id}))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status_code for r in opened] == [201, 201]
        a, b = (r.json()["session_id"] for r in opened)
        assert len(forks(toy) - before) == 2 and http.get("/health").json()["sessions"] == 2
        full = http.post("/sessions", json={"task_id": toy.task.task_id})
        assert full.status_code == 503 and "capacity" in full.json()["error"]
        # interleaved episodes do not see each other's edits
        http.post(f"/sessions/{a}/step", json={"action": FIX[1]})
        http.post(f"/sessions/{b}/step", json={"action": WRONG})
        ra = http.post(f"/sessions/{a}/step", json={"action": FIX[2]}).json()
        rb = http.post(f"/sessions/{b}/step", json={"action": FIX[2]}).json()
        assert (ra["reward"], rb["reward"]) == (1.0, 0.0)
        bad = http.post(f"/sessions/{a}/step", json={"text": "ls"})
        assert bad.status_code == 422 and "action" in bad.json()["error"]
        unknown = http.post("/sessions", json={"task_id": "nope"})
        assert unknown.status_code == 404 and "unknown task" in unknown.json()["error"]
        mode = http.post("/sessions", json={"task_id": toy.task.task_id, "mode": "chat"})
        assert mode.status_code == 422 and "mode" in mode.json()["error"]
        http.delete(f"/sessions/{a}")
        assert http.post("/sessions", json={"task_id": toy.task.task_id}).status_code == 201
    assert forks(toy) == before  # shutdown closed what the client left open


def test_idle_sessions_are_reaped(toy):
    before = forks(toy)
    with Served(app(toy, idle_timeout_s=0.5)) as served, httpx.Client(base_url=served.url,
                                                                      timeout=120) as http:
        sid = http.post("/sessions", json={"task_id": toy.task.task_id}).json()["session_id"]
        assert len(forks(toy) - before) == 1
        deadline = time.monotonic() + 15
        while http.get("/health").json()["sessions"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert http.get("/health").json()["sessions"] == 0 and forks(toy) == before
        assert http.post(f"/sessions/{sid}/step", json={"action": "x"}).status_code == 404
