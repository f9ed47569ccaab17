"""`malmungchi train run`: resolve the plan, load and prepare the model, train with trl's SFTTrainer on the build's
rows as they are, and write the run directory (the stage 3 → 4 contract in docs/DESIGN.md)."""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from malmungchi.atomic import write_json
from malmungchi.contracts.build import BuildDir, read_build_dir
from malmungchi.contracts.run import RunPaths, is_run_dir
from malmungchi.outdir import overlap_problem
from malmungchi.schemas.config import TrainConfig
from malmungchi.train import boundaries, modeling
from malmungchi.train.checkpoints import checkpoint_step, complete_checkpoints, only_run_files
from malmungchi.train.errors import TrainError
from malmungchi.train.lossplot import write_loss_plot
from malmungchi.train.settings import BY_FIELD, TRL_NAMES, TRL_SETTINGS, trl_value

SCHEMA_VERSION = 1


@dataclass
class Plan:
    build: BuildDir
    cfg: TrainConfig
    model: str
    out: Path
    quant: str
    quant_notice: str | None
    dtype: Any
    attn_implementation: str
    epochs: float
    max_steps: int  # -1: from epochs
    lr: float
    batch_size: int
    grad_accum: int
    seed: int
    report_to: Any
    lora_alpha: int
    world_size: int
    total_steps: int
    extra_args: dict[str, Any] = field(default_factory=dict)

    @property
    def activation_checkpointing(self) -> bool:
        if "activation_checkpointing" in self.extra_args:
            return bool(self.extra_args["activation_checkpointing"])
        if "gradient_checkpointing" in self.extra_args:
            return bool(self.extra_args["gradient_checkpointing"])
        return modeling.device_type() == "cuda"


