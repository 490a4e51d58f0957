"""The policy being trained: a transformers causal LM (optionally under a LoRA adapter),
its tokenizer, its AdamW optimizer, and how it leaves and re-enters disk.

Two things go to disk, both written to a temporary name and renamed into place (a reader
never sees half a directory):

- a *state* after every step (``<run>/state/step-NNNNNN/``): the trainable weights
  (safetensors), the optimizer, the RNG and the step's metrics; ``resume`` reloads the
  newest complete one, so a killed run neither repeats nor loses a step;
- the *checkpoint* (``<run>/``): weights as safetensors (only the adapter when LoRA) and
  ``manifest.json`` naming the base model, the lora flag and the parent; what
  ``--model ckpt:ID`` loads (``codemill.agent.models.checkpoints``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codemill.core.errors import CodemillError
from codemill.train.config import TrainConfig

MANIFEST = "manifest.json"


class TrainError(CodemillError):
    """A training run that cannot start, resume or save."""


def pick_device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; other names unchanged."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class Policy:
    """A model in training with everything a step and a save need."""

    model: Any
    tokenizer: Any
    optimizer: Any
    config: TrainConfig
    device: str
    step: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)

    def trainable(self) -> dict[str, Any]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def autocast(self) -> Any:
        """The context a forward pass runs in: bfloat16 autocast when the config asks for
        ``bf16``, else a no-op."""
        import torch

        return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16,
                              enabled=self.config.precision == "bf16")


def load_policy(model_dir: Path, config: TrainConfig, *, adapter_dir: Path | None = None) -> Policy:
    """The base model at ``model_dir`` (a transformers directory with its tokenizer), with
    the adapter at ``adapter_dir`` loaded for further training, or a fresh LoRA adapter
    when ``config.lora``; AdamW over the trainable weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codemill.agent.models.local import quiet_transformers

    quiet_transformers()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if config.kl_coef > 0:
        raise TrainError("kl_coef > 0 is not implemented (no reference model is kept)")
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise TrainError(f"cannot load the model at {model_dir}: {exc}") from exc
    if adapter_dir is not None or config.lora:
        from peft import LoraConfig, PeftModel, get_peft_model

        with warnings.catch_warnings():  # peft calls APIs transformers 5 deprecates
            warnings.simplefilter("ignore", FutureWarning)
            if adapter_dir is not None:
                model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
            else:
                n = int(model.config.num_hidden_layers)
                layers = (list(range(max(0, n - config.lora_layers), n))
                          if config.lora_layers else None)
                model = get_peft_model(model, LoraConfig(
                    r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                    target_modules=list(config.lora_targets), layers_to_transform=layers,
                    task_type="CAUSAL_LM"))
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.betas,
                                  weight_decay=config.weight_decay)
    return Policy(model, tokenizer, optimizer, config, device)


def _atomic_dir(target: Path) -> Path:
    """A fresh temporary sibling of ``target``; leftovers of a killed writer go first (one
    writer per run directory)."""
    for stale in target.parent.glob(f".{target.name}.*.part"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    tmp.mkdir(parents=True)
    return tmp


def save_state(policy: Policy, run_dir: Path) -> Path:
    """The state after ``policy.step`` (see the module docstring); older states are
    removed once the new one is in place."""
    import torch
    from safetensors.torch import save_file

    states = run_dir / "state"
    target = states / f"step-{policy.step:06d}"
    tmp = _atomic_dir(target)
    save_file({n: p.detach().cpu().contiguous() for n, p in policy.trainable().items()},
              str(tmp / "trainable.safetensors"))
    torch.save({"optimizer": policy.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(), "python_rng": random.getstate()},
               tmp / "optimizer.pt")
    (tmp / "meta.json").write_text(json.dumps({"step": policy.step,
                                               "metrics": policy.metrics}))
    tmp.rename(target)
    for old in states.glob("step-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def state_saver(config: TrainConfig, run_dir: Path) -> Callable[[Policy], None]:
    """A ``save`` callback for the loops: a state every ``save_every`` steps and after the
    last."""
    def save(policy: Policy) -> None:
        if policy.step % config.save_every == 0 or policy.step == config.steps:
            save_state(policy, run_dir)

    return save


def resume(policy: Policy, run_dir: Path) -> bool:
    """Load the newest complete state under ``run_dir``; False when there is none."""
    import torch
    from safetensors.torch import load_file

    done = sorted((run_dir / "state").glob("step-*")) if (run_dir / "state").is_dir() else []
    if not done:
        return False
    latest = done[-1]
    weights = load_file(str(latest / "trainable.safetensors"), device=policy.device)
    missing = set(policy.trainable()) - set(weights)
    if missing:
        raise TrainError(f"{latest}: state lacks {len(missing)} trainable tensors "
                         "(was it written with another config?)")
    with torch.no_grad():
        for name, param in policy.trainable().items():
            param.copy_(weights[name])
    extra = torch.load(latest / "optimizer.pt", weights_only=False)
    policy.optimizer.load_state_dict(extra["optimizer"])
    torch.set_rng_state(extra["torch_rng"])
    random.setstate(extra["python_rng"])
    meta = json.loads((latest / "meta.json").read_text())
    policy.step, policy.metrics = int(meta["step"]), list(meta["metrics"])
    return True


def save_checkpoint(policy: Policy, run_dir: Path, manifest: dict[str, Any]) -> Path:
    """The final weights and ``manifest.json`` in ``run_dir`` (states are dropped)."""
    tmp = _atomic_dir(run_dir.with_name(run_dir.name + "-final"))
    with warnings.catch_warnings():  # peft calls APIs transformers 5 deprecates
        warnings.simplefilter("ignore", FutureWarning)
        policy.model.save_pretrained(tmp, safe_serialization=True)
    if not manifest.get("lora"):
        policy.tokenizer.save_pretrained(tmp)
    (tmp / "metrics.json").write_text(json.dumps(policy.metrics))
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    shutil.rmtree(run_dir / "state", ignore_errors=True)
    # The manifest moves last: a directory with a manifest is a complete checkpoint.
    for item in sorted(tmp.iterdir(), key=lambda p: p.name == MANIFEST):
        os.replace(item, run_dir / item.name)
    tmp.rmdir()
    return run_dir
