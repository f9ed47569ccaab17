"""Tokenize rendered documents in large batches and cut long ones at segment boundaries into sequences that each
end with the stop token.

`TextEncoder` turns a batch into `Piece`s (ids plus what is needed of the offsets) in a reader process or in
the main process; `Encoder` keeps them in order as sequences. Offsets are only computed or turned into Python
objects for documents that need them (too long, or chat loss spans; see `prep.positions`): for the rest only
the ids cross from Rust, which keeps the build close to a bare batch encode.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from malmungchi.prep.fastbpe import FastBPE, NotFast
from malmungchi.prep.ledger import LostKind
from malmungchi.prep.positions import byte_index, char_bytes, is_nfc_normalizer, token_byte_lengths, \
    token_byte_starts, token_index, token_starts, tokens_added_before, trims_offsets
from malmungchi.prep.render import Rendered, measure
from malmungchi.prep.spill import TextStore, TokenStore

T = TypeVar("T")
BATCH_CHARS = 4 << 20  # characters per encode batch: big enough for the thread pool, small enough for memory
CHECK_CHARS = 4096  # characters of each batch that the tokenizer encodes too, to compare with tiktoken's ids


class EncoderMismatch(Exception):
    """tiktoken's ids differed from the tokenizer's on a text (never seen on an accepted tokenizer)."""


class Seq:
    """One training sequence (a whole document/conversation or a chunk of one). Its ids (int32) and loss mask
    (int8; None means all ones, as in text mode) are held in memory, or with a `TokenStore` in its temporary file
    and read back on each access: use `n` for the length and `has_mask` to test for a mask."""

    __slots__ = ("id", "doc_id", "src", "tok_start", "tok_end", "n", "last", "has_mask", "_ids", "_mask", "_store",
                 "_at")

    def __init__(self, id: str, doc_id: str, ids: np.ndarray, mask: np.ndarray | None, src: Rendered,
                 tok_start: int = 0, tok_end: int = 0, store: TokenStore | None = None):
        self.id, self.doc_id, self.src = id, doc_id, src
        self.tok_start, self.tok_end = tok_start, tok_end  # where the chunk lies in its document's token stream
        self.n, self.has_mask = len(ids), mask is not None
        self.last = int(ids[-1]) if len(ids) else -1  # the stop token, unless something cut it
        self._store = store
        if store is None:
            self._ids, self._mask = ids, mask
        else:
            self._ids = self._mask = None
            self._at = store.put(ids, mask)

    @property
    def ids(self) -> np.ndarray:
        return self._ids if self._store is None else self._store.ids(self._at[0], self.n)

    def ids_into(self, out: np.ndarray) -> None:
        """Copy the ids into `out` (int32, `n` long), read from the temporary file straight into it when spilled."""
        if self._store is None:
            out[:] = self._ids
        else:
            self._store.ids_into(self._at[0], out)

    @property
    def mask(self) -> np.ndarray | None:
        if self._store is None or not self.has_mask:
            return self._mask
        return self._store.mask(self._at[1], self.n)

    def __repr__(self) -> str:
        return f"Seq({self.id!r}, {self.n} tokens)"


@dataclass
class Lost:
    id: str
    tokens: int
    reason: str
    doc_id: str = ""
    kind: LostKind = LostKind.SEGMENT


@dataclass
class Encoded:
    seqs: list[Seq] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    doc_tokens: dict[str, int] = field(default_factory=dict)  # rendered id → tokens before chunking
    too_long: list[Rendered] = field(default_factory=list)  # chat conversations to split and encode again
    stop_missing: list[str] = field(default_factory=list)
    store: TokenStore | None = None  # where the sequences' ids are, when not in memory
    texts: TextStore | None = None  # where encoded texts went (text mode), when not in memory


def batches(items: Iterable[T], limit: int, size: Callable[[T], int]) -> Iterator[list[T]]:
    """Consecutive groups of `items` whose sizes add up to at least `limit` (the last may be smaller); lazy."""
    batch, total = [], 0
    for item in items:
        batch.append(item)
        total += size(item)
        if total >= limit:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


class Piece:
    """One rendered text as tokenized, with what the rest of the build needs from the Rust encoding, so that only
    numbers cross from a reader process: its ids (int32, as the tokenizer gave them; None when every segment was
    too long to tokenize), and the token index of each cut and gap (text mode, only for a text that must be cut)
    or its loss mask (chat mode)."""

    __slots__ = ("r", "ids", "at", "mask", "skipped")

    def __init__(self, r: Rendered, ids: np.ndarray | None, at: list[int] | None = None,
                 mask: np.ndarray | None = None, skipped: list[Lost] | None = None):
        self.r, self.ids, self.at, self.mask, self.skipped = r, ids, at, mask, skipped or []


class TextEncoder:
    """Rendered texts → `Piece`s with one batch encode; the same in the main process (the Rust tokenizer's thread
    pool does the work) and in a reader process (single-threaded, one per core).

    With a byte-level BPE tokenizer (Qwen, Llama 3, GPT-2 style) that adds nothing after the text, the batch is
    encoded without offsets (`encode_batch_fast`, about 15% less work): where a long text must be cut (text mode),
    its cut positions are found from each token's length in bytes instead, and so is where each token starts for
    a chat loss mask (unless the tokenizer trims its offsets, `positions.trims_offsets`: then the offsets), a
    mapping that is checked on every such text (the tokens' bytes must add up to the text's) and replaced by a
    normal encode when it fails.

    Given `fast_from` (the transformers tokenizer), such a tokenizer's ids come from tiktoken's BPE where it
    reproduces them (`fast`, see `fastbpe`); where it does not, `fast_reason` says why."""

    def __init__(self, backend, *, mode: str, max_length: int, stop_id: int, long_documents: str,
                 fast_from=None):
        """fast_from: the transformers tokenizer whose backend this is, to encode with tiktoken where it can."""
        self.backend = backend
        self.mode, self.max_length, self.stop_id, self.long_documents = mode, max_length, stop_id, long_documents
        self._long_chars: int | None = None
        self._bytes: np.ndarray | None | bool = False  # False: not looked at yet
        self._no_bytes = ""  # why there are none (once looked at)
        self._fast_from = fast_from
        self._fast: FastBPE | None | bool = False
        self.before = tokens_added_before(backend) if mode == "text" else 0  # a BOS, say: no bytes of the text
        self.fast_reason = "not asked for" if fast_from is None else ""

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_bytes": False, "_fast": False}  # workers build their own table and tiktoken

    @property
    def fast(self) -> FastBPE | None:
        """tiktoken's BPE for this tokenizer, when asked for and it gives the same ids."""
        if self._fast is False:
            self._fast = None
            if self._fast_from is not None:
                try:
                    if self.byte_lengths is None:
                        raise NotFast(self._no_bytes)
                    self._fast = FastBPE.of(self._fast_from, self.backend)
                except NotFast as exc:
                    self.fast_reason = str(exc)
        return self._fast

    @property
    def long_chars(self) -> int:
        """Segments longer than this many characters are never tokenized (see hopeless_chars)."""
        if self._long_chars is None:
            sizes = self.byte_lengths  # a token's bytes are at least its characters: the same bound, no vocab walk
            self._long_chars = hopeless_chars(self.backend, self.max_length, None if sizes is None else
                                              int(sizes.max(initial=1)))
        return self._long_chars

    def prepare(self) -> None:
        """Compute the byte table and the long-segment limit now (each walks the vocabulary), so that reader
        processes forked afterwards inherit them instead of each computing its own."""
        self.byte_lengths, self.long_chars, self.fast  # noqa: B018

    @property
    def byte_lengths(self) -> np.ndarray | None:
        """Each token id's length in UTF-8 bytes, when the tokenizer makes token bytes add up to the text's."""
        if self._bytes is False:
            # chat mode's loss masks start where the offsets do: not from bytes when the offsets are trimmed
            trimmed = self.mode == "chat" and trims_offsets(self.backend)
            self._no_bytes = "chat mode's loss masks need its offsets, which it trims" if trimmed else \
                "it is not a byte-level BPE that adds nothing after the text"
            self._bytes = None if trimmed else \
                token_byte_lengths(self.backend, getattr(self._fast_from, "_vocab", None))
        return self._bytes

    def encode(self, items: list[Rendered]) -> list[Piece]:
        text_mode = self.mode == "text"
        todo: list[tuple[Rendered, list[Lost]]] = []
        for r in items:
            lost: list[Lost] = []
            if text_mode and len(r.text) > 2 * self.max_length and len(r.text) > self.long_chars:
                r, lost = _without_long_segments(r, self.long_chars, self.backend, self.max_length)
                if lost and self.long_documents == "drop":
                    n = sum(x.tokens for x in lost) + len(self.backend.encode(r.text, add_special_tokens=False).ids)
                    lost = [Lost(r.id, n, f"document of about {n} tokens is longer than max_length "
                                          f"{self.max_length} (--long-documents drop)", r.doc_id, LostKind.DOCUMENT)]
                    r = replace(r, text="", cuts=[], turns=[], gaps=[])
            todo.append((r, lost))
        sizes = self.byte_lengths
        texts = [r.text for r, _ in todo]
        if sizes is None:
            encs = self.backend.encode_batch(texts, add_special_tokens=text_mode)
        else:
            encs = encode_fast(self.backend, texts, add_special_tokens=text_mode, fast=self.fast)
        out = []
        for i, (r, lost) in enumerate(todo):
            enc, encs[i] = encs[i], None  # free each Rust encoding (ids, offsets, tokens) as soon as it is used
            if lost and not r.text.strip():
                out.append(Piece(r, None, skipped=lost))
                continue
            ids = enc if sizes is not None else np.asarray(enc.ids, dtype=np.int32)
            at = mask = None
            if text_mode:
                n = len(ids) + (not len(ids) or ids[-1] != self.stop_id)  # with the stop token
                if (n > self.max_length or r.gaps) and self.long_documents != "drop":
                    where = [c for c in r.cuts if c > 0] + list(r.gaps)
                    hi = min(n - 1, len(ids))
                    at = None if sizes is None else byte_index(r.text, ids, sizes, where, hi, self.before)
                    if at is None:
                        at = token_index(enc if sizes is None else self.backend.encode(r.text), where, hi)
            elif len(ids) <= self.max_length:
                mask = self._loss_mask(r, ids, enc if sizes is None else None)
            out.append(Piece(r, ids, at, mask, lost))
        return out

    def plain_ids(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's int32 ids without special tokens, as `encode_batch_fast` gives them (tiktoken's where it
        applies)."""
        return encode_fast(self.backend, texts, add_special_tokens=False, fast=self.fast)

    def _loss_mask(self, r: Rendered, ids: np.ndarray, enc) -> np.ndarray:
        """Chat mode: 1 for each token that starts in a loss span of `r`. Where tokens start comes from their byte
        lengths when the encoding has no offsets (`enc` None; a byte-level BPE token that starts inside a
        character counts as starting at that character, as the offsets have it, so both give the same mask), and
        from the offsets of an encode of the text again when the bytes do not add up (a text that is not NFC)."""
        spans = r.loss or []
        starts = None if enc is not None else token_byte_starts(r.text, ids, self.byte_lengths)
        if starts is not None:
            spans = char_bytes(r.text, [x for span in spans for x in span]).reshape(-1, 2).tolist()
        else:
            starts = token_starts(enc if enc is not None else self.backend.encode(r.text, add_special_tokens=False))
        return loss_mask(starts, spans, len(ids))


def encode_fast(backend, texts: list[str], add_special_tokens: bool, fast: FastBPE | None = None
                ) -> list[np.ndarray]:
    """The int32 ids of each text as `encode_batch_fast` gives them, the fastest way there is: tiktoken's BPE
    (`fast`) where it applies; else the tokenizer, skipping its normalizer for the texts it would leave as they
    are: when it is NFC alone and a text is already NFC (Python's quick check, microseconds per megabyte),
    normalizing copies the text and tracks alignments for nothing, 5-10% of the encode's time on Korean text.

    With `fast`, a slice of one text per call is encoded both ways and must give the same ids, else
    EncoderMismatch."""
    out: list[np.ndarray | None] = fast.encode(texts, special=add_special_tokens) if fast is not None else \
        [None] * len(texts)
    if fast is not None and texts:
        k = len(texts) // 2
        if out[k] is not None and fast.same_as(backend, [texts[k][:CHECK_CHARS]], add_special_tokens) is not None:
            raise EncoderMismatch(f"tiktoken's ids differ from the tokenizer's on this text: "
                                  f"{texts[k][:80]!r}...; build with --encoder tokenizers (and please report it)")
    rest = [i for i, x in enumerate(out) if x is None]
    if not rest:
        return out  # type: ignore[return-value]
    todo = [texts[i] for i in rest]
    if not is_nfc_normalizer(backend.normalizer):
        encs = backend.encode_batch_fast(todo, add_special_tokens=add_special_tokens)
    else:
        encs = [None] * len(todo)
        plain = [j for j, t in enumerate(todo) if unicodedata.is_normalized("NFC", t)]
        if plain:
            norm = backend.normalizer
            backend.normalizer = None
            try:
                got = backend.encode_batch_fast([todo[j] for j in plain], add_special_tokens=add_special_tokens)
            finally:
                backend.normalizer = norm
            for j, e in zip(plain, got):
                encs[j] = e
        left = [j for j, e in enumerate(encs) if e is None]
        if left:
            for j, e in zip(left, backend.encode_batch_fast([todo[j] for j in left],
                                                            add_special_tokens=add_special_tokens)):
                encs[j] = e
    for i, e in zip(rest, encs):
        out[i] = np.asarray(e.ids, dtype=np.int32)
    return out  # type: ignore[return-value]


class Encoder:
    """Encode rendered items as they come, in batches of about `batch_chars` characters (one Rust
    `encode_batch` call each); the result is the same whatever the batching, in the order items were added."""

    def __init__(self, tok, *, mode: str, max_length: int, stop_id: int, long_documents: str, progress=None,
                 batch_chars: int = BATCH_CHARS, keep_first: int = 0, spill: bool = False, fast: bool = False):
        """spill: keep sequences' ids (and, in text mode, texts once encoded) in temporary files, not memory.
        fast: encode with tiktoken's BPE where it gives the tokenizer's ids (see `TextEncoder`)."""
        self.out = Encoded()
        if spill:
            self.out.store = TokenStore()
            self.out.texts = TextStore() if mode == "text" else None
        backend = tok.backend_tokenizer
        self.text_encoder = TextEncoder(backend, mode=mode, max_length=max_length, stop_id=stop_id,
                                        long_documents=long_documents, fast_from=tok if fast else None)
        self.kw = dict(mode=mode, max_length=max_length, stop_id=stop_id, long_documents=long_documents)
        self.progress = progress
        self.batch_chars = batch_chars
        self.pending: list[Rendered] = []
        self.size = 0
        # the plain ids (as encoded without special tokens) of the first `keep_first` items, for the round-trip
        # check; only kept when adding special tokens adds none, so they are the same ids
        self.keep_first = keep_first if not (mode == "text" and backend.num_special_tokens_to_add(False)) else 0
        self.first_ids: list[np.ndarray] = []
        self.first_texts: list[str] = []  # the texts first_ids encode

    @property
    def long_chars(self) -> int:
        return self.text_encoder.long_chars

    def add(self, r: Rendered) -> None:
        self.pending.append(r)
        self.size += len(r.text)
        if self.size >= self.batch_chars:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch, size = self.pending, self.size
        self.pending, self.size = [], 0
        self.take(self.text_encoder.encode(batch), size)

    def take(self, pieces: list[Piece], size: int | None = None) -> None:
        """Keep encoded texts (from `flush`, or from a reader process that encoded them with its own
        `TextEncoder`), in order; `size` is the characters they stand for (for progress)."""
        if self.pending:
            self.flush()  # what was added before comes first
        if size is None:
            size = sum(len(p.r.text) for p in pieces)  # counted before the texts are spilled
        out, kw = self.out, self.kw
        for p in pieces:
            r = p.r
            out.lost.extend(p.skipped)
            if p.ids is None:  # every segment was too long to tokenize
                out.doc_tokens[r.id] = sum(x.tokens for x in p.skipped)
                continue
            if len(self.first_ids) < self.keep_first:
                self.first_ids.append(p.ids)
                self.first_texts.append(r.text)
            _one(p, out, **kw)
            if out.texts is not None:
                r.spill(out.texts)
            if p.skipped:
                out.doc_tokens[r.id] += sum(x.tokens for x in p.skipped)
        if self.progress:
            self.progress(size)

    def finish(self) -> Encoded:
        self.flush()
        return self.out


def hopeless_chars(backend, max_length: int, longest: int | None = None) -> int:
    """A segment longer than this many characters cannot fit in a row whatever its tokenization: no token
    covers more characters than its longest vocabulary entry is long (twice that, for normalizers that shrink).
    `longest`: that length when the caller knows it (or a bound above it)."""
    if longest is None:
        longest = max((len(t) for t in backend.get_vocab(with_added_tokens=True)), default=1)
    return max_length * max(1, longest) * 2


def _without_long_segments(r: Rendered, limit: int, backend, max_length: int) -> tuple[Rendered, list[Lost]]:
    """`r` without its segments longer than `limit` characters (each is lost anyway, being longer than a row),
    so a 50 MB paragraph is never tokenized whole; a Lost per segment, its token count estimated from a sample."""
    n = len(r.text)
    bounds = sorted({0, n, *(c for c in r.cuts if 0 < c < n)})
    drop = [(a, b) for a, b in zip(bounds, bounds[1:]) if b - a > limit]
    if not drop:
        return r, []
    lost = []
    for a, b in drop:
        sample = r.text[a:a + min(b - a, 1 << 16)]
        est = max(max_length + 1, round(len(backend.encode(sample, add_special_tokens=False).ids) * (b - a)
                                        / max(1, len(sample))))
        lost.append(Lost(f"{r.id}@chars{a}-{b}", est, f"one segment of about {est} tokens ({b - a} characters) "
                                                      f"is longer than max_length {max_length}", r.doc_id))

    def outside(x: int, end: int | None = None) -> bool:
        end = x if end is None else end
        return all(end <= a or x >= b for a, b in drop)

    def shift(x: int) -> int:
        return x - sum(b - a for a, b in drop if b <= x)

    pieces, at = [], 0
    for a, b in drop:
        pieces.append(r.text[at:a])
        at = b
    pieces.append(r.text[at:])
    cuts = sorted({shift(c) for c in r.cuts if outside(c)} | {shift(a) for a, _ in drop})
    keep = [outside(t, e) for t, _, e in r.turns]
    turns = [(shift(t), shift(c), shift(e)) for (t, c, e), k in zip(r.turns, keep) if k]
    answers = r.answers()  # read from the text as it was
    answers = [a for a, k in zip(answers, keep + [True] * (len(answers) - len(keep))) if k]
    gaps = sorted({shift(g) for g in r.gaps} | {shift(a) for a, _ in drop})
    kept = replace(r, text="".join(pieces), cuts=cuts, turns=turns, gaps=gaps, canon_answers=answers)
    measure(kept)  # the report's tokens per syllable are over the text that is tokenized
    return kept, lost


def loss_mask(starts: np.ndarray, spans: list[tuple[int, int]], n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=np.int8)
    for s, e in spans:
        a, b = np.searchsorted(starts, s, "left"), np.searchsorted(starts, e, "left")
        mask[a:b] = 1
    return mask


def _one(p: Piece, out: Encoded, *, mode: str, max_length: int, stop_id: int, long_documents: str) -> None:
    r, ids = p.r, p.ids
    if mode == "text":
        if not len(ids) or ids[-1] != stop_id:
            ids = np.append(ids, np.int32(stop_id))
        out.doc_tokens[r.id] = len(ids)
        if len(ids) <= max_length and not r.gaps:
            out.seqs.append(Seq(r.id, r.doc_id, ids, None, r, 0, len(ids), out.store))
            return
        if long_documents == "drop":
            out.lost.append(Lost(r.id, len(ids), f"document of {len(ids)} tokens is longer than max_length "
                                                 f"{max_length} (--long-documents drop)", r.doc_id, LostKind.DOCUMENT))
            return
        _chunk(r, ids, p.at, out, max_length, stop_id)
        return
    # chat
    out.doc_tokens[r.id] = len(ids)
    if len(ids) > max_length:
        out.too_long.append(r)
        return
    if not len(ids) or ids[-1] != stop_id:
        out.stop_missing.append(r.id)
    out.seqs.append(Seq(r.id, r.doc_id, ids, p.mask, r, 0, len(ids), out.store))


def _chunk(r: Rendered, ids: np.ndarray, at: list[int], out: Encoded, max_length: int, stop_id: int) -> None:
    """Cut at segment starts only: each chunk holds whole segments and ends with the stop token. A cut at
    character c falls before the first token starting at or after c (`at`, from `token_index`, holds those
    token indices for the cuts after 0 and then the gaps)."""
    body = ids[:-1]  # the stop token is re-added to every chunk
    n = len(body)
    n_cuts = sum(1 for c in r.cuts if c > 0)
    bounds = sorted(set(at[:n_cuts]) | {0, n})
    bounds = [b for b in bounds if b <= n]
    gaps = set(at[n_cuts:])
    room = max_length - 1
    chunks: list[tuple[int, int]] = []
    start = end = 0
    for s, e in zip(bounds, bounds[1:]):
        if s in gaps and end > start:  # a segment too long for any row was here (taken out before encoding)
            chunks.append((start, end))
            start = end = s
        if e - s > room:
            # one segment (paragraph or turn) alone is longer than a row; it is never cut inside, so it goes
            if end > start:
                chunks.append((start, end))
            out.lost.append(Lost(f"{r.id}@tokens{s}-{e}", e - s,
                                 f"one segment of {e - s} tokens is longer than max_length {max_length}", r.doc_id))
            start = end = e
            continue
        if e - start > room:
            if end > start:
                chunks.append((start, end))
            start = s
        end = e
    if end > start:
        chunks.append((start, end))
    for k, (a, b) in enumerate(chunks):
        out.seqs.append(Seq(f"{r.id}@{k}", r.doc_id, np.append(body[a:b], np.int32(stop_id)), None, r, a, b,
                            out.store))
