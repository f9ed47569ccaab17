"""Loading the base model, growing its vocabulary for the build's new tokens, and the LoRA configuration.

Everything here is shared by training and by `loader.load_for_inference`, so that the loader rebuilds the base
model exactly as training saw it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from malmungchi.contracts.build import NewToken
from malmungchi.train.errors import TrainError

# When the vocabulary must grow it grows to exactly the tokenizer's size. Rounding the rows up to a multiple of 64
# (tensor-core friendly) made every run unloadable by plain peft: AutoPeftModelForCausalLM resizes the base to
# len(tokenizer), so trained rows for a padded matrix no longer fit. Runs made with padding load as before (the
# loader reads rows_after from the run manifest).
RESIZE_MULTIPLE = 1


# --- devices, dtypes, quantization ----------------------------------------------------------------------------------

def device_type() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(name: str):
    import torch

    if name == "auto":
        if device_type() == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


_BNB_OK: dict[str, str | None] = {}


def bitsandbytes_problem() -> str | None:
    """None when bitsandbytes can quantize on this machine's device, else why not (one short phrase)."""
    dev = device_type()
    if dev in _BNB_OK:
        return _BNB_OK[dev]
    problem = None
    try:
        import bitsandbytes.functional as bnbf
        import torch

        bnbf.quantize_4bit(torch.zeros(64, dtype=torch.float32, device=dev), quant_type="nf4")
    except ImportError:
        problem = "bitsandbytes is not installed"
    except Exception as exc:  # noqa: BLE001 - any failure means it cannot run here
        problem = f"bitsandbytes cannot run on {dev} ({type(exc).__name__})"
    _BNB_OK[dev] = problem
    return problem


def resolve_quant(requested: str) -> tuple[str, str | None]:
    """(quant, notice): `auto` is 4-bit NF4 where bitsandbytes runs, else none with a one-line notice."""
    if requested == "auto":
        problem = bitsandbytes_problem()
        if problem:
            return "none", f"not quantizing: {problem}"
        return "4bit", None
    if requested in ("4bit", "8bit"):
        problem = bitsandbytes_problem()
        if problem:
            raise TrainError(f"--quant {requested}: {problem}; use --quant none")
    return requested, None


def quantization_config(quant: str, compute_dtype):
    if quant == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quant == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


# --- finding and loading the model ----------------------------------------------------------------------------------

def _local_only(model: str) -> bool:
    return not Path(model).is_dir()


def load_model_config(model: str, trust_remote_code: bool = False):
    """The model's config, from a folder or the local Hugging Face cache only (never the network)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model, local_files_only=_local_only(model),
                                          trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise TrainError(_missing_model_line(model, exc)) from None


def _missing_model_line(model: str, exc: Exception) -> str:
    if Path(model).is_dir():
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"--model {model}: cannot load a model from this folder: {first}"
    if Path(model).exists():
        return f"--model {model}: not a model folder"
    return (f"--model {model}: no such folder, and not in the local Hugging Face cache "
            "(malmungchi never downloads; download it first or pass a folder)")


def load_base_model(model: str, *, quant: str, dtype, attn_implementation: str | None, trust_remote_code: bool,
                    device_map: Any = None):
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code,
                              "local_files_only": _local_only(model)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    qc = quantization_config(quant, dtype)
    if qc is not None:
        kwargs["quantization_config"] = qc
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        return AutoModelForCausalLM.from_pretrained(model, **kwargs)
    except (OSError, ValueError) as exc:
        raise TrainError(_missing_model_line(model, exc)) from None


PACK_BLOCK_N = 32  # bitsandbytes' CPU repacking groups output rows in blocks of 32


def quantized_shape_problem(model) -> str | None:
    """None when every 4-bit linear layer of `model` can run in every bitsandbytes path, else one line naming the
    first layer that cannot.

    On CPUs with AVX512-BF16, bitsandbytes' `Linear4bit.forward` repacks the weight in eval mode, reshaping the
    quantization scales to `[out, in // blocksize]` and the weight to blocks of 32 output rows: a layer whose
    `in_features` is not a multiple of the block size (64) or whose `out_features` is not a multiple of 32 fails
    there with a reshape error in the middle of the trainer's evaluation, while training (and other CPUs) work.
    Checked on every machine, so a run that trains here also evaluates on a machine of the other kind."""
    for name, module in model.named_modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        if state is None or not hasattr(module, "in_features"):
            continue
        block = int(getattr(state, "blocksize", 64) or 64)
        if module.in_features % block or module.out_features % PACK_BLOCK_N:
            return (f"layer {name}: {module.in_features} inputs, {module.out_features} outputs; 4-bit layers need "
                    f"inputs a multiple of the quantization block size ({block}) and outputs a multiple of "
                    f"{PACK_BLOCK_N}")
    return None


def default_device_map(quant: str):
    """Quantized weights must be placed at load time: on this process's GPU (one per process under DDP)."""
    if quant == "none":
        return None
    if device_type() == "cuda":
        from accelerate import PartialState

        return {"": PartialState().local_process_index}
    return {"": "cpu"}


