"""Layer 4.5: codemill tasks as environments for the trainers and agents people already use.

Each adapter wraps the one session API (``codemill.rollouts.session``: reset, step, grade,
close; agent and patch mode), so every adapter's observations are what codemill's own agent
sees and its reward is the grader's:

- ``gym``: a ``gymnasium.Env`` with text observation and action spaces
- ``open_env``: an OpenEnv ``Environment``, its FastAPI server (``task_app``) and client
- ``serve``: task sessions over plain HTTP (``serve_app``; ``codemill env serve``)
- ``verifiers_env``: a verifiers (``verifiers.v1``) taskset and env
- ``skyrl_env``: a SkyRL-gym ``BaseTextEnv``
- ``mini_swe_agent``: mini-swe-agent's ``DefaultAgent`` with its shell actions run in a
  session's sandbox fork, the fork's diff graded (``codemill.factory.mini_swe_agent``
  records the episode)
- ``datasets``: tasks as a Hugging Face dataset and as veRL's RL Parquet, graded by
  ``verl_reward.compute_score`` (veRL's custom reward function)

They need the extra ``interop`` (``gymnasium``, ``openenv-core``, ``fastapi``, ``uvicorn``,
``datasets``, ``skyrl-gym``, ``verifiers``, ``mini-swe-agent``).

Importing this package is cheap: an adapter imports its framework when its module is imported.
"""
