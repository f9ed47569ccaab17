"""The build stage end to end, without writing: read → lint gate → render → dedup → register tokens → encode →
chunk → split → pack → eval items → report. `malmungchi.prep.write` turns the result into a build directory.

Reading, parsing and (text mode) rendering run in a process pool when the input is large, a bounded amount of
input ahead of the main process. In text mode, when the tokens to register are known before reading, the main
process loads the tokenizer first and the workers also encode what they render, each single-threaded (one per
core), without offsets where the tokenizer allows it (`prep.positions`); they send back rendered texts with
their token ids, never document trees or Rust encodings.
Otherwise the main process encodes the rendered texts in batches in the Rust tokenizer's thread pool. Chat mode
renders in the main process (the chat template needs the tokenizer). Everything else is linear-time Python over
documents (not tokens) plus numpy over tokens. The result is the same as reading everything first.
"""

from __future__ import annotations

import os
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from malmungchi.corpus.diagnostics import Diagnostic
from malmungchi.corpus.parse import collector_paused
from malmungchi.errors import UserError
from malmungchi.prep import chat as chatmod
from malmungchi.prep.encode import BATCH_CHARS, Encoded, Encoder, EncoderMismatch, Lost, Piece, Seq, TextEncoder, \
    batches
from malmungchi.prep.evalset import chat_items, text_items
from malmungchi.prep.policies import Policies, speaker_token
from malmungchi.prep.readers import Dropped, SourceFile, find_inputs, read_source
from malmungchi.prep.render import Rendered, TextRenderer
from malmungchi.prep.rows import check_rows, pack_rows, rows_table
from malmungchi.prep.spill import Records
from malmungchi.prep.split import SPLITS, assign
from malmungchi.prep.tokenizer import Registration, TokenizerError, load_tokenizer, register_tokens, \
    round_trip_problems, stop_token
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import Registry

PARALLEL_BYTES = 2 << 20  # below this a process pool costs more than it saves
AHEAD_BYTES = 24 << 20  # input the readers may work ahead: two encode batches of Korean text, so they keep
# the cores busy while the main process encodes (a constant, whatever the corpus size)
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


@dataclass
class Plan:
    cfg: BuildConfig
    tokenizer: object
    tokenizer_source: str
    registration: Registration
    policies: Policies
    stop: tuple[str, int]
    sources: list[SourceFile]
    documents: list[dict]
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


_worker: tuple | None = None


def _init(registry: Registry, cfg: BuildConfig, render: bool = False, encoder: TextEncoder | None = None) -> None:
    global _worker
    if encoder is not None:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one worker per core already
    _worker = (registry, cfg, TextRenderer(Policies(registry, cfg), cfg.speakers) if render else None, encoder)


def _read_one(args: tuple[str, str]) -> SourceFile:
    assert _worker is not None
    return read_source(args[0], args[1], *_worker[:2])


def _prepare(src: SourceFile, renderer: TextRenderer | None,
             encoder: TextEncoder | None = None) -> tuple[SourceFile, list | None]:
    """With a renderer (text mode): every document rendered, with its dedup key and figures, and the tree let go,
    so only strings (and, with an encoder, token ids) cross from a worker. `rendered` is
    [(document, Rendered | Piece | None for "renders to no text")]."""
    if renderer is None or src.file_broken:
        return src, None
    out = []
    for doc in src.documents:
        r = renderer.render(doc, src.key)
        r.cuts = array("q", r.cuts)  # a compact pickle: a book has thousands of cut offsets
        if r.text.strip():
            r.dedup_key()
            out.append(((doc.id, doc.title), r))
        else:
            out.append(((doc.id, doc.title), None))
    src.documents = []
    if encoder is not None:
        kept = [i for i, (_, r) in enumerate(out) if r is not None]
        pieces = (p for batch in batches((out[i][1] for i in kept), BATCH_CHARS, size=lambda r: len(r.text))
                  for p in encoder.encode(batch))
        for i, piece in zip(kept, pieces):
            out[i] = (out[i][0], piece)
    return src, out


