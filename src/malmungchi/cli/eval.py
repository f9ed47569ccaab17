"""`malmungchi eval ...`: score predictions, generate and score with a model, compare two results files."""

from __future__ import annotations

import json
import os
import sys
from contextlib import nullcontext
from pathlib import Path

import click
from rich.text import Text

from malmungchi.cli.common import console, fail, styled

INTERRUPTED = 130


@click.group(name="eval")
def eval_group() -> None:
    """Evaluation: score predictions, generate them with a model (local or served), judge them with an LLM,
    compare two runs."""


def _json_out(obj: dict) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def _normalizer_for(tokenizer_dir: str | None, end_markers: tuple[str, ...], drop_markers: bool):
    from malmungchi.eval.normalize import Normalizer

    extra = list(end_markers)
    if tokenizer_dir:
        from malmungchi.eval.generate import end_marker_texts, stop_token_ids

        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        except (OSError, ValueError) as err:
            fail(f"--tokenizer {tokenizer_dir}: cannot load a tokenizer from this folder "
                 f"({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})")
        extra += end_marker_texts(tok, stop_token_ids(tok))
    return Normalizer(end_markers=tuple(extra), drop_markers=drop_markers)


_DROP_MARKERS_HELP = "Remove <|name|> tokens and |NAME|> markers from both sides before comparing."
_SHOW_HELP = "How many of the worst mismatches to list (0: none)."
_SEED_HELP = "Seed of --sample (the same seed and gold give the same ids on every machine)."


def _sample_options(f):
    """--sample N and --stratify FIELD (eval score, run and judge; each has a --seed)."""
    f = click.option("--stratify", metavar="FIELD",
                     help="Draw --sample in proportion to this gold-record field's values (e.g. a source).")(f)
    return click.option("--sample", "sample_size", type=click.IntRange(min=1),
                        help="Work on a random N of the gold records (reproducible: see --seed); the ids drawn are "
                             "recorded in the summary.")(f)


@eval_group.command()
@click.option("-p", "--predictions", required=True, type=click.Path(), help='JSONL of {"id", "prediction"}.')
@click.option("-g", "--gold", required=True, type=click.Path(),
              help='JSONL of {"id", "prompt", "answer"} (answer: a string or a list), or a build folder.')
@click.option("-o", "--output", type=click.Path(), help="Write one results line per gold item here (atomically).")
@click.option("--drop-markers", is_flag=True, help=_DROP_MARKERS_HELP)
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(),
              help="A tokenizer folder: its EOS and end-of-turn tokens are cut at too.")
@click.option("--end-marker", "end_markers", multiple=True, help="Another end-of-sequence string to cut at.")
@_sample_options
@click.option("--seed", type=int, default=0, show_default=True, help=_SEED_HELP)
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True, help=_SHOW_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def score(predictions, gold, output, drop_markers, tokenizer_dir, end_markers, sample_size, stratify, seed, show,
          as_json):
    """Score predictions made anywhere against gold answers on three exact-match tiers and character F1, each
    with a 95% confidence interval (Wilson for the tiers, a seeded bootstrap for char F1).

    Exit status: 0 scored, 2 usage or input error.
    """
    from malmungchi.eval import report
    from malmungchi.eval.records import check_overlap, read_gold, read_predictions
    from malmungchi.eval.sample import sample_gold
    from malmungchi.eval.score import score_items, summarize, worst, write_results

    normalizer = _normalizer_for(tokenizer_dir, end_markers, drop_markers)
    all_gold = read_gold(gold)
    gold_items, sample = sample_gold(all_gold, gold, sample_size, seed, stratify)
    preds = read_predictions(predictions)
    gold_keys = {g.key for g in all_gold}
    check_overlap(preds, gold_keys, predictions, gold)
    scored = score_items(gold_items, preds, normalizer)
    summary = summarize(scored, normalizer, n_extra=sum(1 for k in preds if k not in gold_keys))
    if sample is not None:
        summary.extra["sample"] = sample.as_dict()
    if output:
        try:
            write_results(output, scored)
        except OSError as err:
            fail(f"{output}: cannot write ({err.strerror})")
    err = console(stderr=True)
    if summary.n_extra:
        err.print(f"warning: {summary.n_extra} predictions have ids that are not in {gold}; they were ignored")
    if as_json:
        _json_out(summary.as_dict())
        return
    out = console()
    out.print(report.summary_table(summary))
    out.print(report.steps_table(summary, normalizer))
    if show:
        bad = worst(scored, show)
        if bad:
            out.print(report.worst_table(bad))


