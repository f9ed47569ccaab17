"""The quick start: lint → build → train → eval on the bundled sample, with a tokenizer trained from the sample
and a tiny model created from a config. Offline, CPU, a few minutes.

Every stage calls the library its command calls (`corpus.lint`, `prep` plan and write, `train.runner`,
`eval.run`) and prints what that command prints; the build also takes the memorisation pairs from the train
split. The summary reads what the stages wrote. `malmungchi quickstart` is `run`, `print_summary` and
`check_learned`.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from malmungchi.contracts.build import BuildPaths
from malmungchi.contracts.run import RunPaths
from malmungchi.errors import UserError

MARKER_FILE = ".malmungchi-quickstart"
SPARKS = "▁▂▃▄▅▆▇█"
EVAL_MAX_NEW_TOKENS = 48
MEMORIZED = "eval/memorized.jsonl"  # the prompt → answer pairs from the train split, under --out


class QuickstartError(UserError):
    """A user-facing problem of this stage (see `malmungchi.errors.UserError`)."""


@dataclass
class Settings:
    out: Path
    steps: int = 100
    max_length: int = 256
    memorize: int = 24  # eval pairs taken from the train split
    lr: float = 3e-3
    lora_r: int = 64
    lora_alpha: int = 64  # scale 1: a random tiny base diverges with the usual alpha = 2r at this learning rate
    vocab_size: int = 1500
    mode: str = "chat"
    splits: tuple[float, float, float] = (0.25, 0.05, 0.70)  # a small train split a tiny model can memorise
    train_embeddings: str = "full"
    hidden_size: int = 192  # a multiple of 64, so the model also fits bitsandbytes' 4-bit CPU path (--quant 4bit)
    layers: int = 2
    seed: int = 0


@dataclass
class Results:
    timings: dict[str, float] = field(default_factory=dict)
    lint_problems: int = 0
    lint_files: int = 0
    build: dict = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    em: dict[str, dict[str, float]] = field(default_factory=dict)


def sample_dir() -> Path:
    return Path(str(resources.files("malmungchi") / "data" / "sample"))


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise QuickstartError(f"--out {out} is a file; choose a folder")
    if out.exists():
        if not (out / MARKER_FILE).exists() and any(out.iterdir()):
            raise QuickstartError(f"{out} exists and was not made by the quick start; choose another --out")
        if not force and (out / MARKER_FILE).exists():
            shutil.rmtree(out)  # a previous quick start: start over
        elif force:
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER_FILE).write_text("made by `malmungchi quickstart`; safe to delete\n", encoding="utf-8")


def _stage(console: Console, n: int, title: str, command: str) -> None:
    console.print()
    console.rule(Text(f"{n}/5 {title}", style="bold"))
    console.print(Text(f"$ {command}", style="dim"))  # a path in it is text, not markup


def run(settings: Settings, console: Console, *, force: bool = False, err: Console | None = None) -> Results:
    """Run the five stages into `settings.out`, printing each stage's report on `console` and its notes and
    progress on `err` (stderr by default), as the stage's command would. A stage's error is a QuickstartError that
    also says which stage failed."""
    from transformers.utils import logging as hf_logging

    err = err or Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

    hf_logging.disable_progress_bar()  # each stage prints its own report; no stray shard-writing bars
    res = Results()
    out = settings.out
    prepare_out(out, force)
    corpus = out / "corpus"
    shutil.copytree(sample_dir(), corpus, ignore=shutil.ignore_patterns("README.md"))
    # the config file every stage finds walking up from its inputs: checkpoint and evaluate once, at the end
    (out / "malmungchi.toml").write_text(
        "# written by `malmungchi quickstart`\n[train.args]\n"
        f"save_steps = {settings.steps}\neval_steps = {settings.steps}\nlogging_steps = 10\n", encoding="utf-8")

    # 1. lint -------------------------------------------------------------------------------------------------
    t = time.perf_counter()
    _stage(console, 1, "lint the sample corpus", f"malmungchi corpus lint {corpus}")
    from malmungchi.corpus.lint import lint_paths
    from malmungchi.corpus.report import print_rich, summary
    from malmungchi.schemas.registry import default_registry

    registry = default_registry()
    run_ = lint_paths([str(corpus)], registry)
    print_rich(console, run_.diagnostics)
    console.print(summary(run_.diagnostics))
    res.lint_problems, res.lint_files = len(run_.diagnostics), len(run_.files)
    if any(d.severity.value == "error" for d in run_.diagnostics):
        raise QuickstartError("the sample corpus has lint errors; the installation looks damaged")
    res.timings["lint"] = time.perf_counter() - t

    # 2. tokenizer, tiny base model, build ----------------------------------------------------------------------
    t = time.perf_counter()
    _stage(console, 2, "build: tokenizer, tiny model, dataset",
           f"malmungchi corpus build {corpus} --tokenizer {out / 'tokenizer'} --out {out / 'build'} "
           f"--max-length {settings.max_length}")
    from malmungchi.quickstart.tokenizer import train_tokenizer
    from malmungchi.train.tiny import make_tiny_model

    texts = [p.read_text(encoding="utf-8") for p in sorted(corpus.glob("*.txt"))]
    tokenizer = train_tokenizer(texts, out / "tokenizer", vocab_size=settings.vocab_size)
    console.print(f"trained a byte-level BPE tokenizer on the sample: {len(tokenizer)} tokens → {out / 'tokenizer'}")
    make_tiny_model(out / "base-model", tokenizer, seed=settings.seed, hidden_size=settings.hidden_size,
                    layers=settings.layers, heads=4, kv_heads=2, intermediate_size=settings.hidden_size * 2,
                    max_position_embeddings=max(512, settings.max_length))
    console.print(f"created a tiny Llama-style model with random weights from a config → {out / 'base-model'} "
                  f"(hidden {settings.hidden_size}, {settings.layers} layers)")
    res.build = _build(corpus, out, settings, registry, console)
    res.timings["build"] = time.perf_counter() - t

    # 3. exact match before training ------------------------------------------------------------------------------
    t = time.perf_counter()
    memorized = out / MEMORIZED
    _stage(console, 3, "exact match before training (untrained baseline)",
           f"malmungchi eval run {out / 'base-model'} --data {memorized} --output {out / 'eval' / 'before.jsonl'}")
    _evaluate_stage("before", out / "base-model", out, res, console, err)
    res.timings["eval before"] = time.perf_counter() - t

    # 4. train --------------------------------------------------------------------------------------------------
    t = time.perf_counter()
    options = {"model": str(out / "base-model"), "out": str(out / "run"), "quant": "none", "max_steps": settings.steps,
               "lr": settings.lr, "batch_size": 4, "lora_r": settings.lora_r, "lora_alpha": settings.lora_alpha,
               "seed": settings.seed, "train_embeddings": settings.train_embeddings}
    _stage(console, 4, "QLoRA-style fine-tuning (LoRA + new marker tokens) on the CPU",
           f"malmungchi train run {out / 'build'} {_flags(options)}")
    try:
        _train(out / "build", options, console, err)
    except UserError as e:
        raise QuickstartError(*e.lines, f"train run failed with exit code {e.exit_code}") from None
    res.losses = _losses(RunPaths(out / "run").metrics)
    res.timings["train"] = time.perf_counter() - t

    # 5. exact match after training -------------------------------------------------------------------------------
    t = time.perf_counter()
    _stage(console, 5, "exact match after training",
           f"malmungchi eval run {out / 'run'} --data {memorized} --output {out / 'eval' / 'after-memorized.jsonl'}")
    _evaluate_stage("after", out / "run", out, res, console, err)
    res.timings["eval after"] = time.perf_counter() - t
    return res


def _build(corpus: Path, out: Path, settings: Settings, registry, console: Console) -> dict:
    from malmungchi.prep.build import plan
    from malmungchi.prep.evalset import chat_items, text_items
    from malmungchi.prep.stats import render, report
    from malmungchi.prep.write import write_build
    from malmungchi.schemas.config import BuildConfig

    cfg = BuildConfig(tokenizer=str(out / "tokenizer"), mode=settings.mode, max_length=settings.max_length,
                      eval_context=64, seed=settings.seed,
                      splits=dict(zip(("train", "validation", "test"), settings.splits)))
    p = plan([str(corpus)], cfg, registry)
    manifest = write_build(p, out / "build")
    rep = report(p)
    render(rep, console)
    console.print(Text.assemble(("built", "green"), f" {out / 'build'} (content hash "
                                                    f"{manifest['content_hash'][:16]}…)"))
    # memorisation pairs: eval items from the train split, shortest answers first so a tiny model can get there
    items = list((chat_items if cfg.mode == "chat" else text_items)(p.splits["train"], p.tokenizer, cfg.eval_context))
    items.sort(key=lambda it: (len(it["answer"]), it["id"]))
    chosen = sorted(items[: settings.memorize], key=lambda it: it["id"])
    path = out / MEMORIZED
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in chosen), encoding="utf-8")
    console.print(f"{len(chosen)} prompt → answer pairs from the train split for the memorisation check → {path}")
    splits = manifest.get("splits", {})
    return {"tokens": sum(s.get("tokens", 0) for s in splits.values()), "rows": sum(s.get("rows", 0) for s in splits.values()),
            "packing": rep.get("packing", {}).get("efficiency"), "added_tokens": len(manifest.get("tokenizer", {}).get("added_tokens", {})),
            "test_items": sum(1 for _ in open(BuildPaths(out / "build").eval_items, encoding="utf-8"))}


def _flags(options: dict) -> str:
    """`options` (TrainConfig fields) as the `train run` flags that set them."""
    from malmungchi.train.settings import BY_FIELD

    return " ".join(f"{BY_FIELD[name].option} {value}" for name, value in options.items())


def _train(build: Path, options: dict, console: Console, err: Console) -> None:
    """`malmungchi train run BUILD` with `options`: the config file found from the build, the options on top."""
    from malmungchi.schemas.config import load_config
    from malmungchi.train.runner import finished_line, resolve, sft_config, train

    cfg = load_config(build).train.with_options(options)
    plan = resolve(build, cfg)
    sft_config(plan)
    outcome = train(plan, console=err)
    console.print(finished_line(outcome.manifest, plan.out))


def _evaluate_stage(when: str, model: Path, out: Path, res: Results, console: Console, err: Console) -> None:
    """Exact match of `model` on the memorisation pairs and on the build's test pairs, into `res.em[when]`."""
    for name, data in (("memorized", out / MEMORIZED), ("test", out / "build")):
        output = out / "eval" / f"{when}-{name}.jsonl"
        show = 3 if when == "after" and name == "memorized" else 0
        try:
            _evaluate(str(model), str(data), output, show, console, err)
        except UserError as e:
            raise QuickstartError(*e.lines, f"eval run ({when}, {name}) failed with exit code {e.exit_code}") \
                from None
        res.em.setdefault(when, {})[name] = _mean_em(output)


