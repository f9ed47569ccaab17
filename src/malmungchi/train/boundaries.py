"""Keeping packed documents apart in models whose layers carry state from token to token.

Attention layers see what their mask lets them see, and the collator's `position_ids` give them a block-diagonal
one. Linear-attention, state-space (mamba) and short-convolution layers read no mask: they run along the row, so
each packed document would start from the state the previous one left, and nothing would say so. Their kernels
reset at the boundaries they are given: fla's gated delta rule reads `cu_seq_lens_q`, causal-conv1d and mamba read
`seq_idx`; fla's varlen kernels take one row. Such a model therefore trains on the flattened layout with both
(`collate.PackedCollator(flatten=True, seq_idx=True)`, trl's padding-free layout): the attention layers' mask is
then (B·L)² instead of B·L² on sdpa, the price of correct recurrent layers.

transformers' torch fallbacks (used when the kernel package is not installed) cannot reset at boundaries and
raise a ValueError when given them. `probe` runs one forward of two two-token documents before training and turns
that into one TrainError line naming the packages, instead of a traceback at the first step.

Rows that hold one sequence each (`corpus build --no-pack`) need none of this: a row's padding comes after its
document, so the state its tokens see is their own. They keep the per-row layout, with no boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from malmungchi.train.collate import NUM_REAL_TOKENS
from malmungchi.train.errors import TrainError

# transformers' `layer_types` (configuration_utils.ALLOWED_LAYER_TYPES) whose layers mix tokens through attention
# alone (or not at all: MLP/MoE blocks); every other value — linear_attention, hybrid, hybrid_sliding, conv, mamba,
# one transformers adds later — is taken to carry state.
ATTENTION_LAYER_TYPES = frozenset({
    "full_attention", "sliding_attention", "chunked_attention", "window_attention", "indexed_attention",
    "compressed_sparse_attention", "heavily_compressed_attention", "minimax_m3_sparse", "reference_sliding_attention",
    "attention", "moe", "mlp", "sparse", "dense",
})

# Purely recurrent models, whose configs may have no `layer_types` at all.
RECURRENT_MODEL_TYPES = frozenset({"mamba", "mamba2", "falcon_mamba", "rwkv", "xlstm", "recurrent_gemma"})

_NEEDS_PACKAGE = re.compile(r"can't keep packed sequences apart without `([^`]+)`")


def stateful_layers(config) -> list[str]:
    """The layer types of the model's text config that carry state across tokens (sorted), `["recurrent"]` for a
    recurrent model type that lists none, or [] for a model whose layers are all attention."""
    text = config.get_text_config()
    kinds = sorted({str(t) for t in (getattr(text, "layer_types", None) or [])} - ATTENTION_LAYER_TYPES)
    if not kinds and {getattr(config, "model_type", None), getattr(text, "model_type", None)} & RECURRENT_MODEL_TYPES:
        return ["recurrent"]
    return kinds


def needs_sequence_boundaries(config) -> bool:
    """Whether packed rows need `cu_seq_lens_*` and `seq_idx` for this model, beyond the `position_ids` that keep
    attention inside each document."""
    return bool(stateful_layers(config))


@dataclass(frozen=True)
class Layout:
    """How the collator lays out a batch (`PackedCollator`'s `flatten` and `seq_idx`), and why."""

    flatten: bool
    seq_idx: bool
    stateful: tuple[str, ...] = ()  # the model's layer types that carry state, if any
    model_type: str = ""

    def describe(self) -> str:
        """The plan's attention line, after the attention implementation."""
        layers = f"{self.model_type}'s {', '.join(self.stateful)} layers"
        if self.seq_idx:
            return f"packed rows flattened into one; documents kept apart by cu_seq_lens and seq_idx, for {layers}"
        if self.stateful:
            return f"one document per row: {layers} need no boundaries"
        if self.flatten:
            return "packed rows flattened into one; documents kept apart by cu_seq_lens"
        return "packed rows; documents kept apart by position_ids"


def choose_layout(config, attn_implementation: str, *, packed: bool) -> Layout:
    """`packed`: some row holds more than one sequence. A model with stateful layers gets the flattened layout with
    `seq_idx` for packed rows and the per-row layout (flash attention too) for one sequence a row, which flattening
    would pack together again."""
    stateful = tuple(stateful_layers(config))
    model_type = str(getattr(config, "model_type", "") or "")
    if stateful:
        return Layout(flatten=packed, seq_idx=packed, stateful=stateful, model_type=model_type)
    return Layout(flatten=attn_implementation.startswith("flash"), seq_idx=False, model_type=model_type)


def probe(model, collator, *, token_id: int, model_name: str, layout: Layout) -> None:
    """One forward (no gradients, eval mode) of a row packing two two-token documents through `collator`; raises
    TrainError when transformers says it cannot keep them apart. When it cannot, the boundary keys are tried one at a
    time as well, so that every package missing is named at once (qwen3_next lacks causal_conv1d for `seq_idx` and
    flash-linear-attention for `cu_seq_lens_q`, but only the first is raised)."""
    import torch

    batch = collator([{"input_ids": [token_id] * 4, "assistant_masks": [1] * 4, "seq_lengths": [2, 2]}])
    batch.pop(NUM_REAL_TOKENS, None)
    batch.pop("labels", None)
    device = next(model.parameters()).device
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    first = _missing_package(model, batch)
    if first is None:
        return
    missing = [first]
    for drop in (("seq_idx",), ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")):
        try:
            pkg = _missing_package(model, {k: v for k, v in batch.items() if k not in drop})
        except Exception:  # noqa: BLE001 - only looking for more names; the whole batch's answer stands
            continue
        if pkg and pkg not in missing:
            missing.append(pkg)
    names = " and ".join(f"`{p}`" for p in missing)
    raise TrainError(f"--model {model_name}: {layout.model_type} has {', '.join(layout.stateful)} layers, which "
                     f"carry state from token to token; to keep packed documents apart they need {names} "
                     f"(transformers' torch fallback cannot): install {'them' if len(missing) > 1 else 'it'}, or "
                     "build with `corpus build --no-pack` (one document per row needs no boundaries)")


def _missing_package(model, batch) -> str | None:
    """The package transformers names when it cannot keep the batch's sequences apart, or None when the forward
    runs. Any other error is the model's own and is raised as it is."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(**batch, use_cache=False)
    except ValueError as exc:
        found = _NEEDS_PACKAGE.search(str(exc))
        if found is None:
            raise
        return found.group(1)
    finally:
        model.train(was_training)
    return None