def resolve(build_dir: str | Path, cfg: TrainConfig) -> Plan:
    """Every setting resolved (flags already merged into `cfg`); raises TrainError with all problems at once."""
    lines = []
    if not cfg.model:
        lines.append("no base model: pass --model PATH_OR_ID (or set train.model)")
    if not cfg.out:
        lines.append("no run directory: pass --out RUN_DIR (or set train.out)")
    if lines:
        raise TrainError(*lines)
    inputs = [build_dir] + ([cfg.model] if Path(cfg.model).exists() else [])
    problem = overlap_problem(cfg.out, inputs)
    if problem:
        raise TrainError(problem)
    build = read_build_dir(build_dir)
    quant, notice = modeling.resolve_quant(cfg.quant)
    dtype = modeling.resolve_dtype(cfg.dtype)
    world = modeling.env_world_size()
    p = Plan(
        build=build, cfg=cfg, model=cfg.model, out=Path(cfg.out), quant=quant, quant_notice=notice, dtype=dtype,
        attn_implementation=cfg.attn_implementation or BY_FIELD["attn_implementation"].default,
        **{s.field: trl_value(s, cfg) for s in TRL_SETTINGS},  # epochs, max_steps, lr, batch_size, ...
        lora_alpha=cfg.lora_alpha or 2 * cfg.lora_r, world_size=world, total_steps=0,
        extra_args={k: v for k, v in cfg.args.items() if k not in TRL_NAMES},
    )
    problem = tracker_problem(p.report_to)
    if problem:
        raise TrainError(problem)
    rows = build.rows("train")
    per_epoch = max(1, math.ceil(rows / (p.batch_size * world)) // p.grad_accum) if rows else 0
    p.total_steps = p.max_steps if p.max_steps > 0 else math.ceil(per_epoch * p.epochs)
    return p


def tracker_problem(report_to) -> str | None:
    """Why a tracker named in --report-to cannot be used (unknown, or its package is not installed), or None:
    checked before any work, instead of a traceback when the trainer starts."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    names = [n.strip() for name in names for n in str(name).split(",") if n.strip()]
    installed = set(get_available_reporting_integrations())
    for name in names:
        if name in ("none", "all"):
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            return (f"--report-to {name}: not a tracker transformers knows (one of none, all, "
                    f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))})")
        if name not in installed:
            return f"--report-to {name}: its package is not installed (pip install {name}), or pass --report-to none"
    return None


def sft_config(plan: Plan):
    """The SFTConfig for this plan; bad [train.args] values come back as one TrainError line each."""
    from trl import SFTConfig

    cuda = modeling.device_type() == "cuda"
    import torch

    has_eval = plan.build.rows("validation") > 0
    save_steps = plan.extra_args.get("save_steps", max(1, min(500, plan.total_steps // 5 or 1)))
    args: dict[str, Any] = {
        "logging_steps": 1 if plan.total_steps <= 100 else 10,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": 3,
        "eval_strategy": "steps" if has_eval else "no",
        "per_device_eval_batch_size": plan.batch_size,
        "disable_tqdm": True,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0,
        "ddp_find_unused_parameters": False,
    }
    if has_eval:
        args["eval_steps"] = plan.extra_args.get("eval_steps", save_steps)
    args.update(plan.extra_args)
    args.update(
        output_dir=str(RunPaths(plan.out).checkpoints),
        num_train_epochs=plan.epochs, max_steps=plan.max_steps, learning_rate=plan.lr,
        per_device_train_batch_size=plan.batch_size, gradient_accumulation_steps=plan.grad_accum, seed=plan.seed,
        data_seed=plan.extra_args.get("data_seed", plan.seed),
        report_to=plan.report_to, remove_unused_columns=False, packing=False, padding_free=False, max_length=None,
        dataset_kwargs={"skip_prepare_dataset": True},
        activation_checkpointing=plan.activation_checkpointing,
    )
    args.pop("gradient_checkpointing", None)
    if "bf16" not in plan.extra_args and "fp16" not in plan.extra_args:
        args["bf16"] = bool(cuda and plan.dtype == torch.bfloat16)
        args["fp16"] = bool(cuda and plan.dtype == torch.float16)
    if not cuda:
        args.setdefault("use_cpu", True)
        args["dataloader_pin_memory"] = False
    try:
        return SFTConfig(**args)
    except (TypeError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainError(f"[train.args]: {msg}") from None


# --- preparing the model --------------------------------------------------------------------------------------------

@dataclass
class Prepared:
    model: Any  # PeftModel
    tokenizer: Any
    vocab: modeling.VocabPlan
    inits: list[modeling.TokenInit]
    lora_info: dict[str, Any]
    fingerprint: dict[str, Any]
    trainable: int
    total: int
    lora_dropout: float = 0.0  # what LoRA trains with (`lora_dropout`)
    dropout_notice: str | None = None  # why it is not the configured one


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise TrainError(f"{path}: cannot load the tokenizer: {str(exc).splitlines()[0]}") from None


def prepare_model(plan: Plan, *, meta: bool = False) -> Prepared:
    """Load the base model (or build it on the meta device for --dry-run), grow and initialise the new rows, and
    wrap it in LoRA."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training

    tokenizer = load_tokenizer(plan.build.tokenizer_dir)
    if len(tokenizer) != plan.build.vocab_after:
        raise TrainError(f"{plan.build.tokenizer_dir}: {len(tokenizer)} tokens, but the manifest says vocab_after="
                         f"{plan.build.vocab_after}")
    config = modeling.load_model_config(plan.model, plan.cfg.trust_remote_code)
    if meta:
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, dtype=plan.dtype,
                                                     trust_remote_code=plan.cfg.trust_remote_code)
    else:
        model = modeling.load_base_model(plan.model, quant=plan.quant, dtype=plan.dtype,
                                         attn_implementation=plan.attn_implementation,
                                         trust_remote_code=plan.cfg.trust_remote_code,
                                         device_map=modeling.default_device_map(plan.quant))
        problem = modeling.quantized_shape_problem(model)
        if problem:
            raise TrainError(f"--model {plan.model}: {problem}; train it with --quant none")
    rows_before = model.get_input_embeddings().weight.shape[0]
    if rows_before < plan.build.vocab_before:
        raise TrainError(f"--model {plan.model}: {rows_before} embedding rows, fewer than the build's base "
                         f"tokenizer ({plan.build.vocab_before} tokens): was the build made for another model?")
    new_tokens = plan.build.new_tokens()
    tied = modeling.is_tied(model)
    vocab = modeling.plan_vocab(rows_before, plan.build.vocab_before, plan.build.vocab_after, new_tokens, tied)
    if meta:
        if vocab.rows_after != rows_before:
            model.resize_token_embeddings(vocab.rows_after, mean_resizing=False)
        inits = [modeling.TokenInit(t.token, t.id, "description" if t.description else "mean", t.description)
                 for t in new_tokens]
    else:
        inits = modeling.resize_and_init(model, vocab, new_tokens, tokenizer)
    model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    # with a KV cache, transformers does not derive the packed (block-diagonal) mask from position_ids
    model.config.use_cache = False
    if plan.quant != "none" and not meta:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=plan.activation_checkpointing)
    experts = modeling.fused_expert_parameters(model)
    dropout, dropout_notice = lora_dropout(plan, experts)
    lcfg, info = modeling.lora_config(model, r=plan.cfg.lora_r, alpha=plan.lora_alpha, dropout=dropout,
                                      targets=plan.cfg.lora_targets, new_ids=vocab.new_ids, tied=tied,
                                      train_embeddings=plan.cfg.train_embeddings)
    try:
        peft_model = get_peft_model(model, lcfg)
    except ValueError as exc:
        hint = ("; LoRA on this MoE model's fused expert weights has no dropout: set lora_dropout = 0"
                if experts and dropout else "")
        raise TrainError(f"LoRA targets {plan.cfg.lora_targets!r}: {str(exc).splitlines()[0]}{hint}") from None
    modeling.expose_head_bias(peft_model)
    _no_embedding_copies(peft_model)
    trainable, total = modeling.trainable_parameters(peft_model)
    return Prepared(peft_model, tokenizer, vocab, inits, info, modeling.model_fingerprint(plan.model, config),
                    trainable, total, dropout, dropout_notice)


