"""`malmungchi corpus build` and `malmungchi corpus stats`: marker corpus → packed, tokenized build directory.

Options come from the config file's `[build]` table; a flag given on the command line overrides the same key.
Exit status: 0 built, 1 refused because inputs have lint errors (shown), 2 usage, config or I/O error.
"""

from __future__ import annotations

import json
import sys

import click
from pydantic import ValidationError
from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

from malmungchi.cli.common import EXCLUDE_HELP, console, fail, load_config_or_fail, styled
from malmungchi.corpus import report as lint_report
from malmungchi.schemas.config import BuildConfig, format_validation_error



def _complete_policy(ctx, param, incomplete: str) -> list[str]:
    """Shell completion for a policy value (`replace:"…"` is the user's own)."""
    return [p for p in ("special", "text", "strip", "drop", 'replace:"') if p.startswith(incomplete)]

def _options(f):
    opts = [
        click.argument("inputs", nargs=-1, required=True, type=click.Path()),
        click.option("--tokenizer", help="Tokenizer directory (or a hub id already in the local cache; never "
                     "downloaded)."),
        click.option("--config", "config_path", type=click.Path(), help="Config file (default: nearest "
                     "malmungchi.toml or pyproject.toml [tool.malmungchi] up from the first input)."),
        click.option("--mode", type=click.Choice(["text", "chat"]), help="text: documents as plain text; chat: "
                     "dialogues as messages through the chat template, loss on assistant turns."),
        click.option("--max-length", type=int, help="Row length in tokens (default 2048)."),
        click.option("--policy", "policies", multiple=True, metavar="NAME=POLICY",
                     help='Marker policy: special | text | strip | drop | replace:"…" (repeatable).'),
        click.option("--default-policy", help="Policy for markers without their own (default special).",
                     shell_complete=_complete_policy),
        click.option("--speakers", type=click.Choice(["name", "token", "drop"]),
                     help="Speaker prefixes: keep the name, per-dialogue <|speaker_N|> tokens, or drop."),
        click.option("--assistant-speaker", "assistant_speakers", multiple=True,
                     help="Chat mode: this speaker's turns are the assistant (repeatable; default: the second "
                          "speaker of each dialogue)."),
        click.option("--system-prompt", help="Chat mode: system message of every conversation."),
        click.option("--narration-context", type=click.Choice(["system", "user", "none"]),
                     help="Chat mode: where the narration before a dialogue goes."),
        click.option("--split-ratios", metavar="TRAIN,VALIDATION,TEST", help="e.g. 0.9,0.05,0.05"),
        click.option("--seed", type=int, help="Split seed."),
        click.option("--split-unit", type=click.Choice(["auto", "document", "chunk"]),
                     help="Assign whole documents (books) or chunks to splits; auto falls back to chunks when a "
                          "split would be empty."),
        click.option("--long-documents", type=click.Choice(["split", "drop"]),
                     help="Documents longer than --max-length: cut at segment boundaries, or drop."),
        click.option("--pack/--no-pack", default=None, help="Pack sequences into rows (best fit decreasing)."),
        click.option("--dedup/--no-dedup", default=None, help="Remove exact duplicate documents."),
        click.option("--eval-context", type=int, help="Tokens of context kept in eval prompts (default 512)."),
        click.option("--allow-errors", is_flag=True, default=None,
                     help="Drop documents (or files) with lint errors instead of refusing the build."),
        click.option("--prompt-column", help="Paired .csv/.tsv: the prompt column (name, or number without a "
                     "header)."),
        click.option("--answer-column", help="Paired .csv/.tsv: the answer column."),
        click.option("--speaker-column", help="Transcript .csv/.tsv: the speaker column."),
        click.option("--text-column", help="Transcript .csv/.tsv: the text column."),
        click.option("--header/--no-header", default=None, help="Whether tables have a header row (default: yes, "
                     "unless the columns are given as numbers)."),
        click.option("--transcript-style", type=click.Choice(["none", "kspon"]), help="Tables: speech-transcript "
                     "conventions (kspon: overlap /os…/oe, backchannels [네.(BC/…)], (written)/(spoken), n/ b/ l/ o/ "
                     "u/, fillers 어/; default none: text as written)."),
        click.option("--dual-transcription", type=click.Choice(["written", "spoken"]), help="kspon: keep the "
                     "written (default) or the spoken form of (written)/(spoken)."),
        click.option("--group-by", metavar="FIELD", help="Rows that belong together share a split: the .jsonl "
                     "field or table column naming each row's book (default: a .jsonl file of text rows is one "
                     "group, e.g. the scenes of one KoCoNovel novel)."),
        click.option("--exclude", "excludes", multiple=True, metavar="GLOB", help=EXCLUDE_HELP),
        click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Reader processes."),
        click.option("--encoder", type=click.Choice(["auto", "tiktoken", "tokenizers"]), default="auto",
                     show_default=True, help="Encode with tiktoken's BPE where it gives the tokenizer's own ids "
                     "(5-6x faster; auto: from 2 MB of input on), or with the tokenizer itself. Same ids and same "
                     "build either way."),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


FLAG_KEYS = ("tokenizer", "mode", "max_length", "default_policy", "speakers", "system_prompt", "narration_context",
             "seed", "split_unit", "long_documents", "pack", "dedup", "eval_context", "allow_errors",
             "prompt_column", "answer_column", "speaker_column", "text_column", "header", "group_by",
             "transcript_style", "dual_transcription")


def resolve(config, kw: dict) -> BuildConfig:
    """The config file's [build] with the flags given on the command line on top."""
    data = config.build.model_dump()
    for key in FLAG_KEYS:
        if kw.get(key) is not None:
            data[key] = kw[key]
    if kw.get("policies"):
        pol = dict(data.get("policies") or {})
        for item in kw["policies"]:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                fail(f"--policy {item!r}: write NAME=POLICY, e.g. --policy SOUND=strip")
            pol[name.strip().upper()] = value
        data["policies"] = pol
    if kw.get("assistant_speakers"):
        data["assistant_speakers"] = list(kw["assistant_speakers"])
    if kw.get("split_ratios"):
        parts = kw["split_ratios"].split(",")
        try:
            nums = [float(x) for x in parts]
        except ValueError:
            nums = []
        if len(nums) != 3:
            fail(f"--split-ratios {kw['split_ratios']!r}: give three numbers TRAIN,VALIDATION,TEST")
        data["splits"] = dict(zip(("train", "validation", "test"), nums))
    try:
        return BuildConfig.model_validate(data)
    except ValidationError as err:
        fail(*format_validation_error(err, "options", BuildConfig, "build."))


def _plan(kw: dict):
    from malmungchi.prep.build import LintRefusal, plan

    config = load_config_or_fail(list(kw["inputs"]), kw["config_path"])
    cfg = resolve(config, kw)  # (no tokenizer: said by `plan` with every other problem of the inputs)
    registry = config.registry().with_transcripts(cfg.transcript_style, cfg.transcript_patterns)
    exclude = [*config.lint.exclude, *kw["excludes"]]
    err = console(stderr=True)
    try:
        if err.is_terminal:
            columns = ("[progress.description]{task.description}", BarColumn(), TaskProgressColumn(),
                       TimeElapsedColumn())
            with Progress(*columns, console=err, transient=True) as progress:
                tasks: dict[str, int] = {}

                def tick(stage, n, total):
                    if stage not in tasks:
                        tasks[stage] = progress.add_task(stage, total=total)
                    progress.advance(tasks[stage], n)

                return cfg, plan(list(kw["inputs"]), cfg, registry, exclude=exclude, jobs=kw["jobs"],
                                 progress=tick, encoder=kw["encoder"])
        return cfg, plan(list(kw["inputs"]), cfg, registry, exclude=exclude, jobs=kw["jobs"],
                         encoder=kw["encoder"])
    except LintRefusal as exc:  # the diagnostics, then one line (a UserError is printed by the main group)
        for line in lint_report.text_lines(exc.diagnostics):
            click.echo(line, err=True)
        files = len({d.path for d in exc.diagnostics})
        click.echo(f"error: refusing to build: {len(exc.diagnostics)} lint error(s) in {files} file(s); "
                   f"{refusal_advice(exc.diagnostics, kw['inputs'], kw['excludes'], kw['config_path'])}", err=True)
        sys.exit(1)


def refusal_advice(diagnostics, inputs=(), excludes=(), config_path=None) -> str:
    """What to do about the lint errors that refused a build: the lint command (on the build's `inputs`, leaving
    out what it left out, with its config) whose fixes apply to them (an unsafe fix, such as re-encoding a CP949
    file, needs --unsafe-fixes), else fixing them by hand."""
    import shlex

    from malmungchi.corpus.rules import FixSafety

    args = [*map(str, inputs)] or ["PATHS"]
    for glob in excludes:
        args += ["--exclude", glob]
    if config_path:
        args += ["--config", str(config_path)]
    lint = "malmungchi corpus lint " + shlex.join(args)
    kinds = {d.fix_safety for d in diagnostics}
    if FixSafety.unsafe in kinds:
        how = f"fix them (`{lint} --unsafe-fixes --diff` shows the fixes, `--fix --unsafe-fixes` applies them)"
    elif FixSafety.safe in kinds:
        how = f"fix them (`{lint} --fix`)"
    else:
        how = "fix what the lines above name, by hand (`malmungchi corpus rule CODE` explains each code)"
    if None in kinds and len(kinds) > 1:
        how += "; some need fixing by hand"
    return how + " or pass --allow-errors to drop the broken documents"


def _restore(out: str) -> None:
    """A `--force` build or export of `out` killed mid-swap: the earlier output goes back first, whichever command
    wrote it, before this command's checks look at `out` (`outdir.restore_interrupted_swap`)."""
    from malmungchi.outdir import restore_interrupted_swap

    if restore_interrupted_swap(out):
        console(stderr=True).print(f"restored {out}: a --force build or export was interrupted while replacing it")


@click.command("build")
@_options
@click.option("--out", "-o", "out", required=True, type=click.Path(), help="Build directory to write.")
@click.option("--force", is_flag=True, help="Replace an existing build directory.")
def build_command(out, force, **kw):
    """Tokenize, split, pack and write a build directory (docs/DESIGN.md) from marker text, .jsonl and tables."""
    from malmungchi.outdir import build_out_problem
    from malmungchi.prep.stats import render, report
    from malmungchi.prep.write import write_build  # its errors: printed by the main group

    _restore(out)
    problem = build_out_problem(out, kw["inputs"], force=force)
    if problem:
        fail(problem)
    cfg, p = _plan(kw)
    try:
        manifest = write_build(p, out, force=force)  # computes the report while the data is written
    except OSError as exc:
        fail(f"{out}: cannot write: {exc.strerror or exc}")
    rep = report(p)
    if kw["as_json"]:
        click.echo(json.dumps(rep, ensure_ascii=False, indent=2, sort_keys=True))
        return
    render(rep, console())
    console().print(styled("built", "green", f" {out} (content hash {manifest['content_hash'][:16]}…; encoded with "
                                             f"{p.encoded_with})"))


@click.command("stats")
@_options
def stats_command(**kw):
    """Print the build report (token costs, lengths, markers, Korean fertility, splits) without writing."""
    from malmungchi.prep.stats import render, report

    cfg, p = _plan(kw)
    rep = report(p)
    if kw["as_json"]:
        click.echo(json.dumps(rep, ensure_ascii=False, indent=2, sort_keys=True))
        return
    render(rep, console())
