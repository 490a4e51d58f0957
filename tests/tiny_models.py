"""Tiny token-exact models for tests that need a real local model but not a real one's
weights: a randomly initialised two-layer Llama with a word-level tokenizer, a real
transformers checkpoint directory that loads and samples in milliseconds."""


def word_level_llama(path):
    """Write the model and its tokenizer to ``path`` and return ``path``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["[UNK]", "[PAD]", "</s>", "submit", "tool", "bash", "ls", "```", "<", ">"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   eos_token="</s>")
    fast.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                          "{% endfor %}assistant:")
    cfg = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=8192, eos_token_id=2, pad_token_id=1)
    LlamaForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path
