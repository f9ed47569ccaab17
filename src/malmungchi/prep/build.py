"""The build stage, without writing: `plan()` runs the steps of `_plan` in order (the pipeline of
`docs/DESIGN.md`) and returns a `Plan`; `malmungchi.prep.write` turns it into a build directory.

read / parse / render (`prep.stream`, a process pool for large inputs) → lint gate → chat conversations (chat
mode) → dedup → register tokens and encode (`prep.encode`; in text mode started before reading, so encoding
overlaps the parse) → split (`prep.split`) → settle each document's fate in the ledger (`prep.ledger`) → pack
(`prep.rows`) → eval items (`prep.evalset`, made while the writer writes). Everything is linear-time Python over
documents (not tokens) plus numpy over tokens; the result is the same however the work is overlapped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from malmungchi.corpus.diagnostics import Diagnostic
from malmungchi.corpus.parse import collector_paused
from malmungchi.errors import UserError
from malmungchi.prep import chat as chatmod
from malmungchi.prep import chatpool
from malmungchi.prep.chatcut import split_long_conversations
from malmungchi.prep.encode import Encoded, Encoder, EncoderMismatch, Lost, Piece, Seq, TextEncoder
from malmungchi.prep.evalset import chat_items, text_items
from malmungchi.prep.identity import Canonical
from malmungchi.prep.ledger import DocEntry, DropKind, dropped
from malmungchi.prep.policies import Policies, speaker_token
from malmungchi.prep.readers import Dropped, InputError, Inputs, SourceFile, find_inputs
from malmungchi.prep.render import Rendered, TextRenderer
from malmungchi.prep.rows import check_rows, pack_rows, rows_table
from malmungchi.prep.spill import Records
from malmungchi.prep.pieces import cut as cut_pieces
from malmungchi.prep.split import SPLITS, Assignment, assign, choose_unit
from malmungchi.prep.stream import results_taken_meanwhile, stream
from malmungchi.prep.tokenizer import Registration, TokenizerError, load_tokenizer, register_tokens, \
    round_trip_problems, stop_token
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import Registry

ROUND_TRIP_SAMPLE = 200  # rendered texts checked for an exact encode → decode round trip
FAST_BYTES = 2 << 20  # from this much input on, --encoder auto uses tiktoken (setting it up takes about 0.4 s)
ENCODERS = ("auto", "tiktoken", "tokenizers")
MOSTLY_LOST = 0.5  # a kept document that lost more than this share of its tokens to max_length is marked


class LintRefusal(Exception):
    """Inputs with lint errors and no --allow-errors: the diagnostics to show."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__(f"{len(diagnostics)} lint error(s)")
        self.diagnostics = diagnostics


class BuildError(UserError):
    """A problem with the build's options or inputs (one line each)."""


NO_TOKENIZER = "no tokenizer: give --tokenizer DIR (or set build.tokenizer in the config file)"


@dataclass
class Plan:
    cfg: BuildConfig
    tokenizer: object
    tokenizer_source: str
    registration: Registration
    policies: Policies
    stop: tuple[str, int]
    sources: list[SourceFile]
    documents: list[DocEntry]  # the ledger: every document found, in input order
    splits: dict[str, list[Seq]]
    rows: dict[str, list[list[int]]]
    eval_source: Callable[[], Iterable[dict]]  # makes the eval items (see `eval_items`)
    lost: list[Lost]
    split_unit: str
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rendered: list[Rendered] = field(default_factory=list)
    doc_tokens: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    encoded_with: str = "tokenizers"  # or "tiktoken" (see `plan`'s encoder); the build's bytes are the same
    byte_lengths: np.ndarray | None = None  # each token id's UTF-8 length, when exact (`positions.token_byte_lengths`)
    _eval_items: Records | None = field(default=None, repr=False)
    report_cache: dict | None = field(default=None, repr=False)  # `prep.stats.report`, once computed

    @property
    def eval_items(self) -> Records:
        """The eval items (kept in a temporary file), made on first use: the writer makes them while the data
        files are written in another thread."""
        if self._eval_items is None:
            self._eval_items = Records(self.eval_source())
        return self._eval_items

    @property
    def tables(self) -> dict[str, pa.Table]:
        """Every split's rows as one Arrow table (built on each access: the writer streams row groups instead)."""
        return {name: rows_table(self.splits[name], self.rows[name]) for name in SPLITS}


