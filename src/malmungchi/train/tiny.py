"""Tiny Llama-style models built from a config with random weights: for tests, benchmarks and the quick start.

They go through the real `save_pretrained`/`from_pretrained` path, so code that loads them is the code that
loads real models. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path


# The defaults keep every linear layer's inputs a multiple of 64 and its outputs of 32: bitsandbytes' 4-bit path on
# AVX512-BF16 CPUs repacks weights in blocks of that size (modeling.quantized_shape_problem). Keep it so for any
# tiny model that may be quantized.
def tiny_llama_config(vocab_size: int, *, hidden_size: int = 64, layers: int = 2, heads: int = 4,
                      kv_heads: int = 2, intermediate_size: int = 128, max_position_embeddings: int = 2048,
                      tie_word_embeddings: bool = True, bos_token_id: int | None = None,
                      eos_token_id: int | None = None, pad_token_id: int | None = None):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


def make_tiny_model(out_dir: str | Path, tokenizer, *, seed: int = 0, vocab_size: int | None = None, **config_kwargs) -> Path:
    """Create a randomly initialised tiny causal LM whose vocabulary fits `tokenizer`, save it (and the
    tokenizer) to `out_dir` with `save_pretrained`, and return the folder."""
    import torch
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = tiny_llama_config(
        vocab_size or len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config_kwargs,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