_SERVED_HELP = "(--backend openai)"


def _served_options(concurrency: int):
    """The options of a command that talks to an OpenAI-compatible server (eval run --backend openai, eval judge)."""
    return lambda f: _add_served_options(f, concurrency)


def _add_served_options(f, concurrency: int):
    for option in reversed([
        click.option("--concurrency", type=click.IntRange(min=1), default=concurrency, show_default=True,
                     help="Requests in flight at once."),
        click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
                     help="The environment variable holding the API key (sent as a Bearer token, never written)."),
        click.option("--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True,
                     help="Seconds to wait for one answer."),
        click.option("--max-retries", type=click.IntRange(min=0), default=5, show_default=True,
                     help="Retries per request on 429, 5xx, timeouts and dropped connections (exponential backoff)."),
    ]):
        f = option(f)
    return f


def _client(base_url: str, api_key_env: str, timeout: float, max_retries: int, concurrency: int):
    import os

    from malmungchi.eval.served import RetryPolicy, ServedClient

    return ServedClient(base_url, api_key=os.environ.get(api_key_env) or None, timeout=timeout,
                        retry=RetryPolicy(max_retries=max_retries), concurrency=concurrency)


def _check_backend(backend, model_path, base_url, served_model, device, dtype) -> None:
    from malmungchi.errors import UserError

    if backend == "local":
        if base_url or served_model:
            raise UserError("--base-url and --served-model need --backend openai")
        if model_path is None:
            raise UserError("give RUN_DIR_OR_MODEL to evaluate, or --backend openai --base-url URL "
                            "--served-model NAME for a served model")
        return
    if model_path is not None:
        raise UserError(f"{model_path}: --backend openai evaluates the model the server serves; leave out "
                        "RUN_DIR_OR_MODEL (serve it first, see README: serving a run)")
    if not base_url or not served_model:
        raise UserError("--backend openai needs --base-url (ending in /v1) and --served-model (the name the "
                        "server lists under /v1/models)")
    if device != "auto" or dtype != "auto":
        raise UserError("--device and --dtype choose where a local model runs; with --backend openai the server "
                        "decides: leave them out")


@eval_group.command()
@click.argument("model_path", metavar="[RUN_DIR_OR_MODEL]", type=click.Path(), required=False)
@click.option("--data", required=True, type=click.Path(),
              help="A build folder (its eval/test.jsonl) or a JSONL of gold records.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Results JSONL; rerunning with the same model and settings resumes it.")
@click.option("--backend", type=click.Choice(["local", "openai"]), default="local", show_default=True,
              help="local: load RUN_DIR_OR_MODEL here; openai: ask an OpenAI-compatible server (vLLM, SGLang, TGI).")
