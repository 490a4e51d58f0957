"""Metrics as TensorBoard event files: what people already open to watch a run.

    with tensorboard_scalars(home / "tb" / run, "train") as log:
        train_steps(policy, seqs, on_step=log)      # each step's dict -> scalars at its step

Training (``codemill.factory.training``: ``<home>/tb/<checkpoint id>``) and evals
(``codemill.factory.eval_api``: a checkpoint's eval in its checkpoint's directory) write
here; ``tensorboard --logdir <home>/tb`` shows every run. The ledger stays the record
(``checkpoints.metrics``, ``evals``); these files are a view of it, written as it goes.

Written with TensorBoard's own event writer (``tensorboard.summary.writer``) as classic
``simple_value`` scalars, as ``torch.utils.tensorboard`` writes them, so no framework is
imported. Needs the ``tensorboard`` package (the ``train`` extra).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Log = Callable[[Mapping[str, Any]], None]


def logdir(home: Path, run: str) -> Path:
    """``<home>/tb/<run>``: ``run`` is a checkpoint id (its first 16 digits name the
    directory, for its training and its evals alike) or a model spec, made path-safe."""
    if run.startswith("ckpt:"):
        run = run.split(":", 1)[1]
    if re.fullmatch(r"[0-9a-f]{16,}", run):
        run = run[:16]
    return Path(home) / "tb" / (re.sub(r"[^A-Za-z0-9._@-]+", "_", run).strip("._") or "run")


def _numbers(metrics: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, float]]:
    for key, value in metrics.items():
        tag = f"{prefix}/{key}"
        if isinstance(value, Mapping):
            yield from _numbers(value, tag)
        elif (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value)):
            yield tag, float(value)


@contextmanager
def tensorboard_scalars(logdir: Path, prefix: str) -> Iterator[Log]:
    """Yield ``log(metrics)``: every finite number in ``metrics`` (one step's dict, as an
    ``on_step`` callback gets it; nested dicts become ``a/b``) is written as the scalar
    ``<prefix>/<name>`` at step ``metrics["step"]`` (0 when absent). ``step`` itself,
    None, booleans and text are left out. The event file under ``logdir`` is flushed after
    each call and closed when the block ends; a rerun adds a file beside the old ones."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(logdir))

    def log(metrics: Mapping[str, Any]) -> None:
        step = int(metrics.get("step") or 0)
        values = [Summary.Value(tag=tag, simple_value=value)
                  for tag, value in _numbers(metrics, prefix) if tag != f"{prefix}/step"]
        if values:
            writer.add_event(Event(wall_time=time.time(), step=step,
                                   summary=Summary(value=values)))
            writer.flush()

    try:
        yield log
    finally:
        writer.close()