def lora_dropout(plan: Plan, experts: list[str]) -> tuple[float, str | None]:
    """The LoRA dropout to train with, and why it is not the one configured. On an MoE model whose experts are
    stored fused, "all-linear" adapts them with peft's ParamWrapper, which refuses any dropout: the default then
    becomes 0 (said in the plan and at the start of training); a dropout the user set is refused in one line."""
    asked = plan.cfg.lora_dropout
    if not asked or not experts or plan.cfg.lora_targets != "all-linear":
        return asked, None
    if "lora_dropout" in plan.cfg.model_fields_set:
        raise TrainError(f"lora_dropout {asked}: LoRA on this MoE model's fused expert weights ({experts[0]}, …) has "
                         "no dropout in peft; set lora_dropout = 0, or lora_targets to modules without the experts")
    return 0.0, (f"LoRA dropout 0, not the default {asked}: LoRA on this MoE model's fused expert weights (peft's "
                 "ParamWrapper) has no dropout")


def _no_embedding_copies(peft_model) -> None:
    """peft saves the whole (resized) embedding matrix with every adapter and checkpoint unless told not to. The
    loader rebuilds the base rows exactly, and the new rows are in the adapter (trainable tokens or
    modules_to_save), so those copies are never needed."""
    original = peft_model.save_pretrained

    def save_pretrained(*args, **kwargs):
        kwargs.setdefault("save_embedding_layers", False)
        return original(*args, **kwargs)

    peft_model.save_pretrained = save_pretrained


def quiet_libraries() -> None:
    from transformers.utils import logging as hf_logging

    from malmungchi.quiet import quiet_library_warnings

    hf_logging.disable_progress_bar()
    quiet_library_warnings()


def no_hub_telemetry() -> None:
    """trl's trainers report each run to the Hub from a background thread (with the user's token in its headers)
    unless telemetry is off; malmungchi never talks to the Hub at run time. huggingface_hub reads the variable
    when it is imported, so the constant is set too."""
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_TELEMETRY = True


def lora_targets(model) -> list[str]:
    names = set()
    for name, module in model.named_modules():
        if hasattr(module, "lora_A"):
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def collation_layout(plan: Plan, config) -> boundaries.Layout:
    """How the collator lays out batches for this model and build (train.boundaries: a model with linear-attention
    or other stateful layers needs cu_seq_lens and seq_idx when rows are packed)."""
    packed = any(plan.build.most_sequences_per_row(split) > 1 for split in ("train", "validation"))
    return boundaries.choose_layout(config, plan.attn_implementation, packed=packed)


