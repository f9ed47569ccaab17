"""Where a character position falls in a tokenized text: the first token that starts at or after it.

Two ways. With the encoding's offsets (`token_index`, `token_starts`): exact for every tokenizer, but the
offsets cost time to compute in Rust and more to turn into Python. With each token's length in UTF-8 bytes
(`token_byte_lengths`, `token_byte_starts`, `char_bytes`, `byte_index`): for byte-level BPE tokenizers, whose
every vocabulary entry spells one byte per character, the tokens' bytes follow one another exactly through the
text, so a batch can be encoded without offsets (`encode_batch_fast`). That is checked on each text (it must be NFC and
its tokens' bytes must add up to its own), and the caller falls back to the offsets when it fails.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

FEW_POSITIONS = 128  # up to this many lookups, Rust's per-position scan beats building every offset in Python


def token_index(enc, chars: list[int], hi: int) -> list[int]:
    """For each character position c, the index of the first token that starts at or after c (at most `hi`).

    The general way is one bisection per position over `enc.offsets`, which turns every token's offsets into
    Python tuples. A book cut at a few paragraph starts needs only a few positions: then Rust's `char_to_token`
    answers each, and is trusted only when a token starts exactly at c after tokens that start before it."""
    if len(chars) <= FEW_POSITIONS:
        out = []
        for c in chars:
            j = enc.char_to_token(c)
            if j is None or enc.token_to_chars(j)[0] != c or (j and enc.token_to_chars(j - 1)[0] >= c):
                break  # c is inside a token, at the very end, or in characters no token covers
            out.append(min(j, hi))
        else:
            return out
    offsets = enc.offsets
    return [bisect_left(offsets, (c,), 0, hi) for c in chars]


def token_starts(enc) -> np.ndarray:
    offs = enc.offsets
    return np.fromiter((o[0] for o in offs), dtype=np.int64, count=len(offs))


def _state(component) -> dict:
    import json

    return json.loads(component.__getstate__()) if component is not None else {}


def is_nfc_normalizer(normalizer) -> bool:
    """True when the tokenizer's normalizer is NFC and nothing else."""
    return normalizer is not None and _state(normalizer).get("type") == "NFC"


def tokens_added_before(backend) -> int:
    """How many tokens the tokenizer puts before a text when it adds special tokens (Llama 3's BOS: 1)."""
    plain = backend.encode("가", add_special_tokens=False).ids
    full = backend.encode("가", add_special_tokens=True).ids
    return next((k for k in range(len(full) - len(plain) + 1) if full[k:k + len(plain)] == plain), 0)


def trims_offsets(backend) -> bool:
    """Whether the tokenizer's offsets leave out the whitespace a token starts with (a ByteLevel post-processor with
    `trim_offsets`, GPT-2 style): a token's offsets then start after its leading space, where its bytes do not."""
    post = _state(backend.post_processor)
    return any(p.get("type") == "ByteLevel" and p.get("trim_offsets") for p in post.get("processors", [post]))


def token_byte_lengths(backend, vocab: dict[str, int] | None = None) -> np.ndarray | None:
    """The UTF-8 length of the text each token id covers, or None when that is not exact for this tokenizer: it
    must be a byte-level BPE (every vocabulary entry spells one byte per character) with no normalizer but NFC
    that adds tokens, if any, only before the text (`tokens_added_before`: the callers count those as no bytes).
    `vocab`: the model's vocabulary (entry → id) when the caller has it (a transformers tokenizer keeps it as
    `_vocab`), which saves asking the Rust tokenizer for a copy."""
    pre, norm, dec = _state(backend.pre_tokenizer), _state(backend.normalizer), _state(backend.decoder)
    parts = pre.get("pretokenizers", [pre])
    if (type(backend.model).__name__ != "BPE" or dec.get("type") != "ByteLevel"
            or not any(p.get("type") == "ByteLevel" and not p.get("add_prefix_space") for p in parts)
            or norm.get("type", "NFC") != "NFC"
            or backend.num_special_tokens_to_add(False) != tokens_added_before(backend)):
        return None
    if not isinstance(vocab, dict) or len(vocab) != backend.get_vocab_size(with_added_tokens=False):
        vocab = backend.get_vocab(with_added_tokens=False)
    added = backend.get_added_tokens_decoder()
    size = max([*vocab.values(), *added.keys(), -1]) + 1
    out = np.zeros(size, dtype=np.int64)
    for t, i in vocab.items():
        out[i] = len(t)
    for i, t in added.items():
        out[i] = len(t.content.encode("utf-8"))
    return out


def token_byte_starts(text: str, ids: np.ndarray, sizes: np.ndarray, skip: int = 0) -> np.ndarray | None:
    """The byte offset where each token starts in `text`, from token byte lengths (see `token_byte_lengths`).
    None when the tokens' bytes do not add up to the text's (a normalizer changed it, say; or a lone surrogate,
    which has no UTF-8): the caller must use the offsets. `skip`: the first tokens stand for no text (the BOS a
    tokenizer added)."""
    import unicodedata

    if (ids.size and int(ids.max()) >= len(sizes)) or not unicodedata.is_normalized("NFC", text):
        return None
    try:
        n = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None
    tok_bytes = sizes[ids]  # a copy
    tok_bytes[:skip] = 0
    ends = np.cumsum(tok_bytes)
    if (ends[-1] if len(ends) else 0) != n:
        return None
    return ends - tok_bytes


def char_bytes(text: str, chars) -> np.ndarray:
    """The UTF-8 byte offset of each character position in `chars` (any order, each in 0..len(text)), from the
    lengths of the slices between them: no per-character array, whatever the text's length."""
    pos = np.asarray(chars, dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    lengths = []
    at = 0
    for p in pos[order].tolist():
        lengths.append(len(text[at:p].encode("utf-8")))
        at = p
    out = np.empty(len(pos), dtype=np.int64)
    out[order] = np.cumsum(lengths, dtype=np.int64)
    return out


def byte_index(text: str, ids: np.ndarray, sizes: np.ndarray, chars: list[int], hi: int, skip: int = 0
               ) -> list[int] | None:
    """`token_index` from token byte lengths: for each character position, the first token that starts at or
    after it (at most `hi`); None when `token_byte_starts` is."""
    starts = token_byte_starts(text, ids, sizes, skip)
    if starts is None:
        return None
    return np.searchsorted(starts[:hi], char_bytes(text, chars), "left").tolist()
