"""The 4-bit NF4 (double quantization) path runs a few steps on the CPU with bitsandbytes, and reloads."""

from __future__ import annotations

import math

import pytest
import torch

from malmungchi.train import modeling
from malmungchi.train.loader import load_for_inference
from malmungchi.train.runner import resolve, train
from train_helpers import tiny_build, tiny_model, train_cfg  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(modeling.bitsandbytes_problem() is not None,
                                reason=f"bitsandbytes cannot run here: {modeling.bitsandbytes_problem()}")


def test_4bit_trains_on_cpu_and_reloads(tmp_path, tiny_build, tiny_model):
    import bitsandbytes as bnb

    run_dir = tmp_path / "run"
    plan = resolve(tiny_build, train_cfg(tiny_model, run_dir, quant="auto", max_steps=3, lr=2e-2))
    assert plan.quant == "4bit" and plan.quant_notice is None  # auto picks 4-bit where bitsandbytes runs
    out = train(plan)
    linear4 = [m for m in out.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert linear4, "the base was not quantized"
    assert all(m.weight.quant_type == "nf4" and m.weight.quant_state.nested for m in linear4)
    curve = [p["loss"] for p in out.metrics["loss_curve"]]
    assert len(curve) == 3 and all(math.isfinite(x) for x in curve)
    assert curve[-1] < curve[0]
    assert out.manifest["quantization"] == "4bit"
    model2, tok, manifest = load_for_inference(run_dir)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model2.modules())
    ids = tok("옛날 <|sound|> 호랑이", return_tensors="pt").input_ids
    with torch.no_grad():
        a = out.model(input_ids=ids).logits.float()
        b = model2(input_ids=ids).logits.float()
    assert torch.isfinite(b).all()
    torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-2)


def _linear4(model_dir):
    import bitsandbytes as bnb

    model = modeling.load_base_model(str(model_dir), quant="4bit", dtype=torch.float32, attn_implementation=None,
                                     trust_remote_code=False, device_map=modeling.default_device_map("4bit"))
    return model, [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def _repack(layer):
    """What Linear4bit.forward does in eval mode on an AVX512-BF16 CPU (pure torch, so it runs on any CPU)."""
    import copy

    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    _convert_weight_packed_for_cpu(layer.weight.data.clone(), copy.deepcopy(layer.weight.quant_state))


def test_the_tiny_test_model_fits_the_avx512_bf16_path(tiny_model):
    model, layers = _linear4(tiny_model)
    assert layers and modeling.quantized_shape_problem(model) is None
    for layer in layers:
        _repack(layer)


def _narrow_model(tmp_path, tokenizer_dir):
    """32 inputs per layer: fewer than one 64-value quantization block."""
    from transformers import AutoTokenizer

    from malmungchi.train.tiny import make_tiny_model

    return make_tiny_model(tmp_path / "narrow", AutoTokenizer.from_pretrained(str(tokenizer_dir)),
                           hidden_size=32, intermediate_size=64, heads=2, kv_heads=1, layers=2)


def test_4bit_on_a_model_with_narrow_layers_is_refused_before_training(tmp_path, tiny_build, qwen3_tokenizer_dir):
    from click.testing import CliRunner

    from malmungchi.cli import main

    narrow = _narrow_model(tmp_path, qwen3_tokenizer_dir)
    model, layers = _linear4(narrow)
    with pytest.raises(RuntimeError):  # the failure an AVX512-BF16 CPU meets in the middle of evaluation
        _repack(layers[0])
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "run", str(tiny_build), "--model", str(narrow), "--out", str(out),
                                       "--quant", "4bit", "--max-steps", "2"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "layer model.layers.0.self_attn.q_proj: 32 inputs" in lines[0] and "--quant none" in lines[0]
    assert not (out / "checkpoints").exists() and not (out / "run_manifest.json").exists()


def test_loading_a_narrow_run_in_4bit_is_refused_with_the_layer(tmp_path, tiny_build, qwen3_tokenizer_dir):
    """A run made before the check (or by hand) that says 4bit: one line naming the layer, not a reshape error."""
    import json

    from malmungchi.train.errors import RunMismatchError

    run_dir = tmp_path / "run"
    train(resolve(tiny_build, train_cfg(_narrow_model(tmp_path, qwen3_tokenizer_dir), run_dir, max_steps=1)))
    manifest = json.loads((run_dir / "run_manifest.json").read_text(encoding="utf-8"))
    manifest["quantization"] = "4bit"
    (run_dir / "run_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(RunMismatchError, match=r"layer model\.layers\.0\.self_attn\.q_proj: 32 inputs.*--quant none"):
        load_for_inference(run_dir)
    load_for_inference(run_dir, quant="none")  # the way out for inference
