"""`eval run`: generate answers for the gold prompts with a model, score them and keep a resumable results log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from malmungchi.contracts.build import build_mode
from malmungchi.eval import fingerprint as fp
from malmungchi.eval.generate import (
    STOP_ERROR,
    STOP_LENGTH,
    Generation,
    GenerationSettings,
    encode,
    end_marker_texts,
    ensure_pad_token,
    generate_all,
    input_sha,
    render_prompt,
    stop_token_ids,
)
from malmungchi.eval.load import LoadedModel
from malmungchi.eval.normalize import Normalizer
from malmungchi.eval.records import EvalInputError, GoldItem
from malmungchi.eval.results import Appender, load_for_resume, rewrite_in_order
from malmungchi.eval.sample import Sample
from malmungchi.eval.score import Scored, Summary, summarize

# warn when at least this share of the generated items ran into --max-new-tokens
LENGTH_WARN_SHARE = 0.1
TEXT_STOP_NOTE = "note: text-mode build: generation stops at a line break (give --stop to change this)"


@dataclass
class RunOutcome:
    scored: list[Scored]  # the selected gold items, in gold order
    summary: Summary
    fingerprint: str
    resumed: int
    generated: int
    stale: int
    truncated_tail: bool
    stop_reasons: dict[str, int] = field(default_factory=dict)  # of the selected items
    normalizer: Normalizer = field(default_factory=Normalizer)

    @property
    def length_limited(self) -> int:
        return self.stop_reasons.get(STOP_LENGTH, 0)

    @property
    def rejected(self) -> list[Scored]:
        """The items the server rejected or failed on (stop_reason "error": no prediction, scored wrong)."""
        return [s for s in self.scored if s.extra.get("stop_reason") == STOP_ERROR]


@dataclass
class Prepared:
    texts: list[str]
    templated: list[bool]
    shas: dict[str, str]


def prepare_prompts(tokenizer, gold: Sequence[GoldItem], source: Path | str) -> Prepared:
    """Render every gold record to the text the model sees (chat template for `messages`), all problems at once."""
    texts, templated, shas, problems = [], [], {}, []
    for item in gold:
        try:
            text, is_chat = render_prompt(tokenizer, item.prompt, item.messages, item.answers)
        except ValueError as err:
            problems.append(f"{source}:{item.line}: {err}")
            text, is_chat = "", False
        texts.append(text)
        templated.append(is_chat)
        shas[item.key] = input_sha(text, is_chat)
    if problems:
        raise EvalInputError(*problems[:20], *([f"... and {len(problems) - 20} more"] if len(problems) > 20 else []))
    return Prepared(texts, templated, shas)


def generation_settings(data: str | Path, *, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                        seed: int = 0, stops: Sequence[str] = ()) -> tuple[GenerationSettings, bool]:
    """The settings `eval run` generates with for the gold in `data`, and whether the stop at a line break was
    chosen for it: without --stop, a text-mode build's answer is one dialogue turn, which ends at the line break
    where the next speaker begins (say so with TEXT_STOP_NOTE once the inputs and the model are known good)."""
    if any(not s for s in stops):
        raise EvalInputError("--stop: an empty stop string would stop at once; give a non-empty string")
    text_stop = not stops and build_mode(data) == "text"
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                                  stop_strings=("\n",) if text_stop else tuple(stops))
    return settings, text_stop


def build_mismatch(model_path: str | Path | None, data: str | Path) -> str | None:
    """A warning when a run folder is evaluated on a build folder it was not trained on in another mode (its
    prompts are not what the model learned to answer: a chat run on a text build, say), a note when only the build
    differs (evaluating on another build can be meant); None otherwise or when either is not such a folder."""
    import json

    from malmungchi.contracts.build import BuildPaths
    from malmungchi.contracts.run import RunPaths

    if model_path is None or not RunPaths(Path(model_path)).manifest.is_file():
        return None
    root = Path(data)
    if root.is_file() and root.parent.name == "eval":  # a build's eval/test.jsonl given itself
        root = root.parent.parent
    manifest = BuildPaths(root).manifest
    try:
        run = json.loads(RunPaths(Path(model_path)).manifest.read_text(encoding="utf-8"))
        build = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else None
    except (OSError, ValueError):
        return None
    trained = run.get("build") if isinstance(run, dict) else None
    if not isinstance(trained, dict) or not isinstance(build, dict) or not trained.get("content_hash"):
        return None
    if trained.get("content_hash") == build.get("content_hash"):
        return None
    was, now = trained.get("mode"), build.get("mode")
    where = f"{model_path} was trained on the {f'{was}-mode ' if was else ''}build {str(trained['content_hash'])[:12]}"
    if trained.get("path"):
        where += f" ({trained['path']})"
    if was and now and was != now:
        return (f"warning: {where}; {data} is a {now}-mode build: its prompts are not what the model learned to "
                "answer (give --data the run's build)")
    other = str(build.get("content_hash", ""))[:12]
    return f"note: {where}; {data} is another build ({other}): scored on its test items"


def run_fingerprint(loaded: LoadedModel, settings: GenerationSettings, stop_ids: Sequence[int],
                    output: Path) -> str:
    files = fp.files_identity(loaded.identity_paths, loaded.path, exclude=[output])
    return fp.fingerprint(files=files, config=fp.model_config_identity(loaded.model), dtype=loaded.dtype,
                          settings=settings, stop_ids=stop_ids)


# a backend's generator: generate for the gold indices given, calling `write(indices, generations)` per batch;
# `retried` holds those whose last answer was an error (a served backend does not count them toward its stop)
Write = Callable[[list[int], list[Generation]], None]
Generate = Callable[[list[int], Write, frozenset[int]], None]


@dataclass
class RunPlan:
    """What a backend (local `model.generate`, or a served model: `eval.served_run`) hands the shared resume loop."""
    fingerprint: str
    shas: dict[str, str]  # id key → hash of the item's input as the backend sends it
    normalizer: Normalizer
    generate: Generate


@dataclass
class _LocalGenerator:
    model: object
    tokenizer: object
    prepared: Prepared
    gold: Sequence[GoldItem]
    gold_source: Path | str
    settings: GenerationSettings
    batch_size: int
    stop_ids: list[int]

    def __call__(self, todo: list[int], write: Write, retried: frozenset[int] = frozenset()) -> None:
        texts = [self.prepared.texts[i] for i in todo]
        ids = encode(self.tokenizer, texts, [self.prepared.templated[i] for i in todo])
        empty = [f"{self.gold_source}:{self.gold[todo[j]].line}: empty prompt (no tokens to generate from)"
                 for j, row in enumerate(ids) if not row]
        if empty:
            raise EvalInputError(*empty[:20])
        generate_all(self.model, self.tokenizer, ids, self.settings, batch_size=self.batch_size,
                     on_batch=lambda batch, gens: write([todo[j] for j in batch], gens), stop_ids=self.stop_ids)


def local_plan(loaded: LoadedModel, gold: Sequence[GoldItem], output: Path, settings: GenerationSettings, *,
               gold_source: Path | str = "gold", batch_size: int = 16, drop_markers: bool = False) -> RunPlan:
    """The local backend: the model loaded here, batched `generate`, its tokenizer's stop tokens."""
    model, tokenizer = loaded.model, loaded.tokenizer
    ensure_pad_token(tokenizer)
    stop_ids = stop_token_ids(tokenizer, model)
    normalizer = Normalizer(end_markers=end_marker_texts(tokenizer, stop_ids), drop_markers=drop_markers)
    prepared = prepare_prompts(tokenizer, gold, gold_source)
    generator = _LocalGenerator(model, tokenizer, prepared, gold, gold_source, settings, batch_size, stop_ids)
    return RunPlan(run_fingerprint(loaded, settings, stop_ids, output), prepared.shas, normalizer, generator)


