"""MoE models whose experts transformers 5 stores fused (Qwen3-MoE, Mixtral, …): peft adapts those weights with a
wrapper that has no dropout, so with the default targets the default LoRA dropout becomes 0 (and says so), and a
dropout the user asked for is refused in one line instead of peft's error."""

from __future__ import annotations

import json

import pytest

from train_helpers import make_build, make_moe_model, train_cli


@pytest.fixture(scope="module")
def moe_model(tmp_path_factory, qwen3_tokenizer_dir):
    return make_moe_model(tmp_path_factory.mktemp("moe"), qwen3_tokenizer_dir)


@pytest.fixture(scope="module")
def build(tmp_path_factory, qwen3_tokenizer_dir):
    return make_build(tmp_path_factory.mktemp("build"), qwen3_tokenizer_dir, n_train=4, n_val=1)


def _run(tmp_path, build, model, train_table: str, *args):
    return train_cli(tmp_path, build, model, *args, train_table=train_table)


def test_default_dropout_becomes_zero_and_the_run_trains(tmp_path, moe_model, build, one_torch_thread):
    plan = _run(tmp_path, build, moe_model, "", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.stderr
    assert json.loads(plan.stdout)["plan"]["LoRA"].startswith("r=4, alpha=8, dropout=0.0 (LoRA dropout 0, not the "
                                                              "default 0.05")
    result = _run(tmp_path, build, moe_model, "", "--max-steps", "2")
    assert result.exit_code == 0, result.stderr
    assert "LoRA dropout 0, not the default 0.05" in result.output
    manifest = json.loads((tmp_path / "run" / "run_manifest.json").read_text())
    assert manifest["lora"]["lora_dropout"] == 0.0 and manifest["base_model"]["model_type"] == "qwen3_moe"


def test_a_dropout_asked_for_is_refused_in_one_line(tmp_path, moe_model, build):
    result = _run(tmp_path, build, moe_model, "lora_dropout = 0.1", "--max-steps", "2")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.output + result.stderr, result.stderr
    assert "lora_dropout 0.1" in lines[0] and "fused expert weights" in lines[0] and "lora_dropout = 0" in lines[0]
    assert not (tmp_path / "run").exists()