# --- dry run --------------------------------------------------------------------------------------------------------

def describe(plan: Plan) -> list[tuple[str, str]]:
    """The resolved plan as (what, value) rows: model built on the meta device, nothing loaded."""
    quiet_libraries()
    prep = prepare_model(plan, meta=True)
    cfg = prep.model.base_model.model.config
    ntok = max(1, plan.build.real_tokens("train")) / max(1, plan.build.rows("train"))
    dtype_bytes = 2 if "16" in modeling.dtype_name(plan.dtype) else 4
    est = modeling.estimate_gpu_memory(cfg, quant=plan.quant, dtype_bytes=dtype_bytes, trainable=prep.trainable,
                                       tokens_per_micro_batch=int(ntok * plan.batch_size),
                                       activation_checkpointing=plan.activation_checkpointing,
                                       rows=prep.vocab.rows_after)
    quant = {"4bit": "4-bit NF4, double quantization (bitsandbytes)", "8bit": "8-bit (bitsandbytes)",
             "none": "none"}[plan.quant]
    if plan.quant_notice:
        quant += f" — {plan.quant_notice}"
    v = prep.vocab
    new = ", ".join(f"{i.token}={i.id} ({'“' + i.description + '”' if i.method == 'description' else 'mean'})"
                    for i in prep.inits) or "none"
    rows = [
        ("build", f"{plan.build.path} (content {plan.build.content_hash[:12]})"),
        ("model", f"{plan.model} ({cfg.model_type}, {prep.total:,} parameters)"),
        ("dtype", modeling.dtype_name(plan.dtype)),
        ("quantization", quant),
        ("attention", f"{plan.attn_implementation} ({collation_layout(plan, cfg).describe()})"),
        ("LoRA", f"r={plan.cfg.lora_r}, alpha={plan.lora_alpha}, dropout={prep.lora_dropout}"
                 + (f" ({prep.dropout_notice})" if prep.dropout_notice else "")),
        ("LoRA targets", ", ".join(lora_targets(prep.model)) or "none"),
        ("trainable parameters", f"{prep.trainable:,} ({100 * prep.trainable / max(prep.total, 1):.3f}%)"),
        ("vocabulary rows", f"{v.rows_before:,} → {v.rows_after:,} (tokenizer {v.vocab_before:,} → "
                            f"{v.vocab_after:,}; {v.spare_rows_used} new ids in spare rows)"),
        ("new tokens", new),
        ("new tokens trained by", prep.lora_info["how"]),
        ("data", f"{plan.build.rows('train'):,} train rows ({plan.build.real_tokens('train'):,} tokens), "
                 f"{plan.build.rows('validation'):,} validation rows"),
        ("batch", f"{plan.batch_size} rows × {plan.grad_accum} accumulation × {plan.world_size} process"
                  f"{'es' * (plan.world_size > 1)}"),
        ("steps", f"{plan.total_steps:,}" + (" (max_steps)" if plan.max_steps > 0 else f" ({plan.epochs:g} epochs)")),
        ("learning rate", f"{plan.lr:g}"),
        ("seed", str(plan.seed)),
        ("GPU memory (estimate)", f"{est['total_gib']:.1f} GiB (weights {est['weights_gib']:.1f}, trainable state "
                                  f"{est['trainable_state_gib']:.2f}, activations {est['activations_gib']:.2f})"),
        ("run directory", str(plan.out)),
    ]
    return rows


# --- training -------------------------------------------------------------------------------------------------------

