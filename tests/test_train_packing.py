"""A packed row gives the same logits as its documents run one by one: no attention across documents, on the CPU
attention paths (sdpa, eager), through the collator the trainer uses (rows kept apart, or flattened). The boundary
keys for stateful layers (`seq_idx`, `cu_seq_lens_*`) are literal here and trl's; that position_ids alone leave a
linear-attention layer leaking is the control."""

from __future__ import annotations

import pytest
import torch

from malmungchi.train.collate import NUM_REAL_TOKENS, PackedCollator, positions_from_lengths


@pytest.fixture(scope="module")
def tiny_lm():
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


SEQ_ROWS = [{"input_ids": [5, 6, 7, 8, 9], "assistant_masks": [1] * 5, "seq_lengths": [3, 2]},
            {"input_ids": [10, 11], "assistant_masks": [1, 1], "seq_lengths": [2]}]


def test_default_layout_has_no_boundary_keys():
    assert set(PackedCollator(pad_token_id=3)(SEQ_ROWS)) == {"input_ids", "labels", "position_ids", NUM_REAL_TOKENS}
    assert set(PackedCollator(pad_token_id=3, flatten=True)(SEQ_ROWS)) == {
        "input_ids", "labels", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k",
        NUM_REAL_TOKENS}


def test_seq_idx_per_row_counts_position_restarts_pads_included():
    batch = PackedCollator(pad_token_id=3, seq_idx=True)(SEQ_ROWS)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 0, 0, 0]]
    assert batch["seq_idx"].dtype == torch.int32
    assert batch["seq_idx"].tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 2, 3]]  # each pad token a sequence of its own
    assert "cu_seq_lens_q" not in batch


@pytest.mark.parametrize("multiple, seq_idx, cu, max_len", [
    (None, [0, 0, 0, 1, 1, 2, 2], [0, 3, 5, 7], 3),
    (4, [0, 0, 0, 1, 1, 2, 2, 3], [0, 3, 5, 7, 8], 3),  # one pad token: one more sequence, as trl counts it
], ids=["unpadded", "pad-to-4"])
def test_seq_idx_flattened_is_trls(multiple, seq_idx, cu, max_len):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    batch = PackedCollator(pad_token_id=3, flatten=True, seq_idx=True, pad_to_multiple_of=multiple)(SEQ_ROWS)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 11] + [3] * (len(seq_idx) - 7)]
    assert batch["seq_idx"].dtype == torch.int32 and batch["seq_idx"].shape == batch["input_ids"].shape
    assert batch["seq_idx"].tolist() == [seq_idx]
    assert batch["cu_seq_lens_q"].tolist() == batch["cu_seq_lens_k"].tolist() == cu
    assert batch["cu_seq_lens_q"].dtype == torch.int32
    assert batch["max_length_q"] == batch["max_length_k"] == max_len
    trl = DataCollatorForLanguageModeling(pad_token_id=3, padding_free=True, pad_to_multiple_of=multiple)(
        [{"input_ids": r["input_ids"], "seq_lengths": r["seq_lengths"]} for r in SEQ_ROWS])
    for key in ("input_ids", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "seq_idx"):
        assert torch.equal(batch[key], trl[key]), key
    assert (batch["max_length_q"], batch["max_length_k"]) == (trl["max_length_q"], trl["max_length_k"])


def test_position_ids_alone_do_not_keep_linear_attention_apart():
    """Why a model with linear-attention layers needs seq_idx and cu_seq_lens: the position restarts that keep its
    attention layers inside each document do nothing for its gated-delta-rule layer, which carries its state on."""
    from transformers import Qwen3NextConfig

    config = Qwen3NextConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             layer_types=["linear_attention", "full_attention"], num_attention_heads=2,
                             num_key_value_heads=1, head_dim=16, linear_num_key_heads=2, linear_num_value_heads=2,
                             linear_key_head_dim=16, linear_value_head_dim=16, mlp_only_layers=[0, 1])
    model = _model(config, "sdpa")
    docs = _docs()
    batch = PackedCollator(pad_token_id=0)([_row(docs[:3])])
    batch.pop(NUM_REAL_TOKENS)
    batch.pop("labels")
    with torch.no_grad():
        packed = model(**batch, use_cache=False).logits[0]
        first = model(input_ids=docs[0][None], use_cache=False).logits[0]
        alone = model(input_ids=docs[2][None], use_cache=False).logits[0]
    torch.testing.assert_close(packed[:7], first, rtol=1e-5, atol=1e-5)  # nothing before it: the same
    assert not torch.allclose(packed[8:20], alone, atol=1e-3)  # the state of the two before it leaks in