def run_eval(loaded: LoadedModel, gold: Sequence[GoldItem], output: Path, settings: GenerationSettings, *,
             gold_source: Path | str = "gold", batch_size: int = 16, limit: int | None = None,
             sample: Sample | None = None, drop_markers: bool = False,
             on_start: Callable[[int, int], None] | None = None,
             on_progress: Callable[[int], None] | None = None) -> RunOutcome:
    """`run_plan` with the local backend."""
    plan = local_plan(loaded, gold, output, settings, gold_source=gold_source, batch_size=batch_size,
                      drop_markers=drop_markers)
    return run_plan(plan, gold, output, limit=limit, sample=sample, on_start=on_start, on_progress=on_progress)


def run_plan(plan: RunPlan, gold: Sequence[GoldItem], output: Path, *, limit: int | None = None,
             sample: Sample | None = None, on_start: Callable[[int, int], None] | None = None,
             on_progress: Callable[[int], None] | None = None) -> RunOutcome:
    """Generate for the selected gold items not already in `output` under the same fingerprint, appending
    each batch as it finishes; then rewrite `output` in gold order with fresh scores and summarize. The same for
    every backend: this is what makes a results file resumable and hold each id exactly once.

    `gold` is what to evaluate: with `--sample` the sampled items already (`eval.sample.sample_gold`), and
    `sample` the draw, which the fingerprint and the summary record.

    An item the server rejected or failed on (a served backend's `STOP_ERROR` line: no prediction, so scored
    wrong, and the server's message in `error`) is a result of this run, and is asked again by the next one.

    `on_start(total, already_done)` is called once before generating, `on_progress(n)` after each batch."""
    normalizer, fingerprint = plan.normalizer, fp.with_sample(plan.fingerprint, sample)
    state = load_for_resume(output, fingerprint, plan.shas, reusable=lambda obj: obj.get("stop_reason") != STOP_ERROR)

    selected = list(range(len(gold) if limit is None else min(limit, len(gold))))
    todo = [i for i in selected if gold[i].key not in state.done]
    if on_start is not None:
        on_start(len(selected), len(selected) - len(todo))
    lines = dict(state.done)
    if todo:
        with Appender(output) as log:
            def write(batch: list[int], gens: list[Generation]) -> None:
                out = []
                for i, g in zip(batch, gens):
                    item = gold[i]
                    prediction = None if g.error is not None else g.text
                    scored = Scored(item, prediction, normalizer.score(prediction, item.answers),
                                    _extra(g.stop_reason, g.new_tokens, fingerprint, plan.shas[item.key], g.error))
                    out.append(scored.line())
                log.write_batch(out)
                for obj, i in zip(out, batch):
                    lines[gold[i].key] = obj
                if on_progress is not None:
                    on_progress(len(batch))

            plan.generate(todo, write, frozenset(i for i in todo if gold[i].key in state.redo))

    # final form: every line for this fingerprint in gold order, rescored (the gold answers may have changed)
    final: list[Scored] = []
    for item in gold:
        obj = lines.get(item.key)
        if obj is not None:
            extra = _extra(obj.get("stop_reason"), obj.get("new_tokens"), fingerprint, obj.get("input_sha"),
                           obj.get("error"))
            final.append(Scored(item, obj["prediction"], normalizer.score(obj["prediction"], item.answers), extra))
    rewrite_in_order(output, [s.line() for s in final])

    by_key = {s.gold.key: s for s in final}
    chosen = [by_key[gold[i].key] for i in selected]
    summary = summarize(chosen, normalizer)
    reasons = Counter(s.extra.get("stop_reason") for s in chosen)
    summary.extra = {"stop_reasons": dict(sorted(reasons.items())), "n_errors": reasons.get(STOP_ERROR, 0),
                     "fingerprint": fingerprint, "generated": len(todo), "resumed": len(selected) - len(todo)}
    if sample is not None:
        summary.extra["sample"] = sample.as_dict()
    return RunOutcome(chosen, summary, fingerprint, len(selected) - len(todo), len(todo), state.stale,
                      state.truncated_tail, dict(reasons), normalizer)