def check_out_dir(plan: Plan, resume: bool) -> tuple[str | bool, str | None]:
    """(the resume_from_checkpoint argument, a notice or None). Refuses to overwrite a finished run or one with
    checkpoints unless --resume; a run killed before its first whole checkpoint (only training's own files, no
    run manifest) is started over, with a notice saying so."""
    out = plan.out
    ckpt = RunPaths(out).checkpoints
    done = complete_checkpoints(ckpt)
    finished = is_run_dir(out)
    if resume and done:
        newest = checkpoint_step(done[0])
        torn = sorted(d.name for d in ckpt.glob("checkpoint-*") if d not in done and checkpoint_step(d) > newest)
        notice = f"{', '.join(torn)} incomplete (killed while saving?): resuming from {done[0].name}" if torn \
            else None
        return str(done[0]), notice
    if not out.exists() or not any(out.iterdir()):
        if resume:
            raise TrainError(f"--resume: no checkpoint in {ckpt}")
        return False, None
    if not done and not finished and only_run_files(out):
        if is_main_process():
            for entry in out.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        return False, f"--out {out}: a run stopped before its first checkpoint; starting it over"
    if resume:
        raise TrainError(f"--resume: no whole checkpoint in {ckpt}" + (" (the run finished)" if finished else ""))
    what = "a finished run" if finished else "not empty"
    raise TrainError(f"--out {out}: {what} (use --resume to continue its last checkpoint, or another --out)")


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0") or 0) == 0


@dataclass
class Outcome:
    manifest: dict[str, Any]
    model: Any  # the trained PeftModel, still in memory
    metrics: dict[str, Any]


def train(plan: Plan, *, resume: bool = False, console=None) -> Outcome:
    """Train and write the run directory."""
    import torch
    from transformers import set_seed

    from malmungchi.train.collate import PackedCollator
    from malmungchi.train.progress import PackedSFTTrainer, ProgressCallback

    from transformers import PrinterCallback

    quiet_libraries()
    no_hub_telemetry()
    resume_from, out_notice = check_out_dir(plan, resume)
    if plan.cfg.merge:  # said before training, not after it (a resumed run that was merged before, say)
        from malmungchi.train.merge import out_problem

        problem = out_problem(plan.out, RunPaths(plan.out).merged)
        if problem:
            raise TrainError(problem)
    if console is not None and out_notice and is_main_process():
        console.print(out_notice)
    args = sft_config(plan)
    set_seed(plan.seed)
    prep = prepare_model(plan)
    tokenizer = prep.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise TrainError(f"{plan.build.tokenizer_dir}: the tokenizer has neither a pad nor an eos token")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    layout = collation_layout(plan, prep.model.base_model.model.config)
    collator = PackedCollator(pad_token_id=pad_id, flatten=layout.flatten, seq_idx=layout.seq_idx)
    callback = ProgressCallback(console=console)
    fresh = not plan.out.exists()
    started = time.time()
    trainer = PackedSFTTrainer(
        model=prep.model, args=args, data_collator=collator, train_dataset=plan.build.splits["train"],
        eval_dataset=plan.build.splits.get("validation") if plan.build.rows("validation") else None,
        processing_class=tokenizer, callbacks=[callback],
    )
    callback.bind(trainer)
    if layout.seq_idx:
        probe_boundaries(plan, trainer, collator, layout, pad_id, fresh=fresh)
    trainer.remove_callback(PrinterCallback)
    if console is not None and trainer.is_world_process_zero():
        for notice in (plan.quant_notice, prep.dropout_notice):
            if notice:
                console.print(notice)
    result = trainer.train(resume_from_checkpoint=resume_from or None)
    eval_metrics = {}
    if plan.build.rows("validation"):
        if callback.evals and callback.evals[-1]["step"] == trainer.state.global_step:
            eval_metrics = {"eval_loss": callback.evals[-1]["eval_loss"]}
        else:
            eval_metrics = trainer.evaluate()
    manifest = run_manifest(plan, prep, trainer, resumed_from=resume_from or None)
    model = trainer.accelerator.unwrap_model(trainer.model)
    metrics = {}
    if trainer.is_world_process_zero():
        metrics = write_run_dir(plan, prep, trainer, manifest, callback, result, eval_metrics, started)
        if plan.cfg.merge:  # the same path as `train merge`: the base reloaded unquantized from disk
            from malmungchi.train.merge import merge_run

            merge_run(plan.out, RunPaths(plan.out).merged, dtype=modeling.dtype_name(plan.dtype))
    trainer.accelerator.wait_for_everyone()
    del trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    model.eval()
    return Outcome(manifest, model, metrics)


