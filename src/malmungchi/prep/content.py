"""`eval/content.parquet`: which characters of each test token are content, for content bits per character.

Content is the document's text without its markers: every character of the rendered text except those a marker
rendered to (`<|sound|>`, `|SOUND|>`, a `replace:` string, a speaker token). Cue text (`(웃음)`), speaker names
and separators are content. In chat mode only the assistant messages are (what the model is trained to write:
the loss spans), without the end-of-turn token; the chat template's scaffolding is the same under every policy. For every test sequence (text mode) the file holds its token ids and, per token,
how many of the characters it covers are content (`content_chars`) and their UTF-8 bytes (`content_bytes`); a
token that covers only marker text has 0, one that mixes both counts its share. The stop token and a BOS cover
no text. `malmungchi.eval.bpc` sums the model's loss in bits over tokens weighted by their share and divides by
the content's characters: a figure comparable across marker policies and tokenizers (lm-evaluation-harness's
`bits_per_byte` is the anchor).

Cost: numpy cumulative sums per document. Where tokens start comes from the ids the build has (their byte lengths,
`positions.token_byte_lengths`, when the document's sequences hold all of them); otherwise the document is
encoded again with offsets. Both give the same starts: a token starts at the character holding its first byte.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import regex

from malmungchi.prep import arrays
from malmungchi.prep.encode import Seq
from malmungchi.prep.evalset import known_starts
from malmungchi.prep.policies import Policies, speaker_token
from malmungchi.prep.positions import tokens_added_before

SCHEMA = pa.schema([("id", pa.string()), ("doc_id", pa.string()), ("input_ids", pa.list_(pa.int32())),
                    ("chars", pa.list_(pa.int16())), ("content_chars", pa.list_(pa.int16())),
                    ("content_bytes", pa.list_(pa.int16()))])
MAX_SPEAKERS = 64  # speaker tokens looked for (`<|speaker_N|>`)


def marker_pattern(policies: Policies, speaker_tokens: bool, eot: str | None = None) -> regex.Pattern | None:
    """What markers render to in this build (and the end-of-turn token), longest first; None when nothing is
    rendered for any."""
    strings = {i.rendered for i in policies.info.values() if i.rendered} | ({eot} if eot else set())
    if speaker_tokens:
        strings |= {speaker_token(n) for n in range(1, MAX_SPEAKERS + 1)}
    if not strings:
        return None
    return regex.compile("|".join(regex.escape(s) for s in sorted(strings, key=len, reverse=True)))


def content_mask(text: str, pattern: regex.Pattern | None, spans: list[tuple[int, int]] | None = None
                 ) -> np.ndarray:
    """1 for each character of `text` that is content, 0 for marker characters (and, given `spans`, for every
    character outside them)."""
    if spans is None:
        mask = np.ones(len(text), dtype=np.int8)
    else:
        mask = np.zeros(len(text), dtype=np.int8)
        for a, b in spans:
            mask[a:b] = 1
    if pattern is not None:
        for m in pattern.finditer(text):
            mask[m.start():m.end()] = 0
    return mask


def content_table(seqs: Iterable[Seq], tok, policies: Policies, speaker_tokens: bool = False,
                  eot: str | None = None, sizes: np.ndarray | None = None) -> tuple[pa.Table, int]:
    """The test sequences' rows (see the module docstring) and how many sequences were left out because their
    ids could not be lined up with the text encoded again (a segment taken out as too long). `eot`: chat mode's
    end-of-turn token (content is then the loss spans without it). `sizes`: token byte lengths (text mode), to
    take token starts from the build's ids instead of encoding the text again."""
    pattern = marker_pattern(policies, speaker_tokens, eot)
    backend = tok.backend_tokenizer
    shift = tokens_added_before(backend)
    by_doc: dict[str, list[Seq]] = {}
    for q in seqs:
        by_doc.setdefault(q.src.id, []).append(q)
    rows: dict[str, list] = {name: [] for name in SCHEMA.names}
    skipped = 0
    for chunks in by_doc.values():
        r = chunks[0].src
        text = r.full_text()
        utf8 = utf8_lengths(text)
        known = None if sizes is None or eot is not None else _starts_from_ids(text, chunks, sizes, shift, utf8)
        if known is not None:
            ids, starts = known
        else:
            enc = backend.encode(text, add_special_tokens=False)
            ids = np.asarray(enc.ids, dtype=np.int64)
            starts = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)[:, 0]
        per_token = _per_token(text, utf8, starts, pattern, r.loss if eot is not None else None)
        for q in sorted(chunks, key=lambda q: q.tok_start):
            got = _line_up(q, ids, per_token, shift)
            if got is None:
                skipped += 1
                continue
            rows["id"].append(q.id)
            rows["doc_id"].append(q.src.id)  # the unit: a document, or a piece of one (chunk split unit)
            rows["input_ids"].append(q.ids.astype(np.int32))
            rows["chars"].append(got[0])
            rows["content_chars"].append(got[1])
            rows["content_bytes"].append(got[2])
    columns = [arrays.strings(rows["id"]), arrays.strings(rows["doc_id"]),
               arrays.list_of_arrays(rows["input_ids"], np.int32)]
    columns += [arrays.list_of_arrays(rows[name], np.int16) for name in ("chars", "content_chars", "content_bytes")]
    return pa.Table.from_arrays(columns, schema=SCHEMA), skipped


