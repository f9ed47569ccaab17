"""Load the tokenizer offline, register marker/speaker tokens, and describe what that did to the vocabulary.

Loading never touches the network: a directory is read as it is, anything else is tried as a hub id from the
local cache only (`local_files_only`, the hub offline while it loads: `malmungchi.offline`), so a missing tokenizer
is one clear error, not a hang.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import regex

from malmungchi.errors import UserError
from malmungchi.offline import hub_offline

HUB_ID = regex.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


class TokenizerError(UserError):
    """The tokenizer could not be loaded or used; the message is one line naming the path or id."""


def load_tokenizer(source: str):
    """A fast tokenizer from a local directory (or a cached hub id), without network access."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    with hub_offline():
        return _load_tokenizer(source)


def _load_tokenizer(source: str):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast  # slow import: only when needed
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    path = Path(source).expanduser()
    if not path.exists() and not HUB_ID.fullmatch(source):
        raise TokenizerError(f"tokenizer {source!r}: no such directory")
    if path.is_file():
        raise TokenizerError(f"tokenizer {source!r}: is a file; give the directory holding tokenizer.json")
    try:
        tok = AutoTokenizer.from_pretrained(str(path) if path.is_dir() else source, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError… depending on what is missing
        where = "directory" if path.is_dir() else "hub id (offline: only the local cache is searched)"
        raise TokenizerError(f"cannot load tokenizer from {where} {source!r}: {_first_line(exc)}") from None
    if not getattr(tok, "is_fast", False):
        raise TokenizerError(f"tokenizer {source!r} has no fast (Rust) tokenizer.json; the build needs one")
    if path.is_dir() and (path / "config.json").is_file() and _mangles_hangul(tok):
        # KoGPT2-style folders: transformers 5 picks a byte-level class from config.json that garbles Korean
        tok = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    problem = encoding_problem(tok)
    if problem:
        hint = " (no tokenizer.json in that folder?)" if path.is_dir() and not (path / "tokenizer.json").is_file() \
            else ""
        raise TokenizerError(f"tokenizer {source!r}: {problem}{hint}; the build would lose the text")
    return tok


MIN_VOCAB = 256  # a byte-level BPE has at least its 256 bytes; anything smaller cannot cover Korean text
PROBE = "안녕하세요, 할머니. 오늘은 비가 와서 우산을 챙겼어요!"


def encoding_problem(tok) -> str | None:
    """Why `tok` cannot encode a Korean corpus, or None. transformers falls back to a tokenizer built from
    `tokenizer_config.json` alone when `tokenizer.json` is missing: 26 tokens that drop every Hangul syllable,
    so a whole corpus becomes a few marker tokens and the unknown rate reads 0%."""
    if len(tok) < MIN_VOCAB:
        return f"only {len(tok)} tokens in its vocabulary (at least {MIN_VOCAB} expected)"
    ids = tok(PROBE, add_special_tokens=False)["input_ids"]
    if tok.unk_token_id is not None and tok.unk_token_id in ids:
        unknown = sum(i == tok.unk_token_id for i in ids)
        return f"encodes Korean as unknown tokens ({unknown} of {len(ids)} in {PROBE!r})"
    back = tok.decode(ids, clean_up_tokenization_spaces=False)
    if _hangul(back) != _hangul(PROBE):
        return f"does not round-trip Korean text ({PROBE!r} decodes to {back!r})"
    return None


def _hangul(text: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFC", text) if "\uac00" <= c <= "\ud7a3")


def _mangles_hangul(tok) -> bool:
    probe = "안녕하세요 철수"
    ids = tok(probe, add_special_tokens=False)["input_ids"]
    return tok.decode(ids, clean_up_tokenization_spaces=False).strip() != probe


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


@dataclass
class Registration:
    """What registering the build's tokens did: ids, collisions with the existing vocabulary, vocab sizes."""

    vocab_before: int
    vocab_after: int = 0
    added: dict[str, int] = field(default_factory=dict)  # token → id, in registration order
    reused: dict[str, int] = field(default_factory=dict)  # already in the vocabulary before the build
    collisions: list[str] = field(default_factory=list)  # human-readable problems
    whitespace: list[str] = field(default_factory=list)  # round-trip problems found on rendered text


def register_tokens(tok, tokens: list[str]) -> Registration:
    """Register `tokens` as added tokens (one id each, never normalized or stripped) and check them.

    They are added as *non-special* tokens (`AddedToken(special=False, normalized=False)`): still one id each,
    matched before any normalizer, but kept by `decode(skip_special_tokens=True)`, the default of lm-eval, vLLM and
    most tutorials; registered as special tokens, the markers vanished from every model output decoded that way."""
    from tokenizers import AddedToken

    reg = Registration(vocab_before=len(tok))
    backend = tok.backend_tokenizer  # looked up one token at a time: the whole vocabulary is 0.2 s to build
    existing_special = set(tok.all_special_tokens) | {t.content for t in tok.added_tokens_decoder.values()}
    new = []
    for t in tokens:
        known = backend.token_to_id(t)
        if known is not None:
            reg.reused[t] = known
            if t not in existing_special:
                reg.collisions.append(f"{t} is already an ordinary vocabulary entry (id {known}); it is "
                                      "reused as the marker's token, so text that spelled it out now maps to one id")
        else:
            new.append(AddedToken(t, special=False, normalized=False, lstrip=False, rstrip=False, single_word=False))
    if new:
        tok.add_tokens(new, special_tokens=False)
    for t in tokens:
        ids = tok.encode(t, add_special_tokens=False)
        if len(ids) != 1:
            reg.collisions.append(f"{t} encodes to {len(ids)} ids {ids} instead of one")
        elif t not in reg.reused:
            reg.added[t] = ids[0]
    reg.vocab_after = len(tok)
    return reg


def round_trip_problems(tok, texts: list[str], limit: int = 5, ids: list[list[int]] | None = None) -> list[str]:
    """Texts whose encode→decode is not exact (with `clean_up_tokenization_spaces` off), first `limit` shown.
    `ids`: the texts' ids (without special tokens) when already encoded."""
    out = []
    backend = tok.backend_tokenizer  # its decode is what tok.decode(…, clean_up_tokenization_spaces=False) calls,
    # minus the per-element conversion of the ids
    if ids is None or len(ids) != len(texts):
        ids = [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
    ids = [x.tolist() if isinstance(x, np.ndarray) else x for x in ids]
    for text, back in zip(texts, backend.decode_batch(ids, skip_special_tokens=False)):  # in Rust's thread pool
        if back != text:
            at = next((i for i, (a, b) in enumerate(zip(text, back)) if a != b), min(len(text), len(back)))
            out.append(f"round trip changes the text at character {at}: {text[max(0, at - 15):at + 15]!r} → "
                       f"{back[max(0, at - 15):at + 15]!r}")
            if len(out) >= limit:
                break
    return out


def stop_token(tok, mode: str, chat_eot: str | None) -> tuple[str, int]:
    """The token each training sequence must end with: the chat template's end-of-turn, or EOS in text mode."""
    name = chat_eot if mode == "chat" and chat_eot else tok.eos_token
    if name is None:
        raise TokenizerError("the tokenizer has no EOS token; a trained model would never learn to stop")
    return name, tok.convert_tokens_to_ids(name)


def partial_char_ids(tok, used: np.ndarray | None = None) -> np.ndarray:
    """A boolean per vocabulary id: byte-fallback tokens (`<0xNN>`) and byte-level tokens that are not whole
    UTF-8 characters on their own (a split Hangul syllable). Only ids in `used` are examined when given."""
    size = len(tok)
    flags = np.zeros(size, dtype=bool)
    byte_decoder = _byte_decoder()
    byte_level = "ByteLevel" in str(tok.backend_tokenizer.pre_tokenizer) or "ByteLevel" in str(
        tok.backend_tokenizer.decoder)
    ids = range(size) if used is None else used.tolist()
    pieces = tok.convert_ids_to_tokens(list(ids))
    for i, piece in zip(ids, pieces):
        if i >= size or piece is None:
            continue
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            flags[i] = True
        elif byte_level:
            try:
                raw = bytes(byte_decoder[c] for c in piece)
            except KeyError:
                continue
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                flags[i] = True
    return flags


def _byte_decoder() -> dict[str, int]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def identity(tok, source: str) -> dict:
    return {
        "source": source,
        "class": type(tok).__name__,
        "eos_token": tok.eos_token,
        "eos_id": tok.eos_token_id,
        "pad_token": tok.pad_token,
        "pad_id": tok.pad_token_id,
        "bos_token": tok.bos_token,
        "unk_token": tok.unk_token,
        "clean_up_tokenization_spaces": bool(getattr(tok, "clean_up_tokenization_spaces", False)),
        "has_chat_template": bool(getattr(tok, "chat_template", None)),
    }
