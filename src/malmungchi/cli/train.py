"""`malmungchi train ...`: QLoRA fine-tuning on a build directory."""

from __future__ import annotations

import os
from pathlib import Path

import click

from malmungchi.cli.common import console, fail, load_config_or_fail

FLAG_TO_FIELD = {
    "model": "model", "out": "out", "quant": "quant", "dtype": "dtype", "attn": "attn_implementation",
    "max_steps": "max_steps", "epochs": "epochs", "lr": "lr", "batch_size": "batch_size", "grad_accum": "grad_accum",
    "lora_r": "lora_r", "lora_alpha": "lora_alpha", "seed": "seed", "report_to": "report_to",
    "train_embeddings": "train_embeddings",
}


@click.group()
def train() -> None:
    """Fine-tune a base model on a build directory (QLoRA) and write a run directory."""


@train.command()
@click.argument("build_dir", type=click.Path())
@click.option("--model", help="Base model: a folder, or a Hugging Face id already in the local cache.")
@click.option("--out", help="The run directory to write.")
@click.option("--config", "config_path", type=click.Path(), help="Config file ([train] and [train.args] tables; "
              "default: nearest malmungchi.toml or pyproject.toml [tool.malmungchi] up from BUILD_DIR).")
@click.option("--quant", type=click.Choice(["auto", "4bit", "8bit", "none"]), default=None,
              help="Quantize the base (default auto: 4-bit NF4 with double quantization where bitsandbytes runs).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default=None,
              help="Weights/compute dtype (default: bf16 on a GPU that has it, else float32).")
@click.option("--attn", type=click.Choice(["sdpa", "eager", "flash_attention_2", "flash_attention_3"]),
              default=None, help="Attention implementation (default sdpa).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Optimizer steps (overrides --epochs).")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None, help="Epochs (default 1).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate (default 2e-4).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Rows per device per step (default 4).")
@click.option("--grad-accum", type=click.IntRange(min=1), default=None, help="Gradient accumulation steps.")
@click.option("--lora-r", type=click.IntRange(min=1), default=None, help="LoRA rank (default 16).")
@click.option("--lora-alpha", type=click.IntRange(min=1), default=None, help="LoRA alpha (default 2·r).")
@click.option("--train-embeddings", type=click.Choice(["tokens", "full"]), default=None,
              help="How new tokens are trained: tokens (peft trainable_token_indices, default) or full "
              "(modules_to_save: the whole embedding and head).")
@click.option("--seed", type=int, default=None, help="Random seed (default 42).")
@click.option("--report-to", default=None, help="Trackers (none, tensorboard, wandb, ...; default none).")
@click.option("--trust-remote-code", is_flag=True, default=None, help="Allow the model's own code to run.")
@click.option("--merge", is_flag=True, default=None, help="Also write merged/ (needs an unquantized base).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in RUN_DIR/checkpoints.")
@click.option("--dry-run", is_flag=True, help="Print the resolved plan and exit; loads no weights.")
def run(build_dir, config_path, resume, dry_run, **flags):
    """Train LoRA adapters (and the new tokens' rows) on BUILD_DIR's packed rows; write RUN_DIR.

    Exit status: 0 done, 2 usage, configuration or I/O error.
    """
    from pydantic import ValidationError

    from malmungchi.schemas.config import TrainConfig, format_validation_error

    config = load_config_or_fail([build_dir], config_path)
    overrides = {FLAG_TO_FIELD[k]: v for k, v in flags.items() if k in FLAG_TO_FIELD and v is not None}
    for flag in ("trust_remote_code", "merge"):
        if flags.get(flag):
            overrides[flag] = True
    data = config.train.model_dump()
    data.update(overrides)
    try:
        cfg = TrainConfig.model_validate(data)
    except ValidationError as err:
        fail(*format_validation_error(err, "options", TrainConfig, "train."))

    from malmungchi.train.errors import TrainError
    from malmungchi.train.runner import describe, resolve, sft_config, train as do_train

    out = console()
    err = console(stderr=True)
    try:
        plan = resolve(build_dir, cfg)
        sft_config(plan)  # bad [train.args] values fail here, before anything is written
        if dry_run:
            from rich.table import Table

            table = Table(title="malmungchi train run (dry run)", show_header=False, show_edge=False)
            table.add_column(style="bold")
            table.add_column()
            for what, value in describe(plan):
                table.add_row(what, value)
            out.print(table)
            return
        manifest = do_train(plan, resume=resume, console=err).manifest
    except TrainError as exc:
        fail(*exc.lines)
    if int(os.environ.get("RANK", "0") or 0) == 0:
        steps = manifest["hyperparameters"]["steps"]
        out.print(f"trained {steps} step{'s' * (steps != 1)}; run written to {Path(cfg.out)}")

