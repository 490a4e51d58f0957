"""Tasks as the datasets others load: a Hugging Face dataset and veRL's RL Parquet layout.

    rows = task_rows(pairs, home, settings)           # pairs: [(TaskSpec, EnvSpec), ...]
    save_hf(rows, out_dir)                             # datasets.load_from_disk(out_dir)
    save_verl(rows, "train.parquet", home, settings)   # veRL's data.train_files

Each row carries both modes' prompts, exactly what codemill's own rollouts show: the agent
mode's system prompt (tools, text action format) and problem statement, and the patch mode's
messages (``codemill.rollouts.patch_mode``: problem, failing output, numbered listing, answer
format) built over the task's patch context (one sandboxed run of its failing tests, cached
in ``home``). A task whose patch context cannot be built is left out and named in
``TaskRows.skipped``: a dataset row without its prompt would train on nothing.

The veRL file is patch mode (one answer per prompt): ``prompt`` is the chat messages,
``reward_model.ground_truth`` the task id, and ``extra_info`` what
``codemill.interop.verl_reward.compute_score`` needs to grade an answer in a sandbox (the
task, environment and settings records as JSON, and the home holding the environment).
Hidden tests and the gold patch ride in ``extra_info`` for the grader; veRL never shows
``extra_info`` to the model, but a pipeline that does would leak the answer.

Not here: reading tasks from the warehouse (the caller's, e.g. ``codemill tasks export-hf``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codemill.agent.config import AgentConfig
from codemill.agent.loop import Agent
from codemill.agent.models.scripted import ScriptedBackend
from codemill.core.config import Settings
from codemill.core.records import EnvSpec, Message, TaskSpec
from codemill.rollouts.patch_mode import AnswerFormat, patch_messages
from codemill.rollouts.runner import prepare_patch_contexts

DATA_SOURCE = "codemill"
"""veRL's ``data_source`` (it picks the reward function by it when none is configured)."""
ABILITY = "code"

CARD = """---
license: other
task_categories:
- text-generation
tags:
- code
- reinforcement-learning
- codemill
---
# codemill tasks

{n} bug-fixing tasks exported by codemill. Each task is a broken state of a Python
repository plus the tests that prove it fixed; a solution is graded by running those tests in
a sandbox (`codemill grade`, or `codemill.interop.verl_reward.compute_score` for patch-mode
answers).

## Load

```python
import datasets
ds = datasets.load_from_disk("{out}")
print(ds[0]["patch_prompt"])
```

## Columns

- `task_id`: content hash of the task (environment, broken state, tests)
- `env_id`: content hash of the executable environment the task runs in
- `kind`: how the task was made (`mined` from history, `synth` by a mutation, ...)
- `problem_statement`: the issue text the agent gets
- `agent_prompt`: agent mode's chat messages (`role`, `content`): the system prompt with
  the tools and the text action format, then the problem statement
- `patch_prompt`: patch mode's chat messages: the problem, the failing test output and a
  numbered listing of the code the failing tests run, asking for one edit
- `answer_format`: the edit format `patch_prompt` asks for (`lines` or `search_replace`)
- `fail_to_pass`, `pass_to_pass`: test ids that must pass after the fix
- `metadata`: the task's provenance and difficulty features, as JSON

## License

The prompts quote code from the source repositories; each repository's own license applies
to its code (see `metadata` for the repository). The rest is Apache-2.0, as codemill.
"""


@dataclass
class TaskRows:
    """Dataset rows, one per task with a patch context, and the tasks left out."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Task id -> why its patch context could not be built."""


def _chat(messages: Iterable[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def agent_system_prompt(agent: AgentConfig | None = None) -> str:
    """The agent's own system prompt, as a session shows it (text actions, no native tools)."""
    cfg = (agent or AgentConfig()).model_copy(update={"native_tools": "off"})
    return Agent(ScriptedBackend([]), cfg).system_prompt


def task_rows(pairs: Iterable[tuple[TaskSpec, EnvSpec]], home: Path, settings: Settings,
              answer_format: AnswerFormat = "lines",
              agent: AgentConfig | None = None) -> TaskRows:
    """One row per task (see the module docstring); builds the patch contexts (cached)."""
    pairs = list(pairs)
    envs = {env.env_id: env for _, env in pairs}
    tasks = [task for task, _ in pairs]
    contexts = prepare_patch_contexts(tasks, envs, Path(home).absolute(), settings)
    system = agent_system_prompt(agent)
    out = TaskRows()
    for task, env in pairs:
        context = contexts[task.task_id]
        if context.error:
            out.skipped[task.task_id] = context.error
            continue
        out.rows.append({
            "task_id": task.task_id, "env_id": task.env_id, "kind": str(task.kind),
            "problem_statement": task.problem_statement,
            "agent_prompt": [{"role": "system", "content": system},
                             {"role": "user", "content": task.problem_statement}],
            "patch_prompt": _chat(patch_messages(task.problem_statement, context,
                                                 answer_format)),
            "answer_format": answer_format,
            "fail_to_pass": list(task.fail_to_pass), "pass_to_pass": list(task.pass_to_pass),
            "metadata": json.dumps(task.metadata, sort_keys=True, default=str),
            # Not a column of the HF dataset: what the veRL grader needs.
            "_records": (task, env),
        })
    return out


def save_hf(rows: TaskRows, out_dir: Path) -> int:
    """Save the rows as a ``datasets.Dataset`` (``save_to_disk``) with a README card;
    returns the number of rows."""
    import datasets

    out_dir = Path(out_dir)
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows.rows]
    ds = datasets.Dataset.from_list(public) if public else datasets.Dataset.from_dict({})
    ds.save_to_disk(str(out_dir))
    (out_dir / "README.md").write_text(CARD.format(n=len(public), out=out_dir))
    return len(public)


def verl_rows(rows: TaskRows, home: Path, settings: Settings,
              split: str = "train") -> list[dict[str, Any]]:
    """veRL's RL layout of the rows (patch mode); see the module docstring."""
    out = []
    for index, row in enumerate(rows.rows):
        task, env = row["_records"]
        out.append({
            "data_source": DATA_SOURCE,
            "prompt": row["patch_prompt"],
            "ability": ABILITY,
            "reward_model": {"style": "rule", "ground_truth": task.task_id},
            "extra_info": {
                "split": split, "index": index, "task_id": task.task_id,
                "env_id": env.env_id, "home": str(Path(home).absolute()),
                "answer_format": row["answer_format"],
                "task": task.model_dump_json(), "env": env.model_dump_json(),
                "settings": settings.model_dump_json(),
            },
        })
    return out


def save_verl(rows: TaskRows, path: Path, home: Path, settings: Settings,
              split: str = "train") -> int:
    """Write ``verl_rows`` as one Parquet file (``data.train_files``); returns the count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(verl_rows(rows, home, settings, split))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(path))
    return table.num_rows


def records_of(extra_info: dict[str, Any]) -> tuple[TaskSpec, EnvSpec, Path, Settings]:
    """The task, environment, home and settings a veRL row's ``extra_info`` names."""
    settings = Settings.model_validate_json(extra_info["settings"])
    return (TaskSpec.model_validate_json(extra_info["task"]),
            EnvSpec.model_validate_json(extra_info["env"]), Path(extra_info["home"]), settings)