def model_fingerprint(model: str, config) -> dict[str, Any]:
    """What identifies the base model: its config (hashed without volatile keys) and its weight files' sizes."""
    cfg = config.to_dict()
    for key in ("transformers_version", "_name_or_path", "torch_dtype", "dtype", "quantization_config",
                "_attn_implementation_autoset", "attn_implementation", "_commit_hash", "architectures",
                "output_attentions", "output_hidden_states", "use_cache", "pad_token_id"):
        cfg.pop(key, None)
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()
    files = {}
    if Path(model).is_dir():
        for f in sorted(Path(model).iterdir()):
            if f.suffix in (".safetensors", ".bin") and f.is_file():
                files[f.name] = f.stat().st_size
    return {"config_sha256": digest, "weight_files": files}


# --- new tokens ------------------------------------------------------------------------------------------------------

@dataclass
class TokenInit:
    token: str
    id: int
    method: str  # "description" | "mean"
    description: str = ""
    from_ids: list[int] = field(default_factory=list)
    norm: float = 0.0
    head: list[float] = field(default_factory=list)  # the first values of the initial row (a fingerprint)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VocabPlan:
    rows_before: int
    rows_after: int
    vocab_before: int
    vocab_after: int
    new_ids: list[int]
    spare_rows_used: int
    tied: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_tied(model) -> bool:
    out = model.get_output_embeddings()
    inp = model.get_input_embeddings()
    if out is None:
        return False
    if out.weight is inp.weight:
        return True
    if out.weight.device.type == "meta":
        return bool(getattr(model.config.get_text_config(), "tie_word_embeddings", False))
    return out.weight.data_ptr() == inp.weight.data_ptr()