def plan(paths: list[str], cfg: BuildConfig, registry: Registry, *, tokenizer_source: str | None = None,
         tokenizer=None, exclude: list[str] | None = None, jobs: int | None = None, progress=None,
         write_rows: bool = True, encoder: str = "auto", parsed: list[SourceFile] | None = None) -> Plan:
    """Everything the build directory will hold, computed in memory. `progress(stage, advance, total)`.

    `parsed`: `prep.stream.parse_all` of the same inputs (with this registry and reading options), to build
    from trees already parsed instead of reading the files again; the build is the same.

    `encoder` (either mode; the ids are the same whichever): "tiktoken" encodes with tiktoken's BPE where it gives
    the tokenizer's ids (`fastbpe`; a BuildError says why when the tokenizer is not one of those), "tokenizers"
    with the tokenizer itself, "auto" with tiktoken from FAST_BYTES of input on, when it can."""
    if encoder not in ENCODERS:
        raise BuildError([f"encoder {encoder!r}: choose one of {', '.join(ENCODERS)}"])
    try:
        # the collector held off (`corpus.parse.collector_paused`): the build's renderings, sequences and ledger
        # entries are in no reference cycle, and each of its full passes walked them all, and every object the
        # imports made (transformers, torch), again: a tenth of a second a pass, a twelfth of a 15 MB build
        with collector_paused():
            return _plan(paths, cfg, registry, tokenizer_source=tokenizer_source, tokenizer=tokenizer,
                         exclude=exclude, jobs=jobs, progress=progress, encoder_choice=encoder, parsed=parsed)
    except EncoderMismatch as exc:
        raise BuildError([str(exc)]) from None


def _plan(paths: list[str], cfg: BuildConfig, registry: Registry, *, tokenizer_source: str | None, tokenizer,
          exclude: list[str] | None, jobs: int | None, progress, encoder_choice: str,
          parsed: list[SourceFile] | None = None) -> Plan:
    """The pipeline of `docs/DESIGN.md`, one named step per line; each step reads and fills `_Work`."""
    w = _setup(paths, cfg, registry, tokenizer_source=tokenizer_source, tokenizer=tokenizer, exclude=exclude,
               progress=progress, encoder_choice=encoder_choice)
    w.parsed, w.jobs = parsed, jobs
    if w.fast:  # tiktoken: the readers start first, this process sets up the encoder meanwhile and encodes
        results = _start_reading(w, jobs, None)
        try:
            with results_taken_meanwhile():
                _start_encoding_early(w)
        except BaseException:  # Ctrl-C while the tokenizer loads, say: the readers must not outlive the build
            getattr(results, "close", lambda: None)()
            raise
    else:  # the tokenizer's encoder is set up first, so the readers inherit it and encode what they render
        _start_encoding_early(w)  # text mode, tokens known before reading: encode while reading
        results = _start_reading(w, jobs, w.early.encoder.text_encoder if w.early else None)
    _read_parse_render(w, results)  # + dedup (and encoding, when started early) as documents arrive
    _lint_gate(w)
    _load_tokenizer(w)
    if cfg.mode == "chat":
        _chat_conversations(w)
    _settle_duplicates(w)
    _choose_split_unit(w)  # chunk mode: books cut into pieces on the tree, before encoding
    enc = _register_and_encode(w)
    splits, assignment = _split(w, enc)
    _settle_documents(w, enc, splits)
    rows = _pack(w, splits)
    return _result(w, enc, splits, rows, assignment)


@dataclass
class _Early:
    """Set up before reading (text mode, no per-dialogue speaker tokens): the readers' texts are encoded as they
    arrive."""
    registration: Registration
    stop: tuple[str, int]
    encoder: Encoder