@click.option("--base-url", help=f"The server's URL, ending in /v1 {_SERVED_HELP}.")
@click.option("--served-model", help=f"The model name the server serves {_SERVED_HELP}.")
@_served_options(concurrency=16)
@click.option("--keep-special-tokens/--skip-special-tokens", default=True, show_default=True,
              help=f"Ask the server to keep special tokens in the text (skip_special_tokens: false) {_SERVED_HELP}.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Prompts per generate call (local); results written per fsync (both backends).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="0 decodes greedily; above 0 samples (with --top-p and --seed).")
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of --sample, and of sampled decoding (--temperature above 0).")
@click.option("--stop", "stops", multiple=True, help="Stop generating at this string (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N gold records.")
@_sample_options
@click.option("--drop-markers", is_flag=True, help=_DROP_MARKERS_HELP)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
              show_default=True, help="For a model folder (auto: float32 on CPU, bf16/fp16 on CUDA).")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True, help=_SHOW_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run(model_path, data, output, backend, base_url, served_model, concurrency, api_key_env, timeout, max_retries,
        keep_special_tokens, batch_size, max_new_tokens, temperature, top_p, seed, stops, limit, sample_size,
        stratify, drop_markers, device, dtype, show, as_json):
    """Generate answers for the gold prompts with a run folder or model folder (or a served model), then score
    them.

    Results are appended per batch and keyed by a fingerprint of the model, tokenizer and settings: after a
    crash or Ctrl-C, the same command resumes where it stopped.
    """
    from malmungchi.eval import report
    from malmungchi.eval.records import read_gold, resolve_gold_path
    from malmungchi.eval.run import build_mismatch, generation_settings, run_notes
    from malmungchi.eval.sample import check_options, sample_gold

    _check_backend(backend, model_path, base_url, served_model, device, dtype)
    check_options(sample_size, stratify, limit)
    err = console(stderr=True)
    mismatch = build_mismatch(model_path, data)
    if mismatch:
        err.print(mismatch)
    settings, text_stop = generation_settings(data, max_new_tokens=max_new_tokens, temperature=temperature,
                                              top_p=top_p, seed=seed, stops=stops)
    out_path = Path(output)
    gold_path = resolve_gold_path(data)
    gold_items, sample = sample_gold(read_gold(gold_path), gold_path, sample_size, seed, stratify)
    options = dict(gold_source=gold_path, batch_size=batch_size, limit=limit, sample=sample,
                   drop_markers=drop_markers)
    try:
        if backend == "local":
            outcome = _run_local(err, model_path, device, dtype, gold_items, out_path, settings, text_stop, options)
            title = f"exact match: {model_path} on {gold_path}"
        else:
            with _client(base_url, api_key_env, timeout, max_retries, concurrency) as client:
                outcome = _run_served(err, client, served_model, gold_items, out_path, settings, text_stop,
                                      concurrency, keep_special_tokens, options)
            title = f"exact match: {served_model} at {base_url} on {gold_path}"
    except KeyboardInterrupt:
        click.echo(f"interrupted: finished batches are in {out_path}; rerun the same command to resume", err=True)
        sys.exit(INTERRUPTED)
    for note in run_notes(outcome, out_path, max_new_tokens):
        err.print(note)
    if as_json:
        _json_out({**outcome.summary.as_dict(), "output": str(out_path)})
        return
    out = console()
    for part in report.run_report(outcome, title, show, out_path):
        out.print(part)


def _run_local(err, model_path, device, dtype, gold_items, out_path, settings, text_stop, options):
    from malmungchi.eval import report
    from malmungchi.eval.load import load
    from malmungchi.eval.run import TEXT_STOP_NOTE, evaluate

    # Text: a spinner's string is read as markup whatever the console says (a path with `[/v2]` in it crashed)
    with err.status(Text(f"loading {model_path}"), spinner="dots") if err.is_terminal else nullcontext():
        loaded = load(model_path, device=device, dtype=dtype)
    if text_stop:
        err.print(TEXT_STOP_NOTE)  # once the inputs and the model are known good: an error stays one line
    with report.GenerationProgress(err) as progress:
        return evaluate(model_path, loaded, gold_items, out_path, settings, on_start=progress.start,
                        on_progress=progress.advance, **options)


def _run_served(err, client, served_model, gold_items, out_path, settings, text_stop, concurrency,
                keep_special_tokens, options):
    from malmungchi.eval import report
    from malmungchi.eval.run import TEXT_STOP_NOTE, evaluate_plan
    from malmungchi.eval.served_run import served_plan

    limit, sample = options.pop("limit"), options.pop("sample")
    plan = served_plan(client, served_model, gold_items, out_path, settings, concurrency=concurrency,
                       keep_special_tokens=keep_special_tokens, **options)
    if text_stop:
        err.print(TEXT_STOP_NOTE)
    with report.GenerationProgress(err) as progress:
        return evaluate_plan(plan, gold_items, out_path, limit=limit, sample=sample, on_start=progress.start,
                             on_progress=progress.advance)


