"""A packed row gives the same logits as its documents run one by one: no attention across documents, on the CPU
attention paths (sdpa, eager), through the collator the trainer uses (rows kept apart, or flattened)."""

from __future__ import annotations

import pytest
import torch

from malmungchi.train.collate import NUM_REAL_TOKENS, PackedCollator, positions_from_lengths


@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import AutoModelForCausalLM

    from malmungchi.train.tiny import tiny_llama_config

    config = tiny_llama_config(300, hidden_size=32, intermediate_size=64, heads=4, kv_heads=2, layers=2)
    torch.manual_seed(0)
    return config


def _model(config, attn):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation=attn)
    return model.eval()


def _docs():
    g = torch.Generator().manual_seed(1)
    return [torch.randint(5, 300, (n,), generator=g) for n in (7, 1, 12, 5)]


def _row(docs):
    return {"input_ids": torch.cat(docs).tolist(), "assistant_masks": [1] * sum(len(d) for d in docs),
            "position_ids": positions_from_lengths([len(d) for d in docs]).tolist(),
            "seq_lengths": [len(d) for d in docs], "doc_ids": [f"d{i}" for i in range(len(docs))]}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("flatten", [False, True], ids=["rows", "flattened"])
def test_packed_rows_match_documents_run_separately(tiny_lm, attn, flatten):
    model = _model(tiny_lm, attn)
    docs = _docs()
    rows = [_row(docs[:3]), _row(docs[3:])]  # the second row is shorter: it gets padded
    batch = PackedCollator(pad_token_id=0, flatten=flatten)(rows)
    assert int(batch.pop(NUM_REAL_TOKENS)) == sum(len(d) for d in docs)
    assert "attention_mask" not in batch
    labels = batch.pop("labels")
    with torch.no_grad():
        # use_cache=False as in training (trl sets it): with a cache, transformers does not look for packed
        # sequences in position_ids at all
        packed = model(**batch, use_cache=False).logits
        alone = [model(input_ids=d[None]).logits[0] for d in docs]
    flat = packed.reshape(-1, packed.shape[-1]) if flatten else None
    offsets = [(0, 0), (0, 7), (0, 8), (1, 0)]
    start = 0
    for d, want, (r, off) in zip(docs, alone, offsets):
        got = flat[start: start + len(d)] if flatten else packed[r, off: off + len(d)]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        start += len(d)
    # labels: the first token of every document is never a target (no predicting across a boundary)
    lab = labels.reshape(-1) if flatten else labels[0]
    assert lab[0] == -100 and lab[7] == -100 and lab[8] == -100 and lab[1] != -100


def test_without_position_ids_documents_would_leak(tiny_lm):
    """The control: the same packed row run as one plain causal sequence (or with a cache) does attend across
    documents, so the test above can fail."""
    model = _model(tiny_lm, "sdpa")
    docs = _docs()
    row = torch.cat(docs[:3])[None]
    pos = positions_from_lengths([len(d) for d in docs[:3]])[None]
    with torch.no_grad():
        alone = model(input_ids=docs[2][None]).logits[0]
        leaky = model(input_ids=row, use_cache=False).logits[0]
        cached = model(input_ids=row, position_ids=pos, use_cache=True).logits[0]
        kept = model(input_ids=row, position_ids=pos, use_cache=False).logits[0]
    assert not torch.allclose(leaky[8:20], alone, atol=1e-3)
    assert not torch.allclose(cached[8:20], alone, atol=1e-3)
    torch.testing.assert_close(kept[8:20], alone, rtol=1e-5, atol=1e-5)


def test_collator_loss_mask_and_padding():
    rows = [{"input_ids": [5, 6, 7, 8], "assistant_masks": [0, 1, 1, 1], "seq_lengths": [2, 2],
             "position_ids": [0, 1, 0, 1]},
            {"input_ids": [9, 10], "assistant_masks": [1, 1], "seq_lengths": [2], "position_ids": [0, 1]}]
    batch = PackedCollator(pad_token_id=3)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [9, 10, 3, 3]]
    assert batch["labels"].tolist() == [[-100, 6, -100, 8], [-100, 10, -100, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1], [0, 1, 0, 0]]
    assert int(batch[NUM_REAL_TOKENS]) == 6