class _Dedup:
    """Exact dedup (after normalisation), before splitting, in the order documents arrive."""

    def __init__(self, on: bool):
        self.on = on
        self.seen: dict[str, str] = {}  # dedup key → id of the first rendering with it
        self.reason: dict[str, str] = {}  # document id → "duplicate of …"
        self.count = 0
        self.kept: list[Rendered] = []

    def keep(self, r: Rendered) -> bool:
        """True when `r` is kept (then it is in `kept`)."""
        if self.on:
            key = r.dedup_key()
            if key in self.seen:
                self.count += 1
                self.reason.setdefault(r.doc_id, f"duplicate of {self.seen[key]}")
                return False
            self.seen[key] = r.id
        self.kept.append(r)
        return True


@dataclass(kw_only=True)
class _Work:
    """The build's state as the steps of `_plan` fill it in."""
    cfg: BuildConfig
    registry: Registry
    policies: Policies
    inputs: Inputs
    progress: Callable | None
    fast: bool  # encode with tiktoken
    encoder_choice: str
    tokenizer: object | None
    tokenizer_source: str | None
    early: _Early | None = None
    tok_error: BaseException | None = None  # a tokenizer problem met early, raised after the lint gate
    ledger: list[DocEntry] = field(default_factory=list)  # reading (and chat) entries, in input order
    render_ledger: list[DocEntry] = field(default_factory=list)  # text mode: entries of rendered documents
    sources: list[SourceFile] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)
    groups: dict[str, str] = field(default_factory=dict)
    by_doc: dict[str, list[Rendered]] = field(default_factory=dict)
    identity: dict[str, str] = field(default_factory=dict)  # document id → its identity (`prep.identity`)
    dedup: _Dedup | None = None
    warnings: list[str] = field(default_factory=list)
    eot: str | None = None  # chat mode: the template's end-of-turn
    chat_r: chatmod.ChatRenderer | None = None
    registration: Registration | None = None
    stop: tuple[str, int] | None = None
    encoder: Encoder | None = None
    split_unit: str = "document"  # as decided by `_choose_split_unit` (`assign` decides the same again)
    reencode: bool = False  # pieces replaced renderings the early encoder already had
    parsed: list[SourceFile] | None = None  # the inputs already parsed (`plan`'s `parsed`)
    jobs: int | None = None  # processes for the readers (and chat mode's templates); None: one per core
    round_trip: tuple | None = None  # (encoder, problems): the check, made as soon as that encoder had its sample

    def step(self, stage: str, total: int | None = None) -> Callable | None:
        """A progress callback for one stage, or None."""
        progress = self.progress
        return (lambda n: progress(stage, n, total)) if progress else None


def _setup(paths: list[str], cfg: BuildConfig, registry: Registry, *, tokenizer_source: str | None, tokenizer,
           exclude: list[str] | None, progress, encoder_choice: str) -> _Work:
    """Options checked, inputs found, a tokenizer id (not a folder) loaded: a bad one fails before a large corpus
    is read."""
    tokenizer_source = tokenizer_source or cfg.tokenizer
    problems = [] if tokenizer is not None or tokenizer_source else [NO_TOKENIZER]
    try:
        policies = Policies(registry, cfg)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        inputs = find_inputs(paths, exclude)
    except InputError as exc:  # said together with the options' problems: every one at once
        problems += exc.lines
    if problems:
        raise BuildError(problems)
    input_bytes = sum(os.path.getsize(p) for p, _ in inputs if os.path.isfile(p))
    if tokenizer is None and not os.path.isdir(os.path.expanduser(tokenizer_source)):
        tokenizer = load_tokenizer(tokenizer_source)
    return _Work(cfg=cfg, registry=registry, policies=policies, inputs=inputs, progress=progress,
                 fast=encoder_choice == "tiktoken" or (encoder_choice == "auto" and input_bytes >= FAST_BYTES),
                 encoder_choice=encoder_choice, tokenizer=tokenizer, tokenizer_source=tokenizer_source,
                 dedup=_Dedup(cfg.dedup))


