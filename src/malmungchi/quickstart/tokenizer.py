"""A small byte-level BPE tokenizer trained on the sample at run time, so the quick start needs no download.

It has a ChatML chat template and the usual Qwen-style special tokens, so chat mode, stop tokens and
exact-match scoring behave as they do with a real Korean-capable tokenizer — only smaller and faster.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 2000):
    """Train, save to `out_dir` with save_pretrained, and return the transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(list(texts), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        clean_up_tokenization_spaces=False, model_max_length=4096)
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(out_dir)
    return tokenizer
