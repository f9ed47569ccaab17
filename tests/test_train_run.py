"""Training on a contract build directory: the loss falls, only LoRA and the new tokens' rows change, the run
directory reloads through the loader with the same logits, and the loader refuses a different base model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from malmungchi.train.errors import RunMismatchError
from malmungchi.train.loader import load_for_inference
from malmungchi.train.runner import resolve, train
from train_helpers import make_model, tiny_build, tiny_model, train_cfg  # noqa: F401 - fixtures

PROBE = "옛날 옛적에 <|sound|> 호랑이가 <|laugh|> 울었다 <|start_of_dialogue|>"


def _base_key(name: str) -> str:
    for part in ("base_model.model.",):
        name = name.removeprefix(part)
    for part in (".base_layer", ".original_module", ".token_adapter", ".modules_to_save.default"):
        name = name.replace(part, "")
    return name


def _check_frozen(model, original: dict[str, torch.Tensor], new_ids: list[int]) -> int:
    """Every base weight is bit-identical to the file it was loaded from, except the new tokens' rows."""
    checked = 0
    for name, p in model.named_parameters():
        if "lora_" in name or "trainable_tokens" in name:
            continue
        key = _base_key(name)
        assert key in original, key
        w, o = p.detach(), original[key]
        if key.endswith(("embed_tokens.weight", "lm_head.weight")):
            keep = torch.ones(o.shape[0], dtype=torch.bool)
            keep[[i for i in new_ids if i < o.shape[0]]] = False
            assert torch.equal(w[: o.shape[0]][keep], o[keep]), f"{key}: a base row changed"
        else:
            assert w.shape == o.shape and torch.equal(w, o), f"{key} changed"
        checked += 1
    return checked


