"""Any ``ModelBackend`` as an OpenAI-compatible HTTP endpoint (standard library only).

Routes: ``POST /v1/chat/completions`` (messages with tool calls, ``tools``, ``temperature``,
``top_p``, ``max_tokens``/``max_completion_tokens``, ``seed``; returns one choice and
``usage``) and ``GET /v1/models``. Not supported: streaming and ``n > 1`` (answered 400).
A backend that samples through a batched engine (``batched = True``: the local models)
serves concurrent requests at once, and the engine decodes them together; any other
backend answers one request at a time.

It serves trusted local clients (rollout workers, ``OpenAIBackend``); it has no
authentication, so bind it to loopback unless the network is yours.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from codemill.agent.models.chat import message_from_openai, message_to_openai
from codemill.core.protocols import ModelBackend
from codemill.core.records import SamplingConfig

MAX_BODY = 64 * 1024 * 1024


class _BadRequest(ValueError):
    """A request the server rejects with 400; the message goes back to the client."""


def _sampling(body: dict[str, Any]) -> SamplingConfig:
    if body.get("stream"):
        raise _BadRequest("stream=true is not supported")
    if int(body.get("n") or 1) != 1:
        raise _BadRequest("only n=1 is supported")
    fields: dict[str, Any] = {}
    for key in ("temperature", "top_p", "seed"):
        if body.get(key) is not None:
            fields[key] = body[key]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        fields["max_tokens"] = max_tokens
    try:
        return SamplingConfig(**fields)
    except ValueError as exc:
        raise _BadRequest(f"bad sampling settings: {exc}") from None


def completion(backend: ModelBackend, body: dict[str, Any]) -> dict[str, Any]:
    """One chat-completions response body for one request body."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _BadRequest("'messages' must be a non-empty list")
    try:
        messages = [message_from_openai(m) for m in raw]
    except (AttributeError, TypeError, ValueError) as exc:
        raise _BadRequest(f"bad messages: {exc}") from None
    reply = backend.complete(messages, tools=body.get("tools") or None,
                             sampling=_sampling(body))
    message = message_to_openai(reply.message.model_copy(update={"role": "assistant"}))
    finish = "tool_calls" if reply.message.tool_calls else (reply.finish_reason or "stop")
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
        "created": int(time.time()), "model": body.get("model") or backend.name,
        "choices": [{"index": 0, "message": message, "finish_reason": finish,
                     "logprobs": None}],
        "usage": {"prompt_tokens": reply.prompt_tokens,
                  "completion_tokens": reply.completion_tokens,
                  "total_tokens": reply.prompt_tokens + reply.completion_tokens},
    }


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"  # keep-alive: the openai client reuses connections

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: a rollout makes thousands of requests

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": status}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            name = self.server.backend.name
            self._send(200, {"object": "list", "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "codemill"}]})
        else:
            self._error(404, f"no route {self.path}", "not_found")

    def do_POST(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path}", "not_found")
            return
        try:
            size = int(self.headers.get("Content-Length") or 0)
            if size > MAX_BODY:
                raise _BadRequest("request body too large")
            body = json.loads(self.rfile.read(size) or b"{}")
            if not isinstance(body, dict):
                raise _BadRequest("the body must be a JSON object")
            if getattr(self.server.backend, "batched", False):
                payload = completion(self.server.backend, body)
            else:
                with self.server.lock:
                    payload = completion(self.server.backend, body)
        except (_BadRequest, ValueError) as exc:
            self._error(400, str(exc), "invalid_request_error")
        except Exception as exc:  # a failing backend is the client's 500, not our crash
            self._error(500, f"{type(exc).__name__}: {exc}", "server_error")
        else:
            self._send(200, payload)


class ModelServer(ThreadingHTTPServer):
    """``ModelServer(backend, host, port)``; ``serve_forever()`` or ``start()`` in a thread."""

    daemon_threads = True

    def __init__(self, backend: ModelBackend, host: str = "127.0.0.1", port: int = 8000):
        super().__init__((host, port), _Handler)
        self.backend = backend
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """Base URL for OpenAI clients, e.g. ``http://127.0.0.1:8000/v1``."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> threading.Thread:
        """Serve in a daemon thread; stop with ``shutdown()`` then ``server_close()``."""
        thread = threading.Thread(target=self.serve_forever, name="codemill-model-serve",
                                  daemon=True)
        thread.start()
        return thread
