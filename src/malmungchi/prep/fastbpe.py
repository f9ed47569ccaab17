"""Byte-level BPE encoding through tiktoken's Rust core, for the tokenizers where it gives the same ids as the
Hugging Face tokenizer: five to six times faster on Korean text, single-threaded.

The tokenizer's own encode spends most of its time on per-character bookkeeping (normalized strings with
alignments, the pre-tokenizer's splits, token strings and offsets) that a build of ids does not need. tiktoken runs
the same algorithm with none of it: split the text with the same regex, map each piece to bytes, merge byte pairs
by rank. `FastBPE.of` accepts a tokenizer only where the two algorithms agree:

- a BPE model over GPT-2's byte alphabet (every vocabulary entry spells bytes), no dropout, no word prefixes or
  suffixes, no byte fallback; ids in merge order (a merge's result never has a lower id than an earlier merge's),
  so merging the lowest-ranked pair (tiktoken) is merging the earliest merge (Hugging Face);
- a pre-tokenizer of one regex split (isolated) and ByteLevel, or ByteLevel with GPT-2's regex, no prefix space;
- no normalizer, or NFC (texts that are not NFC are left to the tokenizer: `encode` returns None for them);
- nothing added after the text (a BOS before it is put there too), and added tokens that are matched as
  themselves (no strip, no single-word rule) and never overlap one another, so any way of finding them finds the
  same ones;
- and the two agree on a probe text of Korean, English, digits, emoji, whitespace runs and the added tokens.

Two things these checks do not prove: that every vocabulary entry is what its own merges make (tiktoken takes a
piece that is a whole entry as that entry), and that merges with the same result never tie in a way the two
break differently (tiktoken: leftmost; Hugging Face: the earlier merge). Both hold for trained vocabularies, are
tested for Qwen3 over every vocabulary entry, every code point of the first two planes in several contexts,
merge-stressing runs and Korean text, and were checked by hand the same way for Llama 3. Each build also compares
the two on a slice of every batch (`encode.encode_fast`) and stops with an error naming `--encoder tokenizers` if
they ever differ.
"""

from __future__ import annotations

import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from malmungchi.prep.positions import _state, tokens_added_before

GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
PROBE = ("|START_OF_DIALOGUE|> 민수: 안녕하세요!!  오늘은 1234년 12월... ㅋㅋㅋㅋㅋ ㅠㅠ\n\n"
         "영희: 네 ^^ 😀😀👍🏽 “인용”  — 끝.\r\n\t  He's 'LL we'd DON'T 3.14 ｆｕｌｌ　width\n\n\n   end  ")


_NONE: set[str] = set()


class NotFast(Exception):
    """The tokenizer is not one whose ids tiktoken reproduces; the message says why."""


