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


def test_merge_refuses_a_quantized_base(tmp_path, tiny_build, tiny_model):
    from malmungchi.train.errors import TrainError

    with pytest.raises(TrainError, match="--merge needs an unquantized base"):
        resolve(tiny_build, train_cfg(tiny_model, tmp_path / "run", quant="4bit", merge=True))