def _prepare_one(args: tuple[str, str]) -> tuple[SourceFile, list | None]:
    assert _worker is not None
    registry, cfg, renderer, encoder = _worker
    with collector_paused():  # the tree is rendered and let go before the collector could look at it
        return _prepare(read_source(args[0], args[1], registry, cfg), renderer, encoder)


def _stream(inputs: list[tuple[str, str]], registry: Registry, cfg: BuildConfig, jobs: int | None, render: bool,
            progress=None, encoder: TextEncoder | None = None):
    """(SourceFile, rendered | None) per input, in input order; a generator. With a process pool, at most
    AHEAD_BYTES of input (or two files per worker) are in flight, so memory does not grow with the corpus, and the
    pool is started before the first item is asked for (the caller can load the tokenizer meanwhile). With an
    encoder, the pool's workers also encode (rendered items become `Piece`s); without a pool nothing is encoded."""
    sizes = [os.path.getsize(p) if os.path.isfile(p) else 0 for p, _ in inputs]
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and len(inputs) > 1 and sum(sizes) >= PARALLEL_BYTES:
        # workers encode single-threaded; saying so in the environment they are forked with also keeps the Rust
        # tokenizer from warning about a fork after its thread pool was used (restored once they are started)
        quiet = encoder is not None and "TOKENIZERS_PARALLELISM" not in os.environ
        if quiet:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        pool = ProcessPoolExecutor(jobs, initializer=_init, initargs=(registry, cfg, render, encoder))
        pending: deque = deque()
        todo = iter(zip(inputs, sizes))
        in_flight = 0  # input bytes submitted and not yet handed to the caller

        def top_up() -> None:
            nonlocal in_flight
            while len(pending) < 2 * jobs or in_flight < AHEAD_BYTES:
                nxt = next(todo, None)
                if nxt is None:
                    return
                pending.append((pool.submit(_prepare_one, nxt[0]), nxt[1]))
                in_flight += nxt[1]

        try:
            top_up()
        finally:
            if quiet:
                del os.environ["TOKENIZERS_PARALLELISM"]

        def results():
            nonlocal in_flight
            try:
                while pending:
                    fut, size = pending.popleft()
                    res = fut.result()
                    in_flight -= size
                    top_up()
                    if progress:
                        progress(size)
                    yield res
            finally:
                for fut, _ in pending:
                    fut.cancel()
                pool.shutdown(wait=True, cancel_futures=True)

        return results()

    def serial():
        renderer = TextRenderer(Policies(registry, cfg), cfg.speakers) if render else None
        for (p, k), size in zip(inputs, sizes):
            with collector_paused():  # as in _prepare_one
                res = _prepare(read_source(p, k, registry, cfg), renderer)
            if progress:
                progress(size)
            yield res

    return serial()