@eval_group.command()
@click.argument("results_a", metavar="R1.jsonl", type=click.Path())
@click.argument("results_b", metavar="R2.jsonl", type=click.Path())
@click.option("--resamples", type=click.IntRange(min=100), default=10_000, show_default=True,
              help="Paired bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed (results are reproducible).")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many flipped items to list each way (0: none).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON (every flipped id).")
@click.option("--plot", type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Also draw A and B per metric and B − A with its CI as a PNG here.")
def compare(results_a, results_b, resamples, seed, confidence, show, as_json, plot):
    """Compare two results files item by item: per-tier means, flipped items, and whether B really differs
    from A (exact McNemar test on em_normalized, paired bootstrap CI of each difference).

    When one file's ids are a subset of the other's (a --sample against the full set), also whether the gap
    between their means is inside what sampling explains; when they overlap only partly, the non-shared items
    compared unpaired."""
    from malmungchi.eval import report
    from malmungchi.eval.compare import compare as do_compare

    if plot and (not plot.lower().endswith(".png") or not os.path.isdir(os.path.dirname(plot) or ".")):
        fail(f"--plot {plot}: give a .png file in a folder that exists")
    c = do_compare(results_a, results_b, resamples=resamples, seed=seed, confidence=confidence)
    err = console(stderr=True)
    for w in c.warnings:
        err.print(f"warning: {w}")
    if plot:
        from malmungchi.eval.compare_plot import write_compare_plot

        write_compare_plot(c, Path(plot))
        err.print(f"plot: {plot}")
    if as_json:
        _json_out(c.as_dict())
        return
    out = console()
    out.print(report.compare_table(c))
    out.print(report.verdict(c))
    for line in (report.sample_verdict(c), report.unpaired_verdict(c)):
        if line:
            out.print(line)
    if show and (c.fixed or c.broken):
        out.print(report.flips_table(c, show))


@eval_group.command(name="judge")
@click.option("-p", "--predictions", required=True, type=click.Path(),
              help='An `eval run` results file or any JSONL of {"id", "prediction"}.')
@click.option("-g", "--gold", required=True, type=click.Path(),
              help='JSONL of {"id", "prompt", "answer"} (or "messages"), or a build folder.')
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="One verdict line per gold item; rerunning resumes it (asks only what has no verdict).")
@click.option("--base-url", required=True, help="The judge server's URL, ending in /v1 (https://api.openai.com/v1).")
@click.option("--judge-model", required=True, help="The judge model's name on that server.")
@_served_options(concurrency=40)
@click.option("--rubric", type=click.Path(dir_okay=False),
              help="A rubric file with {question}, {reference}, {prediction} (and {scale}); default: a Korean one.")
@click.option("--scale", type=click.Choice(["binary", "10"]), default="binary", show_default=True,
              help="binary: score 0/1; 10: an integer 1-10.")
@click.option("--pass-score", type=click.IntRange(1, 10), default=7, show_default=True,
              help="On --scale 10, the score from which an answer counts as right next to exact match.")
@click.option("--max-tokens", type=click.IntRange(min=16), default=512, show_default=True,
              help="The judge's answer length limit.")
