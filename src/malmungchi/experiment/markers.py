"""`experiment markers`: every marker policy built from one corpus with one split, trained from one base with the
same settings and budget, evaluated on the same items, compared pair by pair.

Layout of EXP_DIR (each stage its own folder, finished when its `stage.json` holds its fingerprint; a rerun
skips a stage whose fingerprint matches and redoes one that is missing, different or was interrupted):

    experiment.json          the settings
    tokenizer/, base/        a tokenizer trained on the inputs (--tokenizer train), a tiny model (--model tiny)
    builds/POLICY/           `corpus build` of the inputs under POLICY (whole documents split by identity)
    runs/POLICY-sSEED/       `train run` of that build
    results/POLICY-sSEED/    generations (eval run's resumable results file) and scores.json
    report.json, report.md, loss.png, bpc.png

Library code: returns values and raises `UserError`; the CLI prints (`progress` is called per stage).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from malmungchi.errors import UserError
from malmungchi.experiment.arms import ARMS, policy_settings
from malmungchi.experiment.scoring import STAGE_FILE

MIN_TEST_UNITS = 10  # fewer test documents than this: split by pieces of documents (the same for every policy)


class ExperimentError(UserError):
    """A problem with the experiment's options or its folder."""


@dataclass
class Settings:
    """Everything that decides an experiment's results (recorded in experiment.json)."""

    inputs: list[str]
    out: str
    tokenizer: str = "train"  # a tokenizer folder, or "train": a byte-level BPE trained on the inputs
    model: str = "tiny"  # a base model folder, or "tiny": a from-scratch Llama-style model (random weights)
    policies: tuple[str, ...] = ARMS
    chat: bool = False
    seeds: tuple[int, ...] = (0,)
    max_steps: int | None = 200
    epochs: float | None = None
    max_length: int = 256
    lr: float = 3e-3
    batch_size: int = 8
    lora_r: int = 64
    lora_alpha: int = 64
    train_embeddings: str = "full"
    quant: str = "none"
    vocab_size: int = 2000  # --tokenizer train
    hidden_size: int = 128  # --model tiny (a multiple of 64: 4-bit layers need it)
    layers: int = 2
    splits: tuple[float, float, float] = (0.8, 0.05, 0.15)
    max_new_tokens: int = 48
    eval_limit: int | None = None
    eval_context: int = 128
    resamples: int = 2000
    split_unit: str = "auto"  # document | chunk | auto: documents when the test split gets MIN_TEST_UNITS of them
    config: str | None = None  # a malmungchi.toml; else the nearest one up from the first input (as every command)
    exclude: tuple[str, ...] = ()  # globs left out of the inputs, besides the config's [lint] exclude


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _done(folder: Path, fingerprint: str) -> bool:
    try:
        return json.loads((folder / STAGE_FILE).read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def _finish(folder: Path, fingerprint: str, **extra) -> None:
    """Written last: its presence with the fingerprint means the stage finished."""
    tmp = folder / (STAGE_FILE + ".tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, **extra}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / STAGE_FILE)


def _fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)


@dataclass
class Stage:
    name: str  # "build special", "train text s0", …
    skipped: bool
    seconds: float


def check(s: Settings) -> None:
    lines = []
    unknown = [p for p in s.policies if p not in ARMS]
    if unknown:
        lines.append(f"--policies: unknown {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    if len(set(s.policies)) < 2:
        lines.append("--policies: give at least two policies to compare")
    if not s.seeds:
        lines.append("--seeds: give at least one seed")
    if s.max_steps is None and s.epochs is None:
        lines.append("give --max-steps or --epochs: every policy trains with the same budget")
    for p in s.inputs:
        if not Path(p).exists():
            lines.append(f"{p}: no such file or folder")
    out = Path(s.out).resolve()
    for p in s.inputs:
        src = Path(p).resolve()
        if out == src or src in out.parents or out in src.parents:
            lines.append(f"--out {s.out}: overlaps the input {p}; choose a folder outside your inputs")
    if out.exists() and any(out.iterdir()) and not (out / "experiment.json").is_file():
        lines.append(f"--out {s.out}: exists and is not an experiment folder (no experiment.json); choose a new one")
    if lines:
        raise ExperimentError(lines)


@dataclass
class Corpus:
    """The inputs, read and parsed once for every stage: the builds render these trees under each policy."""

    config: object  # the malmungchi.toml every command would use (`load_settings_config`)
    inputs: list  # `find_inputs`
    sources: list  # `prep.stream.parse_all`: SourceFiles with their trees
    hashes: list  # [key, sha256 of the file] per input: what the stages' fingerprints hold
    exclude: list  # the globs left out of the inputs: the config's [lint] exclude and --exclude

    @classmethod
    def read(cls, s: Settings) -> Corpus:
        from malmungchi.prep.readers import find_inputs
        from malmungchi.prep.stream import parse_all

        config = load_settings_config(s)
        exclude = [*config.lint.exclude, *s.exclude]  # as every command that reads the corpus
        inputs = find_inputs(list(s.inputs), exclude)
        reading = build_config(s, s.policies[0], Path("."), config, "document")  # policies play no part in it
        sources = parse_all(inputs, config.registry(), reading)
        return cls(config, inputs, sources, [[src.key, src.sha256] for src in sources], exclude)

    def documents(self):
        """(document, its source file, its canonical text) for every input document."""
        from malmungchi.prep.identity import Canonical

        canonical = Canonical(self.config.registry())
        for src in self.sources:
            for doc in src.documents:
                yield doc, src, canonical.renderer.render(doc, src.key).text


def run(s: Settings, progress: Callable[[str, bool], None] | None = None) -> dict:
    """Run (or resume) the experiment; returns report.json's content."""
    from malmungchi.experiment import report as report_mod

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the experiment shows its own progress
    check(s)
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.json").write_text(json.dumps(asdict(s), indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
    stages: list[Stage] = []

    def step(name: str, fn: Callable[[], bool]) -> None:
        t = time.perf_counter()
        if progress:
            progress(name, False)
        skipped = fn()
        stages.append(Stage(name, skipped, round(time.perf_counter() - t, 3)))
        if progress:
            progress(name, True)

    c = Corpus.read(s)  # once: every stage's fingerprint and every build start from it
    tok_dir, base_dir = _base_paths(s)
    step("tokenizer", lambda: _tokenizer(s, c, tok_dir))
    step("base model", lambda: _base_model(s, tok_dir, base_dir))
    unit = split_unit(s, c)
    tok_hash = _tree_hash(tok_dir)
    for arm in s.policies:
        step(f"build {arm}", lambda arm=arm: _build(s, c, arm, tok_dir, tok_hash, unit))
    for arm in s.policies:
        for seed in s.seeds:
            step(f"train {arm} seed {seed}", lambda arm=arm, seed=seed: _train(s, arm, seed, base_dir))
            step(f"evaluate {arm} seed {seed}", lambda arm=arm, seed=seed: _evaluate(s, arm, seed))
    rep = report_mod.compare(s, out)
    report_mod.write(rep, out)
    rep["stages"] = [asdict(x) for x in stages]  # this invocation's work (not in report.json: same inputs, same bytes)
    return rep


# -- stages ------------------------------------------------------------------------------------------------------


def _base_paths(s: Settings) -> tuple[Path, Path]:
    out = Path(s.out)
    tok = out / "tokenizer" if s.tokenizer == "train" else Path(s.tokenizer)
    base = out / "base" if s.model == "tiny" else Path(s.model)
    return tok, base


def _tokenizer(s: Settings, c: Corpus, tok_dir: Path) -> bool:
    if s.tokenizer != "train":
        if not tok_dir.is_dir():
            raise ExperimentError(f"--tokenizer {s.tokenizer}: no such folder (or give --tokenizer train)")
        return True
    fp = _sha({"inputs": c.hashes, "vocab_size": s.vocab_size})
    if _done(tok_dir, fp):
        return True
    from malmungchi.quickstart.tokenizer import train_tokenizer

    _fresh(tok_dir)
    train_tokenizer(_canonical_texts(c), tok_dir, vocab_size=s.vocab_size)
    _finish(tok_dir, fp)
    return False


def _base_model(s: Settings, tok_dir: Path, base_dir: Path) -> bool:
    if s.model != "tiny":
        if not base_dir.is_dir():
            raise ExperimentError(f"--model {s.model}: no such folder (or give --model tiny)")
        return True
    fp = _sha({"tokenizer": _tree_hash(tok_dir), **{k: getattr(s, k) for k in ("hidden_size", "layers")},
               "max_length": s.max_length})
    if _done(base_dir, fp):
        return True
    from transformers import AutoTokenizer

    from malmungchi.train.tiny import make_tiny_model

    _fresh(base_dir)
    tok = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    make_tiny_model(base_dir, tok, seed=0, hidden_size=s.hidden_size, layers=s.layers, heads=4, kv_heads=2,
                    intermediate_size=s.hidden_size * 2, max_position_embeddings=max(512, s.max_length))
    _finish(base_dir, fp)
    return False


EXPERIMENT_KEYS = ("tokenizer", "mode", "max_length", "eval_context", "seed", "split_unit", "splits",
                   "default_policy", "policies")  # [build] keys the experiment sets itself


def load_settings_config(s: Settings):
    """The config file every command would use for these inputs (its [build] and [markers] apply)."""
    from malmungchi.schemas.config import load_config

    return load_config(Path(s.inputs[0]) if s.inputs else Path.cwd(), Path(s.config) if s.config else None)


def split_unit(s: Settings, corpus: Corpus | None = None) -> str:
    """"document" or "chunk": with `auto`, whole documents when the test split would get MIN_TEST_UNITS of them
    (decided from the documents' identities, as the build decides), else pieces of them, so a small corpus still
    gives an interval."""
    if s.split_unit != "auto":
        return s.split_unit
    from malmungchi.prep.identity import text_key
    from malmungchi.prep.split import document_units, intervals, split_of, unit_number
    from malmungchi.schemas.config import SplitRatios

    identity, groups = {}, {}
    for doc, src, text in (corpus or Corpus.read(s)).documents():
        identity[doc.id] = text_key(text)
        groups.update(src.groups)
    ratios = SplitRatios(**dict(zip(("train", "validation", "test"), s.splits)))
    spans = intervals(ratios)
    test = sum(split_of(unit_number(0, "", c), spans) == "test" for c in document_units(identity, groups).values())
    return "document" if test >= MIN_TEST_UNITS else "chunk"


def build_config(s: Settings, arm: str, tok_dir: Path, config, unit: str):
    """The build config of policy `arm`: the config file's [build] with what the experiment sets itself."""
    from malmungchi.schemas.config import BuildConfig

    own = {k: v for k, v in config.build.model_dump(exclude_unset=True).items() if k not in EXPERIMENT_KEYS}
    return BuildConfig(**{**own, "tokenizer": str(tok_dir), "mode": "chat" if s.chat else "text",
                          "max_length": s.max_length, "eval_context": s.eval_context, "seed": 0,
                          "split_unit": unit,  # documents or pieces of them cut on the
                          # tree: the same for every policy either way (prep.split)
                          "splits": dict(zip(("train", "validation", "test"), s.splits)),
                          **policy_settings(arm, config.registry())})


def _build(s: Settings, c: Corpus, arm: str, tok_dir: Path, tok_hash: str, unit: str) -> bool:
    from malmungchi.prep.build import plan
    from malmungchi.prep.write import write_build

    folder = Path(s.out) / "builds" / arm
    registry = c.config.registry()
    cfg = build_config(s, arm, tok_dir, c.config, unit)
    fp = _sha({"inputs": c.hashes, "tokenizer": tok_hash, "config": cfg.model_dump(mode="json"),
               "markers": sorted(registry.tokens)})
    if _done(folder, fp):
        return True
    _fresh(folder)
    p = plan(list(s.inputs), cfg, registry, parsed=c.sources, exclude=c.exclude)
    manifest = write_build(p, folder)
    _finish(folder, fp, content_hash=manifest["content_hash"])
    return False


def _train(s: Settings, arm: str, seed: int, base_dir: Path) -> bool:
    from malmungchi.schemas.config import TrainConfig
    from malmungchi.train.runner import resolve, train

    build = Path(s.out) / "builds" / arm
    folder = Path(s.out) / "runs" / f"{arm}-s{seed}"
    build_fp = json.loads((build / STAGE_FILE).read_text(encoding="utf-8"))["content_hash"]
    fp = _sha({"build": build_fp, "base": _tree_hash(base_dir), "seed": seed,
               **{k: getattr(s, k) for k in ("max_steps", "epochs", "lr", "batch_size", "lora_r", "lora_alpha",
                                             "train_embeddings", "quant")}})
    if _done(folder, fp):
        return True
    _fresh(folder)
    steps = s.max_steps or 0
    cfg = TrainConfig(model=str(base_dir), out=str(folder), quant=s.quant, max_steps=s.max_steps, epochs=s.epochs,
                      lr=s.lr, batch_size=s.batch_size, lora_r=s.lora_r, lora_alpha=s.lora_alpha, seed=seed,
                      train_embeddings=s.train_embeddings,
                      args={"logging_steps": max(1, steps // 40) if steps else 10, "save_steps": steps or 500,
                            "eval_steps": steps or 500})
    started = time.perf_counter()
    with PeakMemory() as peak:
        train(resolve(build, cfg), console=None)
    _finish(folder, fp, wall_s=round(time.perf_counter() - started, 3), peak_memory_mb=peak.mb,
            peak_memory_kind="cuda allocated" if peak.cuda else "process resident set")
    return False


def _evaluate(s: Settings, arm: str, seed: int) -> bool:
    from malmungchi.experiment.scoring import evaluate

    run_dir = Path(s.out) / "runs" / f"{arm}-s{seed}"
    folder = Path(s.out) / "results" / f"{arm}-s{seed}"
    fp = _sha({"run": json.loads((run_dir / STAGE_FILE).read_text(encoding="utf-8"))["fingerprint"],
               "max_new_tokens": s.max_new_tokens, "limit": s.eval_limit})
    if _done(folder, fp):
        return True
    folder.mkdir(parents=True, exist_ok=True)  # the generations file inside resumes an interrupted eval
    (folder / STAGE_FILE).unlink(missing_ok=True)
    scores = evaluate(run_dir, Path(s.out) / "builds" / arm, folder, max_new_tokens=s.max_new_tokens,
                      limit=s.eval_limit)
    (folder / "scores.json").write_text(json.dumps(scores, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    _finish(folder, fp)
    return False


# -- helpers -------------------------------------------------------------------------------------------------------


def _tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != STAGE_FILE):
        h.update(str(f.relative_to(folder)).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _canonical_texts(c: Corpus) -> list[str]:
    """Every input document's text without its markers: what a tokenizer for the experiment is trained on, so
    that, as with a pretrained tokenizer, `|SOUND|>` spelled as text costs several tokens and `special` adds
    one token per marker."""
    from malmungchi.prep.identity import MARKER

    return [MARKER.sub("", text) for _, _, text in c.documents()]


class PeakMemory:
    """The training stage's peak memory (MB): on CUDA the allocator's peak; on the CPU the process's resident set,
    sampled every 20 ms while the stage runs (the process's lifetime peak, `ru_maxrss`, is not the stage's)."""

    def __enter__(self) -> PeakMemory:
        import threading

        import torch

        self.cuda = torch.cuda.is_available()
        self.mb: float | None = None
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return self
        self._stop = threading.Event()
        self._rss = [_rss_mb()]
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._rss.append(_rss_mb())

    def __exit__(self, *exc) -> None:
        if self.cuda:
            import torch

            self.mb = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            return
        self._stop.set()
        self._thread.join()
        self._rss.append(_rss_mb())
        got = [x for x in self._rss if x is not None]
        self.mb = round(max(got), 1) if got else None


def _rss_mb() -> float | None:
    """This process's resident set (MB), from /proc (None where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None