def probe_boundaries(plan: Plan, trainer, collator, layout: boundaries.Layout, token_id: int, *, fresh: bool) -> None:
    """`boundaries.probe` on the model where the trainer placed it (its kernels, if any, run there). A refused run
    leaves behind none of the folders the trainer made when it was built (its empty checkpoints folder, and the run
    directory when there was none)."""
    try:
        boundaries.probe(trainer.model, collator, token_id=token_id, model_name=plan.model, layout=layout)
    except TrainError:
        for folder in (RunPaths(plan.out).checkpoints, plan.out if fresh else None):
            try:
                if folder is not None:
                    folder.rmdir()  # only when empty
            except OSError:
                pass
        raise


def finished_line(manifest: dict[str, Any], out: Path) -> str:
    """What `train run` (and the quick start) prints when the run directory is written."""
    steps = manifest["hyperparameters"]["steps"]
    return f"trained {steps} step{'s' * (steps != 1)}; run written to {out}"


def run_manifest(plan: Plan, prep: Prepared, trainer, resumed_from) -> dict[str, Any]:
    peft_cfg = prep.model.peft_config["default"]
    lora = {k: (sorted(v) if isinstance(v, set) else v) for k, v in peft_cfg.to_dict().items()
            if k in ("r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save", "trainable_token_indices",
                     "bias", "task_type", "ensure_weight_tying")}
    return {
        "schema_version": SCHEMA_VERSION,
        "build": {"path": str(plan.build.path.resolve()), "content_hash": plan.build.content_hash,
                  "mode": plan.build.manifest.get("mode")},
        "base_model": {"name_or_path": plan.model, "resolved": str(Path(plan.model).resolve())
                       if Path(plan.model).is_dir() else None, **prep.fingerprint,
                       "model_type": prep.model.base_model.model.config.model_type,
                       "trust_remote_code": plan.cfg.trust_remote_code},
        "vocab": prep.vocab.as_dict(),
        "added_ids": prep.vocab.new_ids,
        "init": {"method": "mean of the base rows of the token's description (marker registry), else of all base "
                           "vocabulary rows", "tokens": [i.as_dict() for i in prep.inits]},
        "train_embeddings": prep.lora_info,
        "lora": lora,
        "quantization": plan.quant,
        "quantization_notice": plan.quant_notice,
        "dtype": modeling.dtype_name(plan.dtype),
        "attn_implementation": plan.attn_implementation,
        "seed": plan.seed,
        "hyperparameters": {"epochs": plan.epochs, "max_steps": plan.max_steps, "learning_rate": plan.lr,
                            "batch_size": plan.batch_size, "grad_accum": plan.grad_accum,
                            "world_size": trainer.accelerator.num_processes, "steps": trainer.state.global_step,
                            "args": plan.extra_args},
        "trainable_parameters": prep.trainable,
        "resumed_from": str(resumed_from) if resumed_from else None,
        "versions": modeling.versions(),
        "merged": bool(plan.cfg.merge),
    }


def write_run_dir(plan: Plan, prep: Prepared, trainer, manifest, callback, result, eval_metrics, started) -> dict:
    out = RunPaths(plan.out)
    out.root.mkdir(parents=True, exist_ok=True)
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.save_pretrained(out.adapter)
    # beside the adapter too: peft's AutoPeftModelForCausalLM (and lm-eval's peft=) resize the base to it
    prep.tokenizer.save_pretrained(str(out.adapter))
    if out.tokenizer.exists():
        shutil.rmtree(out.tokenizer)
    shutil.copytree(plan.build.tokenizer_dir, out.tokenizer)
    metrics = {
        "loss_curve": callback.curve,
        "eval": callback.evals,
        "eval_loss": eval_metrics.get("eval_loss"),
        "train_loss": result.training_loss,
        "steps": trainer.state.global_step,
        "runtime_s": round(time.time() - started, 3),
        **callback.summary(),
    }
    write_json(out.metrics, metrics)
    write_loss_plot(metrics, out.loss_plot, f"{plan.out.name}: {Path(str(plan.cfg.model)).name}, "
                                            f"{trainer.state.global_step} steps")
    write_json(out.manifest, manifest)  # last: its presence means the run finished
    return metrics

