"""`malmungchi train ...`: QLoRA fine-tuning on a build directory."""

from __future__ import annotations

import json
from pathlib import Path

import click

from malmungchi.cli.common import console, load_config_or_fail
from malmungchi.train.settings import BY_FIELD


def _setting(field: str, **kw):
    """The option for a `[train]` key: its flag and help (the default filled in) from `malmungchi.train.settings`.
    It is None when not given, so that the config file's value, or else the default, stands."""
    s = BY_FIELD[field]
    return click.option(s.option, field, default=None, help=s.help_text, **kw)


@click.group()
def train() -> None:
    """Fine-tune a base model on a build directory (QLoRA) and write a run directory."""


@train.command()
@click.argument("build_dir", type=click.Path())
@_setting("model")
@_setting("out")
@click.option("--config", "config_path", type=click.Path(), help="Config file ([train] and [train.args] tables; "
              "default: nearest malmungchi.toml or pyproject.toml [tool.malmungchi] up from BUILD_DIR).")
@_setting("quant", type=click.Choice(["auto", "4bit", "8bit", "none"]))
@_setting("dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]))
@_setting("attn_implementation", type=click.Choice(["sdpa", "eager", "flash_attention_2", "flash_attention_3"]))
@_setting("max_steps", type=click.IntRange(min=1))
@_setting("epochs", type=click.FloatRange(min=0, min_open=True))
@_setting("lr", type=click.FloatRange(min=0, min_open=True))
@_setting("batch_size", type=click.IntRange(min=1))
@_setting("grad_accum", type=click.IntRange(min=1))
@_setting("lora_r", type=click.IntRange(min=1))
@_setting("lora_alpha", type=click.IntRange(min=1))
@_setting("train_embeddings", type=click.Choice(["tokens", "full"]))
@_setting("seed", type=int)
@_setting("report_to")
@_setting("trust_remote_code", is_flag=True)
@_setting("merge", is_flag=True)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in RUN_DIR/checkpoints.")
@click.option("--dry-run", is_flag=True, help="Print the resolved plan and exit; loads no weights.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the outcome (or, with --dry-run, the plan) as JSON on stdout; progress stays on stderr.")
def run(build_dir, config_path, resume, dry_run, as_json, **options):
    """Train LoRA adapters (and the new tokens' rows) on BUILD_DIR's packed rows; write RUN_DIR.

    Exit status: 0 done, 2 usage, configuration or I/O error.
    """
    config = load_config_or_fail([build_dir], config_path)
    cfg = config.train.with_options(options)

    from malmungchi.train.runner import describe, finished_line, is_main_process, resolve, sft_config, train as do_train

    out = console()
    plan = resolve(build_dir, cfg)
    sft_config(plan)  # bad [train.args] values fail here, before anything is written
    if dry_run and as_json:
        click.echo(json.dumps({"dry_run": True, "plan": dict(describe(plan))}, ensure_ascii=False, indent=2))
        return
    if dry_run:
        from rich.text import Text

        from malmungchi.tables import Fitted

        out.print(Fitted("malmungchi train run (dry run)", ["setting", "value"],
                         [[Text(what, style="bold"), value] for what, value in describe(plan)],
                         left=("setting", "value"), show_header=False))
        return
    outcome = do_train(plan, resume=resume, console=console(stderr=True))
    if not is_main_process():
        return
    if as_json:
        click.echo(json.dumps(outcome_summary(outcome, plan.out), ensure_ascii=False, indent=2))
    else:
        out.print(finished_line(outcome.manifest, plan.out))


def outcome_summary(outcome, run_dir) -> dict:
    """What `train run --json` prints: where the run is and what it did (the files hold the rest)."""
    from malmungchi.contracts.run import RunPaths

    m = outcome.metrics
    paths = RunPaths(Path(run_dir))
    return {"run_dir": str(run_dir), "steps": m.get("steps"), "train_loss": m.get("train_loss"),
            "eval_loss": m.get("eval_loss"), "real_tokens": m.get("real_tokens"), "tokens_per_s": m.get("tokens_per_s"),
            "train_seconds": m.get("train_seconds"), "manifest": str(paths.manifest), "metrics": str(paths.metrics),
            "loss_curve": [[p["step"], p["loss"]] for p in m.get("loss_curve", [])]}


@train.command()
@click.argument("run_dir", type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(), help="The model folder to write (a new folder; "
              "RUN_DIR/merged is where `train run --merge` puts it).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default=None,
              help="Weights dtype of the merged model (default: the run's).")
@click.option("--device", default="cpu", show_default=True, help="Where the base is loaded and merged (cpu, cuda, "
              "cuda:1).")
@click.option("--model", "base_model", default=None, help="The base model, when it has moved since training "
              "(default: the one the run manifest records).")
def merge(run_dir, out, dtype, device, base_model):
    """Merge RUN_DIR's adapter into its base model (QLoRA runs too: the base is reloaded unquantized) and write one
    plain model folder with the tokenizer: `AutoModelForCausalLM.from_pretrained(OUT)` or `vllm serve OUT`.

    Exit status: 0 done, 2 usage or I/O error.
    """
    from malmungchi.train.merge import merge_run
    from malmungchi.train.runner import quiet_libraries

    quiet_libraries()
    done = merge_run(run_dir, out, dtype=dtype, device=device, base_model=base_model)
    note = " (trained on a 4-bit base; merged into its full-precision weights)" \
        if done["quantization_trained"] != "none" else ""
    console().print(f"merged {run_dir} into {done['out']}: {done['dtype']}, {done['rows']:,} vocabulary rows{note}")