def _start_encoding_early(w: _Work) -> None:
    """Text mode without speaker tokens: the tokens to register are known before reading, so the tokenizer is
    loaded and the encoder set up now (`w.early`); a tokenizer problem waits in `w.tok_error` for the lint gate.
    Otherwise, while the readers run (`w.fast`), only the tokenizer is loaded."""
    early = w.cfg.mode == "text" and w.cfg.speakers != "token"
    if not early and not w.fast:
        return
    try:
        if w.tokenizer is None:
            w.tokenizer = load_tokenizer(w.tokenizer_source)
        if not early:
            return
        registration, stop, encoder = start_encoding(w.tokenizer, w.policies, w.cfg, w.step("tokenizing"),
                                                     fast=w.fast)
        if w.encoder_choice == "tiktoken":
            _must_be_fast(encoder.text_encoder)
        w.early = _Early(registration, stop, encoder)
    except TokenizerError as exc:
        w.tok_error = exc  # raised where it would have been: after the lint gate (no stop token: below)


def _start_reading(w: _Work, jobs: int | None, encoder: TextEncoder | None) -> Iterable:
    """The readers started (`prep.stream`: a process pool for large inputs, which begins at once); `encoder`:
    the readers also encode what they render with it."""
    input_bytes = sum(os.path.getsize(p) for p, _ in w.inputs if os.path.isfile(p))
    return stream(w.inputs, w.registry, w.cfg, jobs, w.cfg.mode == "text", w.step("reading", input_bytes),
                  encoder, w.parsed)


def _read_parse_render(w: _Work, results: Iterable) -> None:
    """Every input read and parsed (text mode: rendered too) in input order: `w.sources`, `w.errors`,
    `w.groups`, the ledger's reading entries, `w.by_doc`; rendered documents go through dedup and, with
    `w.early`, into the encoder as they arrive."""
    for s, rendered in results:
        w.sources.append(s)
        w.groups.update(s.groups)
        w.errors.extend(s.errors)
        if s.file_broken:
            w.ledger.append(dropped(s.key, s.key, None, DropKind.FILE_ERROR, "file has errors: " + "; ".join(
                f"{d.code}: {d.message}" for d in s.errors[:3])))
        w.ledger.extend(dropped(d.id, s.key, d.title, d.kind, d.reason) for d in s.dropped)
        if rendered is not None:
            _take_rendered(w, s.key, rendered)
            _round_trip_early(w)
    w.errors.extend(w.inputs.revisited)  # a folder reached twice: lint's F007 error, so the build's gate too


def _take_rendered(w: _Work, source: str, results: list) -> None:
    """One file's rendered documents (text mode): ledger entries, dedup, and the encoder when started early (not
    when the build will stop at the lint gate)."""
    refused = bool(w.errors) and not w.cfg.allow_errors
    for (doc_id, title), item in results:
        if item is None or isinstance(item, str):
            w.render_ledger.append(dropped(doc_id, source, title, DropKind.EMPTY, item or "renders to no text"))
            continue
        r = item.r if isinstance(item, Piece) else item
        w.by_doc[doc_id] = [r]
        w.identity[doc_id] = r.dedup_key()
        w.render_ledger.append(DocEntry(doc_id, source, title))
        if w.dedup.keep(r) and w.early is not None and not refused:
            if isinstance(item, Piece):
                w.early.encoder.take([item])
            else:
                w.early.encoder.add(r)


def _round_trip_early(w: _Work) -> None:
    """The round-trip check of `_check_round_trip`, as soon as the early encoder has encoded its whole sample:
    while the readers still keep the other core busy, not alone at the end."""
    e = w.early.encoder if w.early is not None else None
    if w.round_trip is None and e is not None and e.keep_first and len(e.first_ids) >= e.keep_first:
        w.round_trip = (e, round_trip_problems(w.tokenizer, e.first_texts, ids=e.first_ids))


def _lint_gate(w: _Work) -> None:
    """Lint errors refuse the build (LintRefusal) unless --allow-errors dropped their documents."""
    if w.errors and not w.cfg.allow_errors:
        raise LintRefusal(w.errors)