def _evaluate(model: str, data: str, output: Path, show: int, console: Console, err: Console) -> None:
    """`malmungchi eval run MODEL --data DATA --output OUTPUT --show SHOW --max-new-tokens 48`."""
    from malmungchi.eval import report
    from malmungchi.eval.load import load
    from malmungchi.eval.records import read_gold, resolve_gold_path
    from malmungchi.eval.run import TEXT_STOP_NOTE, evaluate, generation_settings, run_notes

    settings, text_stop = generation_settings(data, max_new_tokens=EVAL_MAX_NEW_TOKENS)
    gold_path = resolve_gold_path(data)
    gold = read_gold(gold_path)
    with err.status(Text(f"loading {model}"), spinner="dots") if err.is_terminal else nullcontext():
        loaded = load(model)
    if text_stop:
        err.print(TEXT_STOP_NOTE)
    with report.GenerationProgress(err) as progress:
        outcome = evaluate(model, loaded, gold, output, settings, gold_source=gold_path, on_start=progress.start,
                           on_progress=progress.advance)
    for note in run_notes(outcome, output, settings.max_new_tokens):
        err.print(note)
    for part in report.run_report(outcome, f"exact match: {model} on {gold_path}", show, output):
        console.print(part)


def _mean_em(path: Path) -> float:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sum(r["em_normalized"] for r in rows) / len(rows) if rows else 0.0


