"""`malmungchi experiment markers`: which marker policy trains the better model, with evidence."""

from __future__ import annotations

import json

import click
from rich.text import Text

from malmungchi.cli.common import EXCLUDE_HELP, console, fail, load_config_or_fail
from malmungchi.experiment.arms import ARMS
from malmungchi.experiment.markers import Settings

DEFAULTS = Settings(inputs=[], out="")


def _ints(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give comma-separated integers, e.g. 0,1,2") from None


@click.group(name="experiment")
def experiment() -> None:
    """Choices trained and scored side by side on one split."""


@experiment.command(name="markers")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(), help="The experiment folder (resumable).")
@click.option("--tokenizer", default=DEFAULTS.tokenizer, show_default=True,
              help="A tokenizer folder, or 'train': a byte-level BPE trained on the inputs (markers left out).")
@click.option("--model", default=DEFAULTS.model, show_default=True,
              help="A base model folder, or 'tiny': a from-scratch Llama-style model with random weights.")
@click.option("--policies", default=",".join(ARMS), show_default=True, help="Policies to compare.")
@click.option("--chat", is_flag=True, help="Build in chat mode (dialogues as conversations).")
@click.option("--max-steps", type=click.IntRange(min=1), default=DEFAULTS.max_steps, show_default=True)
@click.option("--epochs", type=float, help="Train for epochs instead of --max-steps.")
@click.option("--seeds", default="0", show_default=True, callback=lambda c, p, v: _ints(v),
              help="Training seeds, comma-separated: each policy trains once per seed.")
@click.option("--max-length", type=click.IntRange(min=16), default=DEFAULTS.max_length, show_default=True)
@click.option("--lr", type=float, default=DEFAULTS.lr, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size, show_default=True)
@click.option("--lora-r", type=click.IntRange(min=1), default=DEFAULTS.lora_r, show_default=True)
@click.option("--lora-alpha", type=click.IntRange(min=1), default=DEFAULTS.lora_alpha, show_default=True)
@click.option("--train-embeddings", type=click.Choice(["tokens", "full"]), default=DEFAULTS.train_embeddings,
              show_default=True, help="full: every embedding row trains (a from-scratch base needs it).")
@click.option("--quant", type=click.Choice(["auto", "4bit", "8bit", "none"]), default=DEFAULTS.quant,
              show_default=True)
@click.option("--hidden-size", type=click.IntRange(min=64), default=DEFAULTS.hidden_size, show_default=True,
              help="--model tiny: width (a multiple of 64).")
@click.option("--layers", type=click.IntRange(min=1), default=DEFAULTS.layers, show_default=True,
              help="--model tiny: layers.")
@click.option("--vocab-size", type=click.IntRange(min=300), default=DEFAULTS.vocab_size, show_default=True,
              help="--tokenizer train: vocabulary size.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=DEFAULTS.max_new_tokens, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Generate for the first N test items only.")
@click.option("--split-unit", type=click.Choice(["auto", "document", "chunk"]), default="auto", show_default=True,
              help="auto: whole documents when the test split gets at least 10, else pieces of them.")
@click.option("--config", "config_path", type=click.Path(), help="A malmungchi.toml ([build] settings apply).")
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB", help=EXCLUDE_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="Print report.json to stdout (with this invocation's stages: which were done, which skipped).")
def markers(inputs, out, tokenizer, model, policies, chat, max_steps, epochs, seeds, max_length, lr, batch_size,
            lora_r, lora_alpha, train_embeddings, quant, hidden_size, layers, vocab_size, max_new_tokens, limit,
            split_unit, config_path, excludes, as_json):
    """Build, train and score every marker policy on one split; print which one trains the better model.

    Every policy is built from the same inputs with the same split (whole documents or pieces of them, decided
    by their source text), trained from the same base with the same settings, seeds and budget, and evaluated on the same test
    items: content bits per character (with 95% CIs), exact match and char F1 on content, marker fidelity, cost.
    Writes OUT/report.md, OUT/report.json and PNG plots; a rerun resumes, skipping finished stages.
    """
    from malmungchi.tables import print_fitted

    from malmungchi.experiment import report as report_mod
    from malmungchi.experiment.markers import run

    load_config_or_fail(list(inputs), config_path)  # a bad config file: its lines, before anything runs
    s = Settings(inputs=list(inputs), out=out, tokenizer=tokenizer, model=model,
                 policies=tuple(p.strip() for p in policies.split(",") if p.strip()), chat=chat,
                 seeds=seeds, max_steps=None if epochs else max_steps, epochs=epochs, max_length=max_length, lr=lr,
                 batch_size=batch_size, lora_r=lora_r, lora_alpha=lora_alpha, train_embeddings=train_embeddings,
                 quant=quant, hidden_size=hidden_size, layers=layers, vocab_size=vocab_size,
                 max_new_tokens=max_new_tokens, eval_limit=limit, split_unit=split_unit, config=config_path,
                 exclude=tuple(excludes))
    if hidden_size % 64:
        fail(f"--hidden-size {hidden_size}: give a multiple of 64 (4-bit layers need their inputs in blocks of 64)")
    err = console(stderr=True)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = 2 + len(s.policies) + 2 * len(s.policies) * len(s.seeds)
    bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err, disable=not err.is_terminal)
    task = bar.add_task("experiment", total=total)

    def progress(name: str, finished: bool) -> None:
        if finished:
            bar.advance(task)
        else:
            bar.update(task, description=name)
            if not err.is_terminal:
                err.print(f"{name} …")

    with bar:
        rep = run(s, progress)  # an ExperimentError (a UserError) is printed by the main group
    if as_json:
        click.echo(json.dumps({k: v for k, v in rep.items()}, indent=2, ensure_ascii=False, default=str))
        return
    o = console()
    print_fitted(o, f"marker policies on {rep['n_documents']} test {rep['unit']}, {rep['n_items']} items, "
                    f"seeds {', '.join(map(str, rep['seeds']))}", report_mod.HEADERS, report_mod.rows(rep),
                 left=("policy", "marker F1"))
    o.print(Text(report_mod.LEGEND, style="dim"))
    for v in rep["verdicts"]:
        o.print(f"• {v}")
    o.print(f"report: {out}/report.md (report.json, loss.png, bpc.png)")