def _load_tokenizer(w: _Work) -> None:
    if w.tok_error is not None and w.tokenizer is None:
        raise w.tok_error
    if w.tokenizer is None:
        w.tokenizer = load_tokenizer(w.tokenizer_source)


def _chat_conversations(w: _Work) -> None:
    """Chat mode: every document's dialogues as conversations (rendered with the chat template); a document
    without one is dropped. The trees are let go."""
    try:
        w.eot = chatmod.end_of_turn(w.tokenizer)
    except chatmod.ChatError as exc:
        raise BuildError([str(exc)]) from None
    canonical = Canonical(w.registry)
    w.chat_r = chatmod.ChatRenderer(TextRenderer(w.policies, w.cfg.speakers), w.tokenizer, w.cfg, w.eot,
                                    canonical.renderer)
    for s, doc, (identity, rs, problems) in chatpool.conversations(w.sources, w.chat_r, canonical.renderer,
                                                                    w.jobs):
        w.identity[doc.id] = identity
        if not rs:
            w.ledger.append(dropped(doc.id, s.key, doc.title, DropKind.NO_DIALOGUE,
                                    "; ".join(problems) or "no dialogue (chat mode uses dialogues only)"))
            continue
        w.by_doc[doc.id] = rs
        w.ledger.append(DocEntry(doc.id, s.key, doc.title))
        for r in rs:
            r.unit = identity + r.id[len(doc.id):]  # a conversation: its book and its place in it
            w.dedup.keep(r)
    for s in w.sources:
        if not s.file_broken:
            s.documents = []


def _settle_duplicates(w: _Work) -> None:
    """One ledger in input order (reading entries, then rendered ones); a kept document none of whose renderings
    survived dedup is dropped as a duplicate."""
    w.ledger += w.render_ledger
    w.render_ledger = []
    alive = {r.doc_id for r in w.dedup.kept}
    for d in w.ledger:
        if d.kept and d.id not in alive:
            d.drop(DropKind.DUPLICATE, w.dedup.reason.get(d.id, "duplicate of an earlier document"))


def _choose_split_unit(w: _Work) -> None:
    """Whole documents, or pieces when they cannot fill every split (`prep.split.choose_unit`, from the
    identities alone). Text mode: each book is then cut into pieces on its tree (`prep.pieces`), which replace it
    before encoding (encoded again when the early encoder already had it: small corpora only)."""
    kept = {r.doc_id for r in w.dedup.kept}
    w.split_unit, _ = choose_unit({d: k for d, k in w.identity.items() if d in kept}, w.cfg.splits,
                                            w.cfg.seed, w.cfg.split_unit, w.groups)
    if w.split_unit != "chunk" or w.cfg.mode != "text" or w.cfg.long_documents == "drop":
        return  # (--long-documents drop keeps only documents that fit a row: each is already one unit)
    out: list[Rendered] = []
    for r in w.dedup.kept:
        out.extend(cut_pieces(r) or [r])
    w.dedup.kept = out
    w.reencode = w.early is not None


def _register_and_encode(w: _Work) -> Encoded:
    """Marker (and speaker) tokens registered, every kept rendering encoded (or the early encoder finished), the
    round trip checked on a sample; chat conversations longer than a row cut between messages."""
    tok, rendered = w.tokenizer, w.dedup.kept
    if w.early is not None:
        w.registration, w.stop, w.encoder = w.early.registration, w.early.stop, w.early.encoder
        if w.reencode:  # the pieces, not the books the early encoder was given
            w.encoder = _encoder(tok, w.cfg, w.stop[1], w.step("tokenizing", sum(len(r.text) for r in rendered)),
                                 w.fast)
            for r in rendered:
                w.encoder.add(r)
    else:
        wanted = w.policies.special_tokens()
        if w.cfg.speakers == "token":
            most = max([r.max_speakers for r in rendered] + [0])
            wanted += [speaker_token(i) for i in range(1, most + 1)]
        w.registration = register_tokens(tok, wanted)
    w.warnings.extend(f"token collision: {c}" for c in w.registration.collisions)
    if w.early is None:
        try:
            w.stop = stop_token(tok, w.cfg.mode, w.eot)
        except TokenizerError as exc:
            raise BuildError([str(exc)]) from None
        w.encoder = _encoder(tok, w.cfg, w.stop[1], w.step("tokenizing", sum(len(r.text) for r in rendered)),
                             w.fast)
        if w.encoder_choice == "tiktoken":
            _must_be_fast(w.encoder.text_encoder)
        for r in rendered:
            w.encoder.add(r)
    w.encoder.flush()  # so the sample's ids are there (the order of work does not change any result)
    _check_round_trip(w)
    enc = w.encoder.finish()
    if w.cfg.mode == "chat":
        split_long_conversations(enc, w.chat_r, w.encoder.text_encoder, w.cfg, w.stop[1])
    w.warnings.extend(f"sequence {sid} does not end with the stop token {w.stop[0]}" for sid in enc.stop_missing)
    return enc