@click.option("--price-input", type=click.FloatRange(min=0), help="USD per 1M input tokens (for the cost estimate).")
@click.option("--price-output", type=click.FloatRange(min=0), help="USD per 1M output tokens.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Verdicts written per fsync.")
@click.option("--drop-markers", is_flag=True, help=_DROP_MARKERS_HELP + " (for the exact-match side)")
@_sample_options
@click.option("--seed", type=int, default=0, show_default=True, help=_SEED_HELP)
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the strongest judge/EM disagreements to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def judge_command(predictions, gold, output, base_url, judge_model, concurrency, api_key_env, timeout, max_retries,
                  rubric, scale, pass_score, max_tokens, price_input, price_output, batch_size, drop_markers,
                  sample_size, stratify, seed, show, as_json):
    """Grade predictions with an LLM judge over an OpenAI-compatible API, and compare it with exact match.

    Prints the judge's accuracy with a Wilson 95% CI (on --scale 10 also the mean score, with a bootstrap one),
    its agreement with each exact-match tier (2x2 table, Cohen's kappa), the items where they disagree most, token usage and a cost estimate. Items without a valid
    verdict get score null with the error and are left out of the accuracy; rerun to ask them again.
    """
    from malmungchi.eval import judge_report, report
    from malmungchi.eval.judge import JudgeSettings, Rubric, judge
    from malmungchi.eval.normalize import Normalizer
    from malmungchi.eval.records import check_overlap, read_gold, read_predictions
    from malmungchi.eval.sample import sample_gold

    all_gold = read_gold(gold)
    gold_items, sample = sample_gold(all_gold, gold, sample_size, seed, stratify)
    preds = read_predictions(predictions)
    check_overlap(preds, {g.key for g in all_gold}, predictions, gold)
    settings = JudgeSettings(judge_model, Rubric.load(rubric, scale), max_tokens=max_tokens, pass_score=pass_score)
    out_path = Path(output)
    err = console(stderr=True)
    try:
        with _client(base_url, api_key_env, timeout, max_retries, concurrency) as client, \
                report.GenerationProgress(err) as progress:
            outcome = judge(client, settings, gold_items, preds, out_path, normalizer=Normalizer(drop_markers=drop_markers),
                            concurrency=concurrency, batch_size=batch_size, show=show,
                            prices=(price_input, price_output), sample=sample, on_start=progress.start,
                            on_progress=progress.advance)
    except KeyboardInterrupt:
        click.echo(f"interrupted: finished verdicts are in {out_path}; rerun the same command to resume", err=True)
        sys.exit(INTERRUPTED)
    s = outcome.summary
    if s["n_failed"]:
        err.print(f"warning: {s['n_failed']} item(s) got no valid verdict (score null, left out of the accuracy); "
                  f"last error: {s['last_error']}; rerun to ask them again")
    if as_json:
        _json_out(s)
        return
    out = console()
    out.print(judge_report.summary_table(s))
    out.print(judge_report.agreement_table(s))
    if show and s["disagreements"]:
        out.print(judge_report.disagreements_table(s))
    out.print(f"verdicts: {out_path}")


@eval_group.command(name="export")
@click.argument("build_dir", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["lm-eval"]), default="lm-eval", show_default=True,
              help="lm-eval: an lm-evaluation-harness task YAML and its scoring hook (utils.py).")
@click.option("--out", "-o", "out", required=True, type=click.Path(), help="Folder to write the task into.")
@click.option("--task", "task", help="The task's name (default: malmungchi_ and the build folder's name).")
@click.option("--force", is_flag=True, help="Replace the task's files in an existing --out folder.")
def export_command(build_dir, fmt, out, task, force):
    """Write BUILD_DIR's eval/test.jsonl as an lm-eval `generate_until` task scored with malmungchi's exact-match
    tiers (run it with `lm_eval --tasks TASK --include_path OUT`)."""
    from malmungchi.atomic import write_text
    from malmungchi.contracts.build import BuildPaths
    from malmungchi.eval.lmeval import task_files, task_name

    paths = BuildPaths(Path(build_dir))
    if not paths.eval_items.is_file():
        fail(f"{paths.eval_items}: missing (is {build_dir} a build directory? run `malmungchi corpus build`)")
    try:
        manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"{paths.manifest}: cannot read: {exc}")
    task = task or task_name(build_dir)
    files = task_files(build_dir, manifest, task)
    out_p = Path(out)
    there = [name for name in files if (out_p / name).exists()]
    if there and not force:
        fail(f"{out_p / there[0]} already exists; pass --force to replace it")
    out_p.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_text(out_p / name, text)  # each file written to a temporary name, then renamed
    console().print(styled("wrote", "green", f" lm-eval task {task} for {paths.eval_items} ({manifest.get('mode')} "
                                             "mode): " + ", ".join(str(out_p / n) for n in files)))