def _starts_from_ids(text: str, chunks: list[Seq], sizes: np.ndarray, shift: int, utf8: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """(the text's ids, the character each starts at) from the document's sequences (`evalset.known_starts`),
    or None when they do not hold the whole text. A token starts at the character that holds its first byte, as
    the tokenizer's offsets say. `utf8`: `utf8_lengths(text)`."""
    byte_starts = known_starts(text, chunks, sizes, shift)
    if byte_starts is None:
        return None
    char_at = np.zeros(len(text) + 1, dtype=np.int64)  # the byte offset of each character position
    np.cumsum(utf8, out=char_at[1:])
    chunks = sorted(chunks, key=lambda q: q.tok_start)
    ids = np.concatenate([q.ids[:q.tok_end - q.tok_start] for q in chunks])[shift:shift + len(byte_starts)]
    return ids.astype(np.int64), np.searchsorted(char_at, byte_starts, "right") - 1


def utf8_lengths(text: str) -> np.ndarray:
    """The UTF-8 length of each character of `text` (1-4; a lone surrogate counts 3, as Python encodes none)."""
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return 1 + (points >= 0x80).astype(np.int64) + (points >= 0x800) + (points >= 0x10000)


def _per_token(text: str, utf8: np.ndarray, starts: np.ndarray, pattern, spans=None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Characters, content characters and content bytes of every token, from the character each token starts at
    (`utf8`: `utf8_lengths(text)`)."""
    mask = content_mask(text, pattern, spans)
    cum_c = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    cum_b = np.concatenate([[0], np.cumsum(utf8 * mask, dtype=np.int64)])
    if not len(starts):
        return np.zeros(0, np.int16), np.zeros(0, np.int16), np.zeros(0, np.int16)
    # a token covers the text from its start to the next token's, so every character counts once: the spaces a
    # SentencePiece tokenizer leaves out of its offsets, and a character split into byte-level pieces (which
    # share a start: the last piece gets it)
    starts = np.maximum.accumulate(starts)
    starts[0] = 0
    ends = np.append(starts[1:], len(text))
    return ((ends - starts).astype(np.int16), (cum_c[ends] - cum_c[starts]).astype(np.int16),
            (cum_b[ends] - cum_b[starts]).astype(np.int16))


def _line_up(q: Seq, ids: np.ndarray, per_token: tuple[np.ndarray, ...], shift: int):
    """(chars, content_chars, content_bytes) for the tokens of `q`, or None when its ids are not the text's."""
    # the document's tokens this sequence holds: a chunk's span leaves out the stop token added to it, a whole
    # document's counts it
    n_body = min(q.tok_end - q.tok_start, q.n - 1)
    lo = q.tok_start - shift
    hi = lo + n_body
    body = q.ids[:n_body]
    lead = max(0, -lo)  # a BOS at the document's start covers no text
    if hi > len(ids) or not np.array_equal(body[lead:], ids[max(lo, 0):hi]):
        return None
    out = []
    for column in per_token:
        x = np.zeros(q.n, dtype=np.int16)
        x[lead:n_body] = column[max(lo, 0):hi]
        out.append(x)
    return tuple(out)