def _check_round_trip(w: _Work) -> None:
    """Warnings for a tokenizer that does not give back the text (whitespace, clean-up of spaces)."""
    encoder, tok = w.encoder, w.tokenizer
    sample = encoder.first_texts or [t for t in (r.full_text() for r in w.dedup.kept[:ROUND_TRIP_SAMPLE])
                                     if len(t) <= encoder.long_chars]
    w.registration.whitespace = w.round_trip[1] if w.round_trip is not None and w.round_trip[0] is encoder else \
        round_trip_problems(tok, sample, ids=encoder.first_ids)
    w.warnings.extend(f"tokenizer {p}" for p in w.registration.whitespace)
    if getattr(tok, "clean_up_tokenization_spaces", False):
        w.warnings.append("the tokenizer's clean_up_tokenization_spaces is on: decoding with defaults changes "
                          "spacing around punctuation; decode with clean_up_tokenization_spaces=False")


def _split(w: _Work, enc: Encoded) -> tuple[dict[str, list[Seq]], Assignment]:
    """Every sequence's split (`prep.split.assign`, by the documents' identities), sequences listed per split in
    encoding order."""
    kept = {r.doc_id for r in w.dedup.kept}
    identity = {doc_id: key for doc_id, key in w.identity.items() if doc_id in kept}
    assignment = assign(enc.seqs, w.cfg.splits, w.cfg.seed, w.cfg.split_unit, identity, w.groups)
    splits: dict[str, list[Seq]] = {s: [] for s in SPLITS}
    for q in enc.seqs:
        splits[assignment.by_seq[q.id]].append(q)
    for name in SPLITS:
        n = len(splits[name])
        if getattr(w.cfg.splits, name) > 0 and n < w.cfg.min_split_sequences:
            w.warnings.append(f"the {name} split has only {n} sequence{'s' * (n != 1)}: too small to mean much")
    return splits, assignment


def _settle_documents(w: _Work, enc: Encoded, splits: dict[str, list[Seq]]) -> None:
    """Each kept document's tokens, group and split; one with no sequence left is dropped (too long), one that
    lost pieces to max_length says so (and is marked when it lost most of its tokens)."""
    doc_split: dict[str, set[str]] = {}
    for name, qs in splits.items():
        for q in qs:
            doc_split.setdefault(q.doc_id, set()).add(name)
    tokens: dict[str, int] = {}
    for r in w.dedup.kept:
        tokens[r.doc_id] = tokens.get(r.doc_id, 0) + enc.doc_tokens.get(r.id, 0)
    lost_reasons: dict[str, list[str]] = {}
    lost_tokens: dict[str, int] = {}
    for lost in enc.lost:
        lost_reasons.setdefault(lost.doc_id, []).append(lost.reason)
        lost_tokens[lost.doc_id] = lost_tokens.get(lost.doc_id, 0) + lost.tokens
    mostly: list[str] = []
    for d in w.ledger:
        if not d.kept:
            continue
        d.tokens = tokens.get(d.id, 0)
        d.group = w.groups.get(d.id)
        names = doc_split.get(d.id)
        if not names:
            d.drop(DropKind.TOO_LONG, "; ".join(lost_reasons.get(d.id, [])) or "no sequence left")
            continue
        d.split = "+".join(s for s in SPLITS if s in names)
        if d.id in lost_reasons:
            d.reason = "partly lost: " + "; ".join(lost_reasons[d.id])
            d.lost_tokens = lost_tokens[d.id]
            if d.tokens and d.lost_tokens > MOSTLY_LOST * d.tokens:
                d.mostly_lost = True  # kept in name only: say so, in the report too
                mostly.append(d.id)
    if mostly:
        w.warnings.append(f"{len(mostly)} document(s) lost more than {MOSTLY_LOST:.0%} of their tokens to "
                          f"max_length ({', '.join(mostly[:3])}{', …' if len(mostly) > 3 else ''}): their "
                          "paragraphs or turns are longer than a row; break them up (lint F008)")