def _losses(metrics: Path) -> list[float]:
    data = json.loads(metrics.read_text(encoding="utf-8"))
    curve = data.get("loss_curve") or data.get("log_history") or []
    return [float(p["loss"]) for p in curve if isinstance(p, dict) and "loss" in p]


def sparkline(values: list[float], width: int = 60) -> str:
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [values[int(i * step)] for i in range(width)]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - lo) / span * (len(SPARKS) - 1)))] for v in values)


def print_summary(res: Results, settings: Settings, console: Console) -> None:
    table = Table(title="quick start summary", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("lint", f"{res.lint_files} files, {res.lint_problems} problems")
    b = res.build
    packing = f"{b['packing']:.1%}" if isinstance(b.get("packing"), (int, float)) else "?"
    table.add_row("build", f"{b.get('tokens', 0):,} tokens in {b.get('rows', 0)} packed rows (packing {packing}), "
                           f"{b.get('added_tokens', 0)} marker tokens added, {b.get('test_items', 0)} test pairs")
    if res.losses:
        plot = RunPaths(Path(settings.out) / "run").loss_plot
        table.add_row("loss", f"{res.losses[0]:.2f} → {res.losses[-1]:.2f}  {sparkline(res.losses)}"
                      + (f"  (plot: {plot})" if plot.is_file() else ""))
    for name in ("memorized", "test"):
        before, after = res.em.get("before", {}).get(name), res.em.get("after", {}).get(name)
        if before is not None and after is not None:
            label = "exact match, memorised train pairs" if name == "memorized" else "exact match, held-out test pairs"
            table.add_row(label, Text.assemble(f"{before:.0%} before → ", (f"{after:.0%}", "bold"),
                                               " after training (em_normalized)"))
    total = sum(res.timings.values())
    table.add_row("time", ", ".join(f"{k} {v:.0f}s" for k, v in res.timings.items()) + f"; total {total:.0f}s")
    console.print()
    console.print(table)
    console.print(Panel(
        f"A demonstration on a tiny model ({settings.hidden_size}-wide, {settings.layers} layers, random start) and a "
        "tokenizer trained on the sample: it shows the pipeline learning the training pairs, not a useful model. "
        "Held-out exact match stays near zero at this size. Everything it wrote is in "
        f"{settings.out}; for a real run see README.md (Train).", title="what this shows", border_style="dim"),
        soft_wrap=False)


def check_learned(res: Results) -> None:
    before = res.em.get("before", {}).get("memorized", 0.0)
    after = res.em.get("after", {}).get("memorized", 0.0)
    if after <= before:
        raise QuickstartError(f"exact match on the memorised pairs did not rise ({before:.0%} → {after:.0%})")
