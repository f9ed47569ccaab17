"""A run's adapter folder works without malmungchi: `AutoPeftModelForCausalLM.from_pretrained(RUN/adapter)` (what
lm-eval's `peft=` and most tutorials call) rebuilds the same model, new marker tokens included, with the same
logits as `malmungchi.train.loader.load_for_inference`."""

from __future__ import annotations

import pytest
import torch

from malmungchi.train.loader import load_for_inference
from malmungchi.train.runner import resolve, train
from train_helpers import make_model, tiny_build, tiny_model, train_cfg  # noqa: F401 - fixtures


@pytest.mark.parametrize("mode, tied, spare", [("tokens", True, 0), ("full", True, 0), ("tokens", False, 60)])
def test_plain_peft_loads_the_adapter_with_the_same_logits(tmp_path, tiny_build, qwen3_tokenizer_dir, mode, tied,
                                                           spare):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = make_model(tmp_path / "model", qwen3_tokenizer_dir, tied=tied, spare_rows=spare)
    run = tmp_path / "run"
    train(resolve(tiny_build, train_cfg(model, run, max_steps=2, train_embeddings=mode)))
    ours, tok, manifest = load_for_inference(run)
    assert len(AutoTokenizer.from_pretrained(str(run / "adapter"))) == len(tok)  # the tokenizer is beside it
    plain = AutoPeftModelForCausalLM.from_pretrained(str(run / "adapter"))
    plain.eval()
    ids = tok("옛날 <|sound|> 호랑이 <|laugh|>(하하) <|start_of_dialogue|>", return_tensors="pt").input_ids
    assert any(i in manifest["vocab"]["new_ids"] for i in ids[0].tolist())
    with torch.no_grad():
        a, b = ours(input_ids=ids).logits, plain(input_ids=ids).logits
    assert a.shape == b.shape
    torch.testing.assert_close(a, b)
