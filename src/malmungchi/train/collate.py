"""Collating the build's packed rows as they are: no re-tokenizing, no re-packing.

A packed row holds several documents back to back; `position_ids` restart at 0 at each one. Attention must stay
inside each document:

* sdpa / eager (CPU, most GPUs): the batch keeps one row per example and carries `position_ids` and *no*
  `attention_mask`. transformers 5 (`masking_utils.find_packed_sequence_indices`) then builds a block-diagonal
  causal mask from the position restarts. Padding at the end of a short row gets position 0 at every pad token,
  so each pad token is its own one-token block: it attends to nothing real and nothing real attends to it.
  Keeping rows apart (rather than flattening the batch into one long row, as trl's padding-free collator does)
  keeps the mask at B·L² instead of (B·L)².
* flash-attention kernels (`flatten=True`): the batch is flattened into one row with `cu_seq_lens_*`/`max_length_*`,
  which the varlen kernels read (trl's padding-free layout).
* layers that carry state from token to token (linear attention, mamba, short convolutions: `train.boundaries`)
  read no mask; their kernels reset at `cu_seq_lens_q` (fla) or `seq_idx` (causal-conv1d, mamba), and fla's
  varlen kernels take one row. On packed rows such a model gets `flatten=True, seq_idx=True`: the flattened row
  with `seq_idx` (int32, the shape of `input_ids`: each token's packed-sequence index, as trl computes it).
  `seq_idx` counts the position restarts along a row, so in the per-row layout it is each token's sequence index
  within its row; every pad token (position 0) is a sequence of its own, as in the attention mask.

Labels: the token where `assistant_masks` is 1, else -100; the first token of every packed sequence is -100 too,
so nothing is trained to predict one document's start from the previous document's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

NUM_REAL_TOKENS = "num_real_tokens"  # not a model input: popped by the trainer, which counts tokens/s with it


def positions_from_lengths(seq_lengths) -> torch.Tensor:
    lengths = torch.as_tensor([int(n) for n in seq_lengths if int(n) > 0], dtype=torch.long)
    if not len(lengths):
        return torch.zeros(0, dtype=torch.long)
    starts = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return torch.arange(int(lengths.sum())) - starts


def sequence_index(position_ids: torch.Tensor) -> torch.Tensor:
    """Each token's packed-sequence index within its row (int32): the position restarts up to and including it,
    less one. On trl's flattened row this is its `seq_idx` (`repeat_interleave` over `cu_seq_lens`) exactly."""
    return (torch.cumsum(position_ids == 0, dim=-1) - 1).to(torch.int32)


@dataclass
class PackedCollator:
    pad_token_id: int
    flatten: bool = False
    pad_to_multiple_of: int | None = None
    seq_idx: bool = False

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids, labels, pos = [], [], []
        for ex in examples:
            row = torch.as_tensor(ex["input_ids"], dtype=torch.long)
            mask = torch.as_tensor(ex["assistant_masks"], dtype=torch.bool)
            p = positions_from_lengths(ex["seq_lengths"]) if "seq_lengths" in ex else torch.as_tensor(
                ex["position_ids"], dtype=torch.long)
            lab = torch.where(mask, row, torch.full_like(row, -100))
            lab[p == 0] = -100
            ids.append(row)
            labels.append(lab)
            pos.append(p)
        n_real = sum(len(r) for r in ids)
        if self.flatten:
            ids, labels, pos = [torch.cat(ids)], [torch.cat(labels)], [torch.cat(pos)]
        width = max(len(r) for r in ids)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        out = {
            "input_ids": torch.full((len(ids), width), self.pad_token_id, dtype=torch.long),
            "labels": torch.full((len(ids), width), -100, dtype=torch.long),
            "position_ids": torch.zeros((len(ids), width), dtype=torch.long),
        }
        for i, (r, lab, p) in enumerate(zip(ids, labels, pos)):
            out["input_ids"][i, : len(r)] = r
            out["labels"][i, : len(r)] = lab
            out["position_ids"][i, : len(r)] = p
        if self.flatten:
            starts = (out["position_ids"][0] == 0).nonzero().flatten()
            cu = torch.cat([starts, torch.tensor([width])]).to(torch.int32)
            out["cu_seq_lens_q"] = out["cu_seq_lens_k"] = cu
            out["max_length_q"] = out["max_length_k"] = int(cu.diff().max())
        if self.seq_idx:
            out["seq_idx"] = sequence_index(out["position_ids"])
        out[NUM_REAL_TOKENS] = torch.tensor(n_real, dtype=torch.long)
        return out
