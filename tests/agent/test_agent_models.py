"""Backend specs, the scripted backend's file format, and cheap imports."""

import json
import subprocess
import sys

import pytest

from codemill.agent.models import make_backend
from codemill.agent.models.openai_backend import OpenAIBackend
from codemill.agent.models.scripted import ScriptedBackend
from codemill.core.errors import ModelError
from codemill.core.records import Message, ToolCall


def test_scripted_builtin_policy():
    backend = make_backend("scripted:submit")
    assert isinstance(backend, ScriptedBackend) and backend.name == "scripted:submit"
    reply = backend.complete([Message(role="user", content="go")])
    assert reply.message.content == '<tool name="submit"></tool>'


def test_scripted_json_file_with_tool_calls(tmp_path):
    path = tmp_path / "replies.json"
    path.write_text(json.dumps([
        "plain text",
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "x1", "type": "function",
             "function": {"name": "view", "arguments": "{\"path\": \"a.py\"}"}}]},
    ]))
    backend = make_backend(f"scripted:{path}")
    assert backend.supports_tools
    assert backend.complete([]).message.content == "plain text"
    second = backend.complete([])
    assert second.message.tool_calls == (ToolCall(id="x1", name="view",
                                                  arguments={"path": "a.py"}),)
    assert second.finish_reason == "tool_calls"


def test_openai_spec_splits_model_and_url():
    backend = make_backend("openai:qwen2.5-coder@http://127.0.0.1:1/v1")
    assert isinstance(backend, OpenAIBackend)
    assert backend.model == "qwen2.5-coder"
    assert backend.name == "openai:qwen2.5-coder@http://127.0.0.1:1/v1"


@pytest.mark.parametrize("spec", ["bogus:x", "openai", "scripted:/no/such/file.json",
                                  "transformers:/no/such/model"])
def test_bad_specs_are_model_errors(spec):
    with pytest.raises(ModelError):
        make_backend(spec)


def test_import_is_cheap():
    code = ("import sys, codemill.agent, codemill.agent.loop, codemill.agent.models, "
            "codemill.agent.serve, codemill.agent.models.scripted\n"
            "heavy = [m for m in ('openai', 'torch', 'transformers', 'httpx') "
            "if m in sys.modules]\nassert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
