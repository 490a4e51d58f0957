"""Layer 3: the agent loop, its tools and model backends. Imports only codemill.core.

- ``loop``: ``Agent(model, AgentConfig()).run(sandbox, task_prompt, rollout_id=...)``
- ``config``: ``AgentConfig``, every knob of a run
- ``tools``: bash, view, edit, search, run_tests, submit, over the ``Sandbox`` protocol
- ``actions``: the text action format for models without native tool calls
- ``prompts``: the system prompt and the loop's fixed messages
- ``models``: ``make_backend(spec)``: OpenAI-compatible, transformers, SmolLM2, scripted
- ``serve``: any backend as an OpenAI-compatible HTTP endpoint

Importing this package is cheap: backends import openai, torch and transformers when built.
"""
