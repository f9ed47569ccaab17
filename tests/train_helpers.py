"""Shared pieces of the train tests: a tiny model (random weights, from a config, saved and loaded through the real
from_pretrained path) and a contract build directory written with the real Qwen3 tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from malmungchi.schemas.config import TrainConfig

# Small enough that the Qwen3-sized (151k) vocabulary dominates and one step takes a fraction of a second.
# Every linear layer's inputs are a multiple of 64 and its outputs of 32 (head_dim 32, one kv head): bitsandbytes'
# 4-bit CPU path on AVX512-BF16 machines repacks weights in blocks of that size and fails on anything smaller
# (see modeling.quantized_shape_problem).
TINY = {"hidden_size": 64, "intermediate_size": 128, "heads": 2, "kv_heads": 1, "layers": 2}

STORY = [
    "옛날 옛적에 <|sound|> 호랑이가 울었다. 할머니는 떡을 이고 고개를 넘었다.",
    "<|start_of_dialogue|>철수: 안녕? <|laugh|> 오늘 날씨가 좋다.<|end_of_dialogue|>",
    "바람이 불었다 <|sound|>(문 닫히는 소리) 그리고 조용해졌다.",
    "토끼는 깡충깡충 뛰어 숲으로 갔다. 거북이는 천천히 따라갔다.",
]


def docs(n: int, prefix: str = "d") -> list[tuple[str, str]]:
    return [(f"{prefix}{i}", STORY[i % len(STORY)] + f" ({i})") for i in range(n)]


def make_build(out: Path, tokenizer_dir: Path, *, n_train: int = 8, n_val: int = 2, row_len: int = 64,
               pack: bool = True) -> Path:
    from contract_build import write_contract_build

    return write_contract_build(out, tokenizer_dir, {"train": docs(n_train), "validation": docs(n_val, "v")},
                                row_len=row_len, mask_first=2, pack=pack)


def make_model(out: Path, tokenizer_dir: Path, *, spare_rows: int = 0, tied: bool = True, seed: int = 0) -> Path:
    from transformers import AutoTokenizer

    from malmungchi.train.tiny import make_tiny_model

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    return make_tiny_model(out, tok, seed=seed, vocab_size=len(tok) + spare_rows, tie_word_embeddings=tied, **TINY)


def make_hybrid_model(out: Path, tokenizer_dir: Path, *, seed: int = 0) -> Path:
    """A tiny qwen3_next (random weights, saved with save_pretrained): one linear-attention layer (gated delta rule
    and a short convolution, which carry state across tokens) and one full-attention layer, 4 experts, tied head.
    peft's LoRA on the fused expert weights (all-linear targets them) needs lora_dropout=0."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3NextConfig

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = Qwen3NextConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        layer_types=["linear_attention", "full_attention"], num_attention_heads=2, num_key_value_heads=1,
        head_dim=32, linear_num_key_heads=2, linear_num_value_heads=2, linear_key_head_dim=32,
        linear_value_head_dim=32, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64,
        shared_expert_intermediate_size=64, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def make_moe_model(out: Path, tokenizer_dir: Path, *, seed: int = 0) -> Path:
    """A tiny qwen3_moe (random weights, saved with save_pretrained): 2 layers of 4 experts, stored fused as
    transformers 5 does (one 3-d tensor per layer and projection), tied head."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3MoeConfig

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = Qwen3MoeConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64,
        tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def train_cfg(model: Path, out: Path, **kw) -> TrainConfig:
    base = {"model": str(model), "out": str(out), "quant": "none", "max_steps": 4, "lr": 5e-3, "batch_size": 2,
            "seed": 0, "lora_r": 4, "args": {"save_steps": 1000, "logging_steps": 1}}
    args = kw.pop("args", {})
    base.update(kw)
    base["args"] = {**base["args"], **args}
    return TrainConfig.model_validate(base)


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory, qwen3_tokenizer_dir) -> Path:
    return make_build(tmp_path_factory.mktemp("build"), qwen3_tokenizer_dir)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, qwen3_tokenizer_dir) -> Path:
    """Tied head, exactly as many rows as the base tokenizer: the new tokens grow the vocabulary."""
    return make_model(tmp_path_factory.mktemp("model"), qwen3_tokenizer_dir)


def train_cli(tmp_path: Path, build: Path, model: Path, *args: str, train_table: str = ""):
    """`malmungchi train run BUILD --model MODEL --out TMP/run` through the CLI with a small config file
    (`train_table`: more `[train]` lines), unquantized; the click Result."""
    from click.testing import CliRunner

    from malmungchi.cli import main

    cfg = tmp_path / "malmungchi.toml"
    cfg.write_text(f"[train]\nlora_r = 4\nbatch_size = 2\n{train_table}\n[train.args]\nsave_steps = 1000\n",
                   encoding="utf-8")
    return CliRunner().invoke(main, ["train", "run", str(build), "--model", str(model), "--out",
                                     str(tmp_path / "run"), "--config", str(cfg), "--quant", "none", *args],
                              catch_exceptions=False)
