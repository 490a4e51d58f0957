"""OpenAIBackend against the real ``codemill model serve`` server over loopback HTTP."""

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from codemill.agent.models.openai_backend import OpenAIBackend
from codemill.agent.models.scripted import ScriptedBackend
from codemill.agent.serve import ModelServer
from codemill.core.errors import ModelError
from codemill.core.records import Message, SamplingConfig, ToolCall


@pytest.fixture
def serve():
    servers = []

    def start(backend):
        server = ModelServer(backend, "127.0.0.1", 0)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_text_completion_with_usage(serve):
    server = serve(ScriptedBackend(["hello there world"], name="toy"))
    with OpenAIBackend("toy", server.url, max_retries=0) as client:
        reply = client.complete([Message(role="user", content="say hi")],
                                sampling=SamplingConfig(max_tokens=16, seed=3))
    assert reply.message.role == "assistant"
    assert reply.message.content == "hello there world"
    assert (reply.prompt_tokens, reply.completion_tokens) == (2, 3)
    assert reply.finish_reason == "stop" and reply.latency_s > 0


def test_tool_calls_and_tool_messages_round_trip(serve):
    seen = {}

    def policy(messages, tools):
        seen["messages"], seen["tools"] = list(messages), tools
        return Message(role="assistant", content="", tool_calls=(
            ToolCall(id="c9", name="view", arguments={"path": "a.py", "start_line": 2}),))

    server = serve(ScriptedBackend(policy, supports_tools=True))
    schema = {"type": "function", "function": {"name": "view", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}}}}}
    history = [
        Message(role="user", content="fix it"),
        Message(role="assistant", tool_calls=(
            ToolCall(id="c1", name="bash", arguments={"command": "ls"}),)),
        Message(role="tool", content="a.py", tool_call_id="c1", name="bash"),
    ]
    with OpenAIBackend("m", server.url, max_retries=0) as client:
        reply = client.complete(history, tools=[schema])
    assert reply.finish_reason == "tool_calls"
    assert reply.message.tool_calls == (
        ToolCall(id="c9", name="view", arguments={"path": "a.py", "start_line": 2}),)
    assert seen["messages"] == history
    assert seen["tools"] == [schema]


def test_backend_failure_is_a_model_error(serve):
    server = serve(ScriptedBackend([], name="empty"))
    with (OpenAIBackend("empty", server.url, max_retries=0) as client,
          pytest.raises(ModelError, match="no reply left")):
        client.complete([Message(role="user", content="hi")])


def test_unreachable_server_is_a_model_error():
    with (OpenAIBackend("m", "http://127.0.0.1:9/v1", max_retries=0, timeout_s=5) as client,
          pytest.raises(ModelError, match="Connection")):
        client.complete([Message(role="user", content="hi")])


def _http(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_models_route_and_bad_requests(serve):
    server = serve(ScriptedBackend(["x"], name="toy"))
    status, body = _http(server.url + "/models")
    assert status == 200 and [m["id"] for m in body["data"]] == ["toy"]
    status, body = _http(server.url + "/chat/completions",
                         {"model": "toy", "stream": True,
                          "messages": [{"role": "user", "content": "hi"}]})
    assert status == 400 and "stream" in body["error"]["message"]
    status, body = _http(server.url + "/chat/completions", {"messages": []})
    assert status == 400
    status, _ = _http(server.url + "/nope")
    assert status == 404


def test_cli_model_serve(tmp_path):
    argv = [str(Path(sys.executable).parent / "codemill"), "model", "serve",
            "--model", "scripted:echo", "--port", "0"]
    with subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            line = proc.stdout.readline()
            assert line.startswith("serving scripted:echo at http://127.0.0.1:"), line
            url = line.split(" at ")[1].strip()
            with OpenAIBackend("echo", url, max_retries=0) as client:
                reply = client.complete([Message(role="user", content="ping pong")])
            assert reply.message.content == "ping pong"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_agent_loop_over_http_with_native_tool_calls(serve, sandbox):
    from codemill.agent.loop import Agent, AgentConfig
    from codemill.core.records import StopReason

    from .conftest import TEST_COMMAND

    def call(i, name, **args):
        return Message(role="assistant", tool_calls=(ToolCall(id=f"c{i}", name=name,
                                                              arguments=args),))

    script = [
        "A text action also works on a native backend:\n```bash\ncat calc.py\n```",
        call(1, "edit", path="calc.py", old_str="a - b", new_str="a + b"),
        call(2, "run_tests"),
        call(3, "submit"),
    ]
    seen = []

    def policy(messages, tools):
        seen.append((list(messages), tools))
        return script[len(seen) - 1]

    server = serve(ScriptedBackend(policy, name="served", supports_tools=True))
    with OpenAIBackend("served", server.url, max_retries=0) as client:
        traj = Agent(client, AgentConfig(test_command=TEST_COMMAND)).run(
            sandbox, "fix add()", rollout_id="r-http")
    assert traj.stop_reason == StopReason.SUBMITTED, traj.error
    assert "+    return a + b" in traj.diff
    assert traj.policy == f"openai:served@{server.url}"
    assert [t["function"]["name"] for t in seen[0][1]][:2] == ["bash", "view"]
    # The text action was answered by a user turn, native calls by tool messages.
    last_messages = seen[-1][0]
    assert last_messages[3].role == "user" and "return a - b" in last_messages[3].content
    tool_msg = last_messages[-1]
    assert (tool_msg.role, tool_msg.tool_call_id, tool_msg.name) == ("tool", "c2", "run_tests")
    assert "OK" in tool_msg.content
    assert all(s.reply.completion_tokens > 0 for s in traj.steps[1:])