def _pack(w: _Work, splits: dict[str, list[Seq]]) -> dict[str, list[list[int]]]:
    """Each split's sequences packed into rows of at most max_length (`prep.rows`), the rows checked."""
    rows: dict[str, list[list[int]]] = {}
    for name in SPLITS:
        rows[name] = pack_rows(splits[name], w.cfg.max_length, w.cfg.pack)
        w.warnings.extend(f"{name}: {p}" for p in check_rows(splits[name], rows[name], w.stop[1], w.cfg.max_length))
    return rows


def _result(w: _Work, enc: Encoded, splits: dict[str, list[Seq]], rows: dict[str, list[list[int]]],
            assignment: Assignment) -> Plan:
    tok, cfg = w.tokenizer, w.cfg
    sizes = w.encoder.text_encoder.byte_lengths

    def items() -> Iterable[dict]:
        return (chat_items(splits["test"], tok, cfg.eval_context) if cfg.mode == "chat" else
                text_items(splits["test"], tok, cfg.eval_context, sizes=sizes))

    return Plan(cfg=cfg, tokenizer=tok, tokenizer_source=w.tokenizer_source or "(given)",
                registration=w.registration, policies=w.policies, stop=w.stop, sources=w.sources,
                documents=w.ledger, splits=splits, rows=rows, eval_source=items, lost=enc.lost,
                split_unit=assignment.unit, notes=w.inputs.skipped + assignment.notes, warnings=w.warnings,
                rendered=w.dedup.kept, doc_tokens=enc.doc_tokens, duplicates=w.dedup.count,
                encoded_with="tokenizers" if w.encoder.text_encoder.fast is None else "tiktoken", byte_lengths=sizes)


def start_encoding(tok, policies: Policies, cfg: BuildConfig, progress,
                   fast: bool = False) -> tuple[Registration, tuple[str, int], Encoder]:
    """Register the policies' special tokens and set up the encoder, before reading (text mode, no speaker
    tokens). Raises TokenizerError when the tokenizer has no stop token."""
    stop = stop_token(tok, cfg.mode, None)  # first: without a stop token nothing is registered
    registration = register_tokens(tok, policies.special_tokens())
    encoder = _encoder(tok, cfg, stop[1], progress, fast)
    encoder.text_encoder.prepare()  # before the readers are forked: they inherit it
    return registration, stop, encoder


def _encoder(tok, cfg: BuildConfig, stop_id: int, progress, fast: bool = False) -> Encoder:
    """The build's encoder: ids spilled to temporary files, the first texts kept for the round-trip check."""
    return Encoder(tok, mode=cfg.mode, max_length=cfg.max_length, stop_id=stop_id,
                   long_documents=cfg.long_documents, progress=progress,
                   keep_first=ROUND_TRIP_SAMPLE, spill=True, fast=fast)


def _must_be_fast(text_encoder: TextEncoder) -> None:
    if text_encoder.fast is None:
        raise BuildError([f"--encoder tiktoken: tiktoken cannot reproduce this tokenizer's ids here "
                          f"({text_encoder.fast_reason}); build with --encoder auto or tokenizers"])


__all__ = ["BuildError", "LintRefusal", "Plan", "plan", "Dropped"]
