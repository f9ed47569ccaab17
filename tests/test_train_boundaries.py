"""Models whose layers carry state from token to token (linear attention, mamba, short convolutions): which ones
need packed-sequence boundaries, the layout each gets, and `train run` on a tiny qwen3_next — refused in one line on
packed rows without the kernel packages, trained on a `--no-pack` build."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from malmungchi.contracts.build import read_build_dir
from malmungchi.train.boundaries import choose_layout, needs_sequence_boundaries, stateful_layers
from train_helpers import make_build, make_hybrid_model, train_cli

KERNELS = [name for name in ("causal_conv1d", "fla") if importlib.util.find_spec(name) is not None]


def _config(model_type: str, **kw):
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **kw)


@pytest.mark.parametrize("model_type, kw, stateful", [
    ("llama", {}, []),
    ("mixtral", {}, []),
    ("gemma3", {}, []),  # sliding and full attention: both attention
    ("gpt_oss", {}, []),
    ("qwen3_next", {}, ["linear_attention"]),
    ("qwen3_5", {}, ["linear_attention"]),  # a multimodal config: its text config's layer types
    ("zamba", {}, ["hybrid", "linear_attention"]),
    ("granitemoehybrid", {}, ["linear_attention"]),
    ("nemotron_h", {}, ["linear_attention"]),  # its moe and mlp layers are not stateful
    ("lfm2", {"num_hidden_layers": 2, "full_attn_idxs": [1]}, ["conv"]),
    ("lfm2", {"num_hidden_layers": 2}, []),  # every layer attention (its default)
    ("mamba", {}, ["linear_attention"]),
    ("rwkv", {}, ["recurrent"]),  # no layer_types: known by its model type
])
def test_which_models_need_sequence_boundaries(model_type, kw, stateful):
    config = _config(model_type, **kw)
    assert stateful_layers(config) == stateful
    assert needs_sequence_boundaries(config) is bool(stateful)


@pytest.mark.parametrize("model_type, attn, packed, flatten, seq_idx, says", [
    ("llama", "sdpa", True, False, False, "packed rows; documents kept apart by position_ids"),
    ("llama", "flash_attention_2", True, True, False,
     "packed rows flattened into one; documents kept apart by cu_seq_lens"),
    ("qwen3_next", "sdpa", True, True, True, "packed rows flattened into one; documents kept apart by cu_seq_lens "
                                             "and seq_idx, for qwen3_next's linear_attention layers"),
    ("qwen3_next", "sdpa", False, False, False, "one document per row: qwen3_next's linear_attention layers need "
                                                "no boundaries"),
    ("qwen3_next", "flash_attention_2", False, False, False, "one document per row"),  # flattening would pack them
])
def test_layout(model_type, attn, packed, flatten, seq_idx, says):
    layout = choose_layout(_config(model_type), attn, packed=packed)
    assert (layout.flatten, layout.seq_idx) == (flatten, seq_idx)
    assert layout.describe().startswith(says)


@pytest.fixture(scope="module")
def hybrid_model(tmp_path_factory, qwen3_tokenizer_dir):
    return make_hybrid_model(tmp_path_factory.mktemp("hybrid"), qwen3_tokenizer_dir)


@pytest.fixture(scope="module")
def packed_build(tmp_path_factory, qwen3_tokenizer_dir):
    return make_build(tmp_path_factory.mktemp("packed"), qwen3_tokenizer_dir, n_train=4, n_val=1)


@pytest.fixture(scope="module")
def unpacked_build(tmp_path_factory, qwen3_tokenizer_dir):
    return make_build(tmp_path_factory.mktemp("unpacked"), qwen3_tokenizer_dir, n_train=4, n_val=1, pack=False)


def _run(tmp_path, build, model, *args):
    return train_cli(tmp_path, build, model, *args, train_table="lora_dropout = 0.0")


def test_rows_holding_one_sequence_are_seen(packed_build, unpacked_build):
    assert read_build_dir(packed_build).most_sequences_per_row("train") > 1
    assert read_build_dir(unpacked_build).most_sequences_per_row("train") == 1
    assert read_build_dir(unpacked_build).most_sequences_per_row("validation") == 1
    assert read_build_dir(unpacked_build).most_sequences_per_row("test") == 0  # not read for training


def test_dry_run_says_how_documents_are_kept_apart(tmp_path, hybrid_model, packed_build, unpacked_build):
    packed = _run(tmp_path, packed_build, hybrid_model, "--dry-run", "--json")
    assert packed.exit_code == 0, packed.stderr
    assert "kept apart by cu_seq_lens and seq_idx" in json.loads(packed.stdout)["plan"]["attention"]
    unpacked = _run(tmp_path, unpacked_build, hybrid_model, "--dry-run", "--json")
    assert "one document per row" in json.loads(unpacked.stdout)["plan"]["attention"]
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(bool(KERNELS), reason=f"kernel packages installed ({KERNELS}): packed rows can be trained")
def test_packed_rows_without_kernels_refused_in_one_line(tmp_path, hybrid_model, packed_build, one_torch_thread):
    result = _run(tmp_path, packed_build, hybrid_model, "--max-steps", "2")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    for needle in ("qwen3_next has linear_attention layers", "`causal_conv1d`", "`flash-linear-attention`",
                   "--no-pack"):
        assert needle in lines[0], needle
    assert not (tmp_path / "run").exists()  # not even the checkpoints folder the trainer made


def test_unpacked_build_trains(tmp_path, hybrid_model, unpacked_build, one_torch_thread):
    result = _run(tmp_path, unpacked_build, hybrid_model, "--max-steps", "2")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 2 and all(math.isfinite(p["loss"]) for p in metrics["loss_curve"])
    assert json.loads((tmp_path / "run" / "run_manifest.json").read_text())["base_model"]["model_type"] == "qwen3_next"