def read_all(inputs: list[tuple[str, str]], registry: Registry, cfg: BuildConfig, jobs: int | None,
             progress=None) -> list[SourceFile]:
    sizes = [os.path.getsize(p) if os.path.isfile(p) else 0 for p, _ in inputs]
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and len(inputs) > 1 and sum(sizes) >= PARALLEL_BYTES:
        chunk = max(1, min(32, len(inputs) // (jobs * 8)))
        out = []
        with ProcessPoolExecutor(jobs, initializer=_init, initargs=(registry, cfg)) as pool:
            for src, size in zip(pool.map(_read_one, inputs, chunksize=chunk), sizes):
                out.append(src)
                if progress:
                    progress(size)
        return out
    out = []
    for (p, k), size in zip(inputs, sizes):
        out.append(read_source(p, k, registry, cfg))
        if progress:
            progress(size)
    return out


def plan(paths: list[str], cfg: BuildConfig, registry: Registry, *, tokenizer_source: str | None = None,
         tokenizer=None, exclude: list[str] | None = None, jobs: int | None = None, progress=None,
         write_rows: bool = True, encoder: str = "auto") -> Plan:
    """Everything the build directory will hold, computed in memory. `progress(stage, advance, total)`.

    `encoder` (text mode; the ids are the same whichever): "tiktoken" encodes with tiktoken's BPE where it gives
    the tokenizer's ids (`fastbpe`; a BuildError says why when the tokenizer is not one of those), "tokenizers"
    with the tokenizer itself, "auto" with tiktoken from FAST_BYTES of input on, when it can."""
    if encoder not in ENCODERS:
        raise BuildError([f"encoder {encoder!r}: choose one of {', '.join(ENCODERS)}"])
    try:
        return _plan(paths, cfg, registry, tokenizer_source=tokenizer_source, tokenizer=tokenizer, exclude=exclude,
                     jobs=jobs, progress=progress, write_rows=write_rows, encoder_choice=encoder)
    except EncoderMismatch as exc:
        raise BuildError([str(exc)]) from None


def _plan(paths: list[str], cfg: BuildConfig, registry: Registry, *, tokenizer_source: str | None,
          tokenizer, exclude: list[str] | None, jobs: int | None, progress, write_rows: bool,
          encoder_choice: str) -> Plan:
    tokenizer_source = tokenizer_source or cfg.tokenizer
    if tokenizer is None and not tokenizer_source:
        raise BuildError(["no tokenizer: give --tokenizer DIR (or set build.tokenizer in the config file)"])
    if cfg.mode == "chat" and cfg.speakers == "drop" and not cfg.assistant_speakers:
        pass  # roles still come from the speakers; only their names are not rendered
    try:
        policies = Policies(registry, cfg)
    except ValueError as exc:
        raise BuildError([str(exc)]) from None
    inputs = find_inputs(paths, exclude)

    def step(stage, total=None):
        return (lambda n: progress(stage, n, total)) if progress else None

    input_bytes = sum(os.path.getsize(p) for p, _ in inputs if os.path.isfile(p))
    fast = encoder_choice == "tiktoken" or (encoder_choice == "auto" and input_bytes >= FAST_BYTES)

    if tokenizer is None and tokenizer_source and not os.path.isdir(os.path.expanduser(tokenizer_source)):
        tokenizer = load_tokenizer(tokenizer_source)  # fail fast on a bad id before reading a large corpus
    # text mode renders in the readers; when the tokens to register are known before reading (no per-dialogue
    # speaker tokens), rendered texts are encoded as they arrive, overlapping the parse
    text_mode = cfg.mode == "text"
    streaming = text_mode and cfg.speakers != "token"
    tok_error: BaseException | None = None
    early: tuple | None = None  # (registration, stop, encoder) when encoding starts during reading
    if streaming:
        try:
            if tokenizer is None:
                tokenizer = load_tokenizer(tokenizer_source)
            early = start_encoding(tokenizer, policies, cfg, step("tokenizing"), fast=fast)
            if encoder_choice == "tiktoken":
                _must_be_fast(early[2].text_encoder)
        except TokenizerError as exc:
            tok_error = exc  # raised where it would have been: after the lint gate (no stop token: below)
            streaming = False
    stream = _stream(inputs, registry, cfg, jobs, text_mode, step("reading", input_bytes),
                     early[2].text_encoder if early else None)

    documents: list[dict] = []
    render_docs: list[dict] = []  # (text mode) entries of rendered documents, after every reading entry
    rendered: list[Rendered] = []
    by_doc: dict[str, list[Rendered]] = {}
    sources: list[SourceFile] = []
    errors: list[Diagnostic] = []
    duplicates = 0
    dup_reason: dict[str, str] = {}
    seen: dict[str, str] = {}

    def keep(r: Rendered) -> bool:
        """Exact dedup (after normalisation), before splitting: True when `r` is kept."""
        nonlocal duplicates
        if cfg.dedup:
            key = r.dedup_key()
            if key in seen:
                duplicates += 1
                dup_reason.setdefault(r.doc_id, f"duplicate of {seen[key]}")
                return False
            seen[key] = r.id
        rendered.append(r)
        return True

    groups: dict[str, str] = {}
    for s, results in stream:
        sources.append(s)
        groups.update(s.groups)
        errors.extend(s.errors)
        if s.file_broken:
            documents.append(_doc_entry(f"{s.key}", s.key, None, "dropped", "file has errors: " + "; ".join(
                f"{d.code}: {d.message}" for d in s.errors[:3])))
        for d in s.dropped:
            documents.append(_doc_entry(d.id, s.key, d.title, "dropped", d.reason))
        if results is None:
            continue
        refused = bool(errors) and not cfg.allow_errors  # the build will stop at the lint gate: no encoding
        for (doc_id, title), item in results:
            if item is None:
                render_docs.append(_doc_entry(doc_id, s.key, title, "dropped", "renders to no text"))
                continue
            r = item.r if isinstance(item, Piece) else item
            by_doc[doc_id] = [r]
            render_docs.append(_doc_entry(doc_id, s.key, title, "kept", None))
            if keep(r) and early is not None and not refused:
                if isinstance(item, Piece):
                    early[2].take([item])
                else:
                    early[2].add(r)
    errors.extend(inputs.revisited)  # a folder reached twice: lint's F007 error, so the build's gate too
    if errors and not cfg.allow_errors:
        raise LintRefusal(errors)
    if tok_error is not None and tokenizer is None:
        raise tok_error
    if tokenizer is None:
        tokenizer = load_tokenizer(tokenizer_source)
    tok = tokenizer

    # -- render (chat mode; text mode rendered while reading) ---------------------------------
    text_r = TextRenderer(policies, cfg.speakers)
    warnings: list[str] = []
    eot = None
    if cfg.mode == "chat":
        try:
            eot = chatmod.end_of_turn(tok)
        except chatmod.ChatError as exc:
            raise BuildError([str(exc)]) from None
        chat_r = chatmod.ChatRenderer(text_r, tok, cfg, eot)
        for s in sources:
            if s.file_broken:
                continue
            for doc in s.documents:
                try:
                    rs, problems = chat_r.conversations(doc, s.key)
                except chatmod.ChatError as exc:
                    rs, problems = [], [str(exc)]
                if not rs:
                    documents.append(_doc_entry(doc.id, s.key, doc.title, "dropped",
                                                "; ".join(problems) or "no dialogue (chat mode uses dialogues only)"))
                    continue
                by_doc[doc.id] = rs
                documents.append(_doc_entry(doc.id, s.key, doc.title, "kept", None))
                for r in rs:
                    keep(r)
            s.documents = []  # the trees are not needed any more
    documents += render_docs
    alive = {r.doc_id for r in rendered}
    for d in documents:
        if d["status"] == "kept" and d["id"] not in alive:
            d["status"], d["reason"] = "dropped", dup_reason.get(d["id"], "duplicate of an earlier document")

    # -- tokens ---------------------------------------------------------------------------------
    if early is not None:
        registration, stop, encoder = early
    else:
        wanted = policies.special_tokens()
        if cfg.speakers == "token":
            most = max([r.max_speakers for r in rendered] + [0])
            wanted += [speaker_token(i) for i in range(1, most + 1)]
        registration = register_tokens(tok, wanted)
    for c in registration.collisions:
        warnings.append(f"token collision: {c}")
    if early is None:
        try:
            stop = stop_token(tok, cfg.mode, eot)
        except TokenizerError as exc:
            raise BuildError([str(exc)]) from None
        encoder = _encoder(tok, cfg, stop[1], step("tokenizing", sum(len(r.text) for r in rendered)), fast)
        if encoder_choice == "tiktoken":
            _must_be_fast(encoder.text_encoder)
        for r in rendered:
            encoder.add(r)
    encoder.flush()  # so the sample's ids are there (the order of work does not change any result)
    sample = encoder.first_texts or [t for t in (r.full_text() for r in rendered[:ROUND_TRIP_SAMPLE])
                                     if len(t) <= encoder.long_chars]
    registration.whitespace = round_trip_problems(tok, sample, ids=encoder.first_ids)
    for w in registration.whitespace:
        warnings.append(f"tokenizer {w}")
    if getattr(tok, "clean_up_tokenization_spaces", False):
        warnings.append("the tokenizer's clean_up_tokenization_spaces is on: decoding with defaults changes "
                        "spacing around punctuation; decode with clean_up_tokenization_spaces=False")

    enc = encoder.finish()
    if cfg.mode == "chat":
        _split_long_conversations(enc, chat_r, tok, cfg, stop[1])
    for sid in enc.stop_missing:
        warnings.append(f"sequence {sid} does not end with the stop token {stop[0]}")

    # -- splits ---------------------------------------------------------------------------------
    doc_content = {}
    for rs in by_doc.values():
        for r in rs:
            doc_content.setdefault(r.doc_id, r.dedup_key())
    assignment = assign(enc.seqs, cfg.splits, cfg.seed, cfg.split_unit, doc_content, groups)
    splits: dict[str, list[Seq]] = {s: [] for s in SPLITS}
    for q in enc.seqs:
        splits[assignment.by_seq[q.id]].append(q)
    doc_split: dict[str, set[str]] = {}
    for name, qs in splits.items():
        for q in qs:
            doc_split.setdefault(q.doc_id, set()).add(name)
    tokens_by_doc: dict[str, int] = {}
    for r in rendered:
        tokens_by_doc[r.doc_id] = tokens_by_doc.get(r.doc_id, 0) + enc.doc_tokens.get(r.id, 0)
    lost_by_doc: dict[str, list[str]] = {}
    lost_tokens: dict[str, int] = {}
    for lost in enc.lost:
        lost_by_doc.setdefault(lost.doc_id, []).append(lost.reason)
        lost_tokens[lost.doc_id] = lost_tokens.get(lost.doc_id, 0) + lost.tokens
    mostly_lost: list[str] = []
    for d in documents:
        if d["status"] != "kept":
            continue
        d["tokens"] = tokens_by_doc.get(d["id"], 0)
        if d["id"] in groups:
            d["group"] = groups[d["id"]]
        names = doc_split.get(d["id"])
        if not names:
            d["status"] = "dropped"
            d["reason"] = "; ".join(lost_by_doc.get(d["id"], [])) or "no sequence left"
        else:
            d["split"] = "+".join(s for s in SPLITS if s in names)
            if d["id"] in lost_by_doc:
                d["reason"] = "partly lost: " + "; ".join(lost_by_doc[d["id"]])
                d["lost_tokens"] = lost_tokens[d["id"]]
                if d["tokens"] and lost_tokens[d["id"]] > MOSTLY_LOST * d["tokens"]:
                    d["mostly_lost"] = True  # kept in name only: say so, in the report too
                    mostly_lost.append(d["id"])
    if mostly_lost:
        warnings.append(f"{len(mostly_lost)} document(s) lost more than {MOSTLY_LOST:.0%} of their tokens to "
                        f"max_length ({', '.join(mostly_lost[:3])}{', …' if len(mostly_lost) > 3 else ''}): "
                        "their paragraphs or turns are longer than a row; break them up (lint F008)")

    for name in SPLITS:
        n = len(splits[name])
        if getattr(cfg.splits, name) > 0 and n < cfg.min_split_sequences:
            warnings.append(f"the {name} split has only {n} sequence{'s' * (n != 1)}: too small to mean much")

    # -- pack -----------------------------------------------------------------------------------
    rows: dict[str, list[list[int]]] = {}
    for name in SPLITS:
        rows[name] = pack_rows(splits[name], cfg.max_length, cfg.pack)
        for p in check_rows(splits[name], rows[name], stop[1], cfg.max_length):
            warnings.append(f"{name}: {p}")

    sizes = encoder.text_encoder.byte_lengths

    def items() -> Iterable[dict]:
        return (chat_items(splits["test"], tok, cfg.eval_context) if cfg.mode == "chat" else
                text_items(splits["test"], tok, cfg.eval_context, sizes=sizes))

    return Plan(cfg, tok, tokenizer_source or "(given)", registration, policies, stop, sources, documents, splits,
                rows, items, enc.lost, assignment.unit, inputs.skipped + assignment.notes, warnings, rendered,
                enc.doc_tokens, duplicates, "tokenizers" if encoder.text_encoder.fast is None else "tiktoken")


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
                   keep_first=ROUND_TRIP_SAMPLE if cfg.mode == "text" else 0, spill=True, fast=fast)


def _must_be_fast(text_encoder: TextEncoder) -> None:
    if text_encoder.fast is None:
        raise BuildError([f"--encoder tiktoken: tiktoken cannot reproduce this tokenizer's ids here "
                          f"({text_encoder.fast_reason}); build with --encoder auto or tokenizers"])


def _split_long_conversations(enc: Encoded, chat_r, tok, cfg: BuildConfig, stop_id: int) -> None:
    """Conversations longer than max_length are cut between messages (only after an assistant reply) into
    consecutive conversations that each keep the system message, filled greedily from per-message token
    estimates; a piece still too long is halved; a single exchange longer than a row is dropped and counted."""
    import numpy as np

    from malmungchi.prep.encode import loss_mask
    from malmungchi.prep.positions import token_starts

    pending = list(enc.too_long)
    enc.too_long = []
    backend = tok.backend_tokenizer
    part = 0
    while pending:
        r = pending.pop(0)
        msgs = r.messages or []
        system = msgs[:1] if msgs and msgs[0]["role"] == "system" else []
        rest = msgs[len(system):]
        total = enc.doc_tokens.get(r.id, 0)
        cut_points = [i + 1 for i, m in enumerate(rest[:-1]) if m["role"] == "assistant"]
        if cfg.long_documents == "drop" or not cut_points:
            enc.lost.append(Lost(r.id, total, f"conversation of {total} tokens is longer than max_length "
                                              f"{cfg.max_length}" + (" and has no place to cut" if not cut_points
                                                                     else ""), r.doc_id))
            continue
        sizes = [len(e.ids) for e in backend.encode_batch([m["content"] for m in msgs], add_special_tokens=False)]
        overhead = max(0, (total - sum(sizes)) // max(1, len(msgs)))
        sys_cost = sum(sizes[:len(system)]) + overhead * len(system)
        cost = [n + overhead for n in sizes[len(system):]]
        budget = cfg.max_length - sys_cost - 8
        pieces, start, used, last_cut = [], 0, 0, None
        for i, c in enumerate(cost):
            if used + c > budget and last_cut is not None and last_cut > start:
                pieces.append((start, last_cut))
                used = sum(cost[last_cut:i])
                start = last_cut
            used += c
            if i + 1 in cut_points or i + 1 == len(rest):
                last_cut = i + 1
        pieces.append((start, len(rest)))
        if len(pieces) == 1:  # the estimate fits but the real rendering does not: halve
            mid = min(cut_points, key=lambda k: abs(k - len(rest) / 2))
            pieces = [(0, mid), (mid, len(rest))]
        for a, b in pieces:
            half = rest[a:b]
            while half and half[-1]["role"] != "assistant":
                half = half[:-1]
            if not any(m["role"] == "assistant" for m in half):
                continue
            part += 1
            sub = chat_r.render(system + half, f"{r.doc_id}/c{part}", r.doc_id, r.source, r.title)
            sub.markers.clear()
            e = backend.encode(sub.text, add_special_tokens=False)
            enc.doc_tokens[sub.id] = len(e.ids)
            if len(e.ids) > cfg.max_length:
                pending.append(sub)
                continue
            ids = np.asarray(e.ids, dtype=np.int32)
            mask = loss_mask(token_starts(e), sub.loss or [], len(ids))
            if ids[-1] != stop_id:
                enc.stop_missing.append(sub.id)
            enc.seqs.append(Seq(sub.id, sub.doc_id, ids, mask, sub, 0, len(ids), enc.store))


def _doc_entry(id_: str, source: str, title: str | None, status: str, reason: str | None) -> dict:
    return {"id": id_, "source": source, "title": title, "split": None, "status": status, "reason": reason,
            "tokens": 0}


__all__ = ["BuildError", "LintRefusal", "Plan", "plan", "Dropped"]