def byte_alphabet() -> dict[str, int]:
    """GPT-2's ByteLevel alphabet: the character that stands for each byte in vocabulary entries → the byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out = {chr(b): b for b in keep}
    n = 0
    for b in range(256):
        if b not in keep:
            out[chr(256 + n)] = b
            n += 1
    return out


def _pattern(backend) -> str:
    pre = _state(backend.pre_tokenizer)
    parts = pre.get("pretokenizers", [pre])
    last = parts[-1] if parts else {}
    if last.get("type") != "ByteLevel" or last.get("add_prefix_space"):
        raise NotFast("its pre-tokenizer does not end with ByteLevel (without a prefix space)")
    if len(parts) == 1:
        if not last.get("use_regex", True):
            raise NotFast("its ByteLevel pre-tokenizer splits nothing")
        return GPT2_SPLIT
    split = parts[0]
    if (len(parts) != 2 or split.get("type") != "Split" or last.get("use_regex", True)
            or split.get("behavior") != "Isolated" or split.get("invert") or "Regex" not in split.get("pattern", {})):
        raise NotFast("its pre-tokenizer is not one regex split followed by ByteLevel")
    return split["pattern"]["Regex"]


def _ranks(tok, backend) -> dict[bytes, int]:
    """Every vocabulary entry as bytes → its id, after checking that ids follow the merges."""
    model = backend.model
    if type(model).__name__ != "BPE":
        raise NotFast(f"its model is {type(model).__name__}, not BPE")
    if model.dropout or model.continuing_subword_prefix or model.end_of_word_suffix or model.byte_fallback:
        raise NotFast("its BPE uses dropout, word prefixes/suffixes or byte fallback")
    # transformers builds the model from these two (vocab → id, merges in order); else read them off the model
    vocab, merges = getattr(tok, "_vocab", None), getattr(tok, "_merges", None)
    if not (isinstance(vocab, dict) and isinstance(merges, list) and merges
            and len(vocab) == backend.get_vocab_size(with_added_tokens=False)):
        vocab, merges = _model_tables(model)
    alphabet = byte_alphabet()
    to_latin1 = str.maketrans({c: chr(b) for c, b in alphabet.items()})
    try:
        ranks = {t.translate(to_latin1).encode("latin-1"): i for t, i in vocab.items()}
    except UnicodeEncodeError:
        raise NotFast("its vocabulary is not byte-level") from None
    if len(ranks) != len(vocab) or any(bytes([b]) not in ranks for b in range(256)):
        raise NotFast("its vocabulary does not hold every byte once")
    try:
        order = np.fromiter((vocab[a + b] for a, b in (m.split(" ", 1) if isinstance(m, str) else m for m in merges)),
                            dtype=np.int64, count=len(merges))
    except (KeyError, ValueError):
        raise NotFast("a merge makes a token that is not in the vocabulary") from None
    if len(order) > 1 and (np.diff(order) < 0).any():
        raise NotFast("its token ids are not in merge order")
    return ranks


def _model_tables(model) -> tuple[dict[str, int], list[str]]:
    """A BPE model's vocabulary and merges ("a b" each), as the model saves them: three times faster than
    parsing the model's JSON state (Llama 3: 0.45 s against 1.3 s)."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="malmungchi-bpe-") as folder:
        vocab_file, merges_file = model.save(folder)
        with open(vocab_file, encoding="utf-8") as fh:
            vocab = json.load(fh)
        with open(merges_file, encoding="utf-8") as fh:
            merges = [m for m in fh.read().split("\n") if m and not m.startswith("#version")]
    return vocab, merges


def _specials(backend, nfc: bool) -> dict[str, int]:
    """Added tokens → ids, when each is matched as itself and no two can overlap in a text."""
    tokens = backend.get_added_tokens_decoder()
    added = {t.content: i for i, t in tokens.items()}
    for t in tokens.values():
        if t.lstrip or t.rstrip or t.single_word or not t.content:
            raise NotFast(f"added token {t.content!r} strips spaces or matches whole words only")
        if nfc and t.normalized and unicodedata.normalize("NFC", t.content) != t.content:
            raise NotFast(f"added token {t.content!r} changes under NFC")
    contents = sorted(added)
    heads = {c[:k] for c in contents for k in range(1, len(c))}
    for c in contents:
        # one inside another, or the end of one the start of another: then which is found depends on the method
        if any(o != c and c in o for o in contents) or any(c[k:] in heads for k in range(1, len(c))):
            raise NotFast(f"added token {c!r} overlaps another")
    return added