def plan_vocab(rows_before: int, vocab_before: int, vocab_after: int, new_tokens: list[NewToken],
               tied: bool) -> VocabPlan:
    """Never shrink: a padded vocabulary keeps its rows and new ids land in its spare rows where there are enough."""
    if vocab_after <= rows_before:
        rows_after = rows_before
    else:
        rows_after = -(-vocab_after // RESIZE_MULTIPLE) * RESIZE_MULTIPLE
    new_ids = [t.id for t in new_tokens]
    spare = sum(1 for i in new_ids if i < rows_before)
    return VocabPlan(rows_before, rows_after, vocab_before, vocab_after, new_ids, spare, tied)


def resize_and_init(model, plan: VocabPlan, new_tokens: list[NewToken], tokenizer) -> list[TokenInit]:
    """Grow the embeddings to `plan.rows_after` (never shrinking) and set each new token's row (input and, when not
    tied, output) to the mean of the rows of its description's tokens, or of all the base vocabulary's rows."""
    import torch

    if plan.rows_after != model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(plan.rows_after, mean_resizing=False)
    inits: list[TokenInit] = []
    mats = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and not plan.tied:
        mats.append(out.weight)
    with torch.no_grad():
        means = [w[: plan.vocab_before].float().mean(0) for w in mats]
        # rows the resize added beyond the tokenizer (padding to a multiple) are never produced as input; make
        # them deterministic (the mean row) rather than random, so the loader rebuilds them bit for bit
        taken = {t.id for t in new_tokens}
        pad_rows = [i for i in range(plan.rows_before, plan.rows_after) if i not in taken]
        if pad_rows:
            for w, overall in zip(mats, means):
                w[pad_rows] = overall.to(w.dtype)
        for t in new_tokens:
            ids = []
            if t.description:
                ids = [i for i in tokenizer.encode(t.description, add_special_tokens=False) if i < plan.vocab_before]
            for w, overall in zip(mats, means):
                row = w[ids].float().mean(0) if ids else overall
                w[t.id] = row.to(w.dtype)
            row0 = mats[0][t.id].float()
            inits.append(TokenInit(t.token, t.id, "description" if ids else "mean", t.description, ids,
                                   float(row0.norm()), [round(float(x), 6) for x in row0[:8]]))
    if plan.tied and out is not None and out.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        model.tie_weights()
    return inits


# --- LoRA -----------------------------------------------------------------------------------------------------------

def module_name(model, module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name.rsplit(".", 1)[-1]
    raise TrainError("cannot find the embedding module by name")


def fused_expert_parameters(model) -> list[str]:
    """The MoE expert weights stored fused, one 3-d tensor for all of a layer's experts (transformers 5: Qwen3-MoE,
    Mixtral, …). peft adapts them through `lora.ParamWrapper` (its "all-linear" maps the v4 expert projections onto
    them), which has no dropout."""
    return [name for name, p in model.named_parameters() if p.ndim == 3 and ".experts." in f".{name}"]


def lora_config(model, *, r: int, alpha: int, dropout: float, targets, new_ids: list[int], tied: bool,
                train_embeddings: str) -> tuple[Any, dict[str, Any]]:
    """The peft LoraConfig and a description of how the new tokens are trained (for the manifest and --dry-run)."""
    from peft import LoraConfig

    embed = module_name(model, model.get_input_embeddings())
    out_mod = model.get_output_embeddings()
    head = module_name(model, out_mod) if out_mod is not None else None
    kwargs: dict[str, Any] = {"r": r, "lora_alpha": alpha, "lora_dropout": dropout, "task_type": "CAUSAL_LM",
                              "target_modules": targets, "bias": "none"}
    info: dict[str, Any] = {"mode": train_embeddings, "embedding_module": embed, "output_module": head,
                            "tied": tied}
    if train_embeddings == "full":  # with or without new tokens: runs that differ only in them train the same
        kwargs["modules_to_save"] = [embed] + ([head] if head and not tied else [])
        if tied and head:
            kwargs["modules_to_save"] = [embed, head]
            kwargs["ensure_weight_tying"] = True
        info["how"] = f"modules_to_save={kwargs['modules_to_save']} (whole matrices trained and saved)"
        info["why"] = "--train-embeddings full was asked for"
    elif not new_ids:
        info["how"] = "no new tokens: embeddings stay frozen"
        info["why"] = "the build added no tokens beyond the base vocabulary"
    else:
        indices: dict[str, list[int]] = {embed: list(new_ids)}
        if head and not tied:
            indices[head] = list(new_ids)
        kwargs["trainable_token_indices"] = indices
        info["how"] = (f"trainable_token_indices on {embed}" + (f" and {head}" if head and not tied else "")
                       + f" ({len(new_ids)} rows)" + ("; the output head is tied to it" if tied else ""))
        info["why"] = ("only the new rows need training; the rest of the vocabulary stays bit-identical and the "
                       "adapter stays small")
    return LoraConfig(**kwargs), info


def expose_head_bias(model) -> None:
    """trl's fused LM head reads `lm_head.weight` and `lm_head.bias`. peft's TrainableTokensWrapper answers
    `.weight` with the merged (base + trained rows) weight, which is what the loss must see, but has no `.bias`:
    give it the wrapped head's (None for every Llama-style head)."""
    from torch import nn

    for module in model.modules():
        if type(module).__name__ == "TrainableTokensWrapper":
            original = getattr(module, "original_module", None)
            if isinstance(original, nn.Linear) and original.bias is None and "bias" not in module.__dict__:
                module.__dict__["bias"] = None


def trainable_parameters(model) -> tuple[int, int]:
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if p.__class__.__name__ == "Params4bit":
            n *= 2
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


def estimate_gpu_memory(config, *, quant: str, dtype_bytes: int, trainable: int, tokens_per_micro_batch: int,
                        activation_checkpointing: bool, rows: int) -> dict[str, float]:
    """A rough estimate (GiB) of GPU memory for training: weights, trainable state (AdamW: fp32 weights, grads and
    two moments), activations, and a per-token LM-head working set. Good to ±30%; CUDA context not included."""
    tc = config.get_text_config()
    h = int(getattr(tc, "hidden_size", 0) or 0)
    layers = int(getattr(tc, "num_hidden_layers", 0) or 0)
    inter = int(getattr(tc, "intermediate_size", 4 * h) or 4 * h)
    embed = rows * h
    body = layers * (4 * h * h + 3 * h * inter)  # attention + gated MLP (upper bound with GQA)
    head = 0 if getattr(tc, "tie_word_embeddings", False) else embed
    per_param = {"4bit": 0.5 + 0.5 / 64 * 1.1, "8bit": 1.0 + 4 / 64, "none": float(dtype_bytes)}[quant]
    weights = body * per_param + (embed + head) * dtype_bytes
    state = trainable * 16
    per_token_layer = (2 if activation_checkpointing else 18) * h + (0 if activation_checkpointing else 4 * inter)
    acts = tokens_per_micro_batch * (layers * per_token_layer * dtype_bytes + 2 * h * dtype_bytes)
    gib = 1024 ** 3
    est = {"weights_gib": weights / gib, "trainable_state_gib": state / gib, "activations_gib": acts / gib}
    est["total_gib"] = sum(est.values()) * 1.1
    return est


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("malmungchi", "torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "datasets"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)