@pytest.mark.parametrize("tied", [True, False], ids=["tied-grown", "untied-spare-rows"])
def test_loss_falls_only_lora_and_new_rows_train_and_reload_gives_same_logits(tmp_path, qwen3_tokenizer_dir,
                                                                              tiny_build, tied):
    # tied: the base has exactly the tokenizer's rows, so the 4 new tokens grow it (to a multiple of 64);
    # untied: the base is padded with 60 spare rows, which the new tokens use without resizing.
    model_dir = make_model(tmp_path / "model", qwen3_tokenizer_dir, spare_rows=0 if tied else 60, tied=tied)
    run_dir = tmp_path / "run"
    out = train(resolve(tiny_build, train_cfg(model_dir, run_dir, max_steps=10, lr=2e-2)))

    curve = [p["loss"] for p in out.metrics["loss_curve"]]
    assert len(curve) == 10
    assert sum(curve[-3:]) / 3 < curve[0] - 0.2, curve

    manifest = json.loads((run_dir / "run_manifest.json").read_text())
    vocab = manifest["vocab"]
    new_ids = vocab["new_ids"]
    assert len(new_ids) == 4 and vocab["tied"] is tied
    if tied:
        # grown to exactly the tokenizer (no padding rows: plain peft resizes the base to len(tokenizer))
        assert vocab["rows_before"] == vocab["vocab_before"] and vocab["rows_after"] == vocab["vocab_after"]
        assert vocab["spare_rows_used"] == 0
    else:
        assert vocab["rows_after"] == vocab["rows_before"] == vocab["vocab_before"] + 60
        assert vocab["spare_rows_used"] == 4
    assert manifest["train_embeddings"]["mode"] == "tokens"
    assert "trainable_token_indices" in manifest["train_embeddings"]["how"]
    indices = manifest["lora"]["trainable_token_indices"]
    assert sorted(indices) == (["embed_tokens"] if tied else ["embed_tokens", "lm_head"])
    inits = {t["token"]: t for t in manifest["init"]["tokens"]}
    assert inits["<|sound|>"]["method"] == "description" and inits["<|sound|>"]["from_ids"]
    assert inits["<|laugh|>"]["method"] == "mean"
    assert manifest["build"]["content_hash"] == json.loads((tiny_build / "manifest.json").read_text())["content_hash"]
    for f in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "tokenizer/tokenizer.json",
              "metrics.json"):
        assert (run_dir / f).is_file(), f

    # frozen weights: bit-identical to the saved base model
    original = load_file(str(model_dir / "model.safetensors"))
    assert _check_frozen(out.model, original, new_ids) >= 2 * 9 + 2
    # LoRA trained
    assert any(p.abs().sum() > 0 for n, p in out.model.named_parameters() if "lora_B" in n)
    # the new rows trained (and only through the adapter's own copies of them)
    changed = 0
    for module in out.model.modules():
        if hasattr(module, "trainable_tokens_delta") and "default" in module.trainable_tokens_delta:
            delta = module.trainable_tokens_delta["default"].detach().float()
            start = module.trainable_tokens_original["default"].detach().float()
            moved = (delta - start).abs().sum(-1) > 0
            changed += int(moved.sum())
    assert changed >= 4, changed  # every new token occurs in the data
    # init rows: a description's mean (SOUND → 소리)
    emb = original["model.embed_tokens.weight"]
    want = emb[inits["<|sound|>"]["from_ids"]].mean(0)
    layer = out.model.base_model.model.model.embed_tokens
    sound_row = layer.token_adapter.trainable_tokens_original["default"][new_ids.index(inits["<|sound|>"]["id"])]
    torch.testing.assert_close(sound_row.float(), want, rtol=0, atol=1e-6)

    # the adapter reloads through the loader, rebuilt base included, and gives the same logits
    model2, tok, manifest2 = load_for_inference(run_dir)
    assert manifest2 == manifest
    ids = tok(PROBE, return_tensors="pt").input_ids
    assert set(new_ids) & set(ids[0].tolist())
    with torch.no_grad():
        a = out.model(input_ids=ids).logits
        b = model2(input_ids=ids).logits
    assert a.shape[-1] == vocab["rows_after"]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_loader_refuses_another_base_model(tmp_path, qwen3_tokenizer_dir, tiny_build, tiny_model):
    run_dir = tmp_path / "run"
    train(resolve(tiny_build, train_cfg(tiny_model, run_dir, max_steps=1)))
    # same architecture, other weights: the rebuilt new rows differ
    other = make_model(tmp_path / "other", qwen3_tokenizer_dir, seed=1)
    with pytest.raises(RunMismatchError, match="differs from training"):
        load_for_inference(run_dir, base_model=str(other))
    # other architecture
    from transformers import AutoTokenizer

    from malmungchi.train.tiny import make_tiny_model

    wider = make_tiny_model(tmp_path / "wider", AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir)),
                            hidden_size=48, intermediate_size=64, heads=2, kv_heads=1, layers=2)
    with pytest.raises(RunMismatchError, match="config differs"):
        load_for_inference(run_dir, base_model=str(wider))
    with pytest.raises(RunMismatchError, match="no such run directory"):
        load_for_inference(tmp_path / "nope")


def test_full_embeddings_and_merge(tmp_path, tiny_build, tiny_model):
    run_dir = tmp_path / "run"
    out = train(resolve(tiny_build, train_cfg(tiny_model, run_dir, max_steps=2, train_embeddings="full", merge=True)))
    manifest = out.manifest
    assert manifest["train_embeddings"]["mode"] == "full"
    assert "modules_to_save" in manifest["train_embeddings"]["how"] and manifest["lora"]["modules_to_save"]
    model2, tok, _ = load_for_inference(run_dir)
    merged, _, _ = load_for_inference(run_dir, merged=True)
    ids = tok(PROBE, return_tensors="pt").input_ids
    with torch.no_grad():
        a, b, c = out.model(input_ids=ids).logits, model2(input_ids=ids).logits, merged(input_ids=ids).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-4)