class FastBPE:
    """`encode(texts)` → int32 ids per text, as the tokenizer's `encode_batch_fast` gives them (or None for a text it
    leaves to the tokenizer). Build with `FastBPE.of(tokenizer)`."""

    def __init__(self, core, specials: set[str], nfc: bool, prefix: list[int] = ()):
        self.core, self.specials, self.nfc = core, specials, nfc
        self.prefix = np.asarray(prefix, dtype=np.int32)  # what the tokenizer puts before every text (a BOS)
        # tiktoken converts the set of allowed added tokens on every call, which costs more than encoding a short
        # text: a text holding none of their first characters is encoded without it
        self._firsts = sorted({s[0] for s in specials})
        # tiktoken's encode_to_numpy costs several microseconds a call in Python; its core's buffer does not
        self._buffer = getattr(getattr(core, "_core_bpe", None), "encode_to_tiktoken_buffer", None)

    @classmethod
    def of(cls, tok, backend=None) -> FastBPE:
        """For a transformers tokenizer (or a `tokenizers.Tokenizer` as `backend`); raises NotFast(why) when it
        is not a tokenizer whose ids this reproduces."""
        try:
            import tiktoken
        except ImportError:
            raise NotFast("tiktoken is not installed") from None

        backend = backend or tok.backend_tokenizer
        norm = _state(backend.normalizer).get("type")
        if norm not in (None, "NFC"):
            raise NotFast(f"its normalizer is {norm}")
        before = tokens_added_before(backend)
        if backend.num_special_tokens_to_add(False) != before:
            raise NotFast("it adds tokens after the text")
        prefix = backend.encode("가", add_special_tokens=True).ids[:before]
        if _state(backend.decoder).get("type") != "ByteLevel":
            raise NotFast("its decoder is not ByteLevel")
        pattern = _pattern(backend)
        ranks = _ranks(tok, backend)
        specials = _specials(backend, norm == "NFC")
        try:
            core = tiktoken.Encoding("malmungchi", pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
        except Exception as exc:  # noqa: BLE001 (a regex tiktoken cannot compile, say)
            raise NotFast(f"tiktoken cannot take it: {exc}") from None
        fast = cls(core, set(specials), norm == "NFC", prefix)
        probe = PROBE + "".join(f" {s}x{s}" for s in sorted(specials))
        if fast.same_as(backend, [probe]) is not None:
            raise NotFast("tiktoken's ids differ from the tokenizer's on a probe text")
        return fast

    def encode(self, texts: list[str], threads: int | None = None, special: bool = True) -> list[np.ndarray | None]:
        """int32 ids of each text; None for a text that is not NFC when the tokenizer normalizes to NFC.
        `threads`: default all cores, unless TOKENIZERS_PARALLELISM=false (as in the build's reader processes).
        `special`: as `add_special_tokens` (False: without the tokens the tokenizer puts before a text)."""
        if threads is None:
            threads = 1 if os.environ.get("TOKENIZERS_PARALLELISM", "").lower() in ("false", "0") else \
                (os.cpu_count() or 1)
        one = self._one if special or not len(self.prefix) else self._plain
        if threads <= 1 or len(texts) < 2 or sum(map(len, texts)) < 1024 * len(texts):
            return [one(t) for t in texts]  # short texts: threads would mostly wait for the GIL
        step = -(-len(texts) // threads)
        with ThreadPoolExecutor(threads) as pool:  # tiktoken lets go of the GIL while it encodes
            parts = pool.map(lambda part: [one(t) for t in part], (texts[i:i + step] for i in range(0, len(texts),
                                                                                                      step)))
            return [ids for part in parts for ids in part]

    def _one(self, text: str) -> np.ndarray | None:
        ids = self._plain(text)
        return np.concatenate([self.prefix, ids]) if len(self.prefix) and ids is not None else ids

    def _plain(self, text: str) -> np.ndarray | None:
        if self.nfc and not unicodedata.is_normalized("NFC", text):
            return None
        if any(c in text for c in self._firsts):
            return self.core.encode_to_numpy(text, allowed_special=self.specials, disallowed_special=()).view(np.int32)
        if self._buffer is not None:
            return np.frombuffer(self._buffer(text, _NONE), dtype=np.int32)
        return self.core.encode_to_numpy(text, disallowed_special=()).view(np.int32)

    def same_as(self, backend, texts: list[str], special: bool = True) -> int | None:
        """The index of the first text on which the tokenizer's ids differ from these, or None (`special`: as
        `add_special_tokens`)."""
        ours = self.encode(texts, threads=1, special=special)
        theirs = backend.encode_batch_fast(texts, add_special_tokens=special)
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if a is not None and a.tolist() != b.ids:
                return i
        return None