def evaluate(model_name: str | Path, loaded: LoadedModel, gold: Sequence[GoldItem], output: Path,
             settings: GenerationSettings, **options) -> RunOutcome:
    """`run_eval` for `eval run`: a model that cannot generate (ValueError) or an output that cannot be written is
    an EvalInputError naming the model or the file. `options` are run_eval's."""
    try:
        return run_eval(loaded, gold, output, settings, **options)
    except ValueError as err:
        raise EvalInputError(f"{model_name}: {err}") from None
    except OSError as err:
        raise EvalInputError(f"{err.filename or output}: {err.strerror}") from None


def evaluate_plan(plan: RunPlan, gold: Sequence[GoldItem], output: Path, **options) -> RunOutcome:
    """`run_plan` for `eval run --backend openai`: an output that cannot be written is an EvalInputError naming
    the file. `options` are run_plan's."""
    try:
        return run_plan(plan, gold, output, **options)
    except OSError as err:
        raise EvalInputError(f"{err.filename or output}: {err.strerror}") from None


def run_notes(outcome: RunOutcome, output: Path, max_new_tokens: int) -> list[str]:
    """What `eval run` tells after a run: resumed items, lines dropped as stale or half-written, and a warning when
    many answers ran into --max-new-tokens."""
    notes = []
    if outcome.resumed:
        notes.append(f"resuming {output}: {outcome.resumed} of {outcome.summary.n_total} items already done")
    if outcome.stale:
        notes.append(f"note: dropped {outcome.stale} line(s) of {output} written with another model, settings, "
                     "prompt or --sample (fingerprint changed); they were regenerated")
    if outcome.truncated_tail:
        notes.append(f"note: {output} ended in a half-written line from an interrupted run; it was discarded")
    rejected = outcome.rejected
    if rejected:
        first = rejected[0]
        notes.append(f"warning: the server rejected or failed {len(rejected)} item(s) (stop_reason error, no "
                     f"prediction, scored wrong), first {first.gold.id!r}: {first.extra.get('error')}; a rerun asks "
                     "them again")
    n = outcome.summary.n_total
    if n and outcome.length_limited / n >= LENGTH_WARN_SHARE:
        notes.append(f"warning: {outcome.length_limited} of {n} items ({outcome.length_limited / n:.0%}) stopped at "
                     f"--max-new-tokens {max_new_tokens} without an end token; raise it, add --stop, or check that "
                     "the model learned to end its answers")
    return notes


def _extra(stop_reason, new_tokens, fingerprint: str, sha, error=None) -> dict:
    return {"stop_reason": stop_reason, "new_tokens": new_tokens, "error": error, "fingerprint": fingerprint,
            "input_sha": sha}
