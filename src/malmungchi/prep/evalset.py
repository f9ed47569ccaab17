"""`eval/test.jsonl`: exact-match items from the test split.

Every item has an `id` from the source (document and turn; chat mode: conversation and the first turn of the
assistant message with content), the same under every marker policy
and tokenizer, and stores `answer_canonical`: the answer with markers in canonical spelling (`prep.identity`); a
turn (chat mode: an assistant message) without content (only markers and cue text) is no item under any policy.

Text mode: the text before a dialogue turn's content (cut at a segment boundary so that at most `eval_context`
tokens of context remain, the speaker prefix included) → the turn's content. Chat mode: the conversation up to an
assistant message (as the chat template renders it with the generation prompt) → that message; the oldest
messages go first when the prompt is longer than `eval_context` tokens.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator

import numpy as np

from malmungchi.prep.encode import BATCH_CHARS, Seq
from malmungchi.prep.identity import content_text
from malmungchi.prep.positions import char_bytes, token_byte_starts, token_starts, tokens_added_before


def text_items(seqs: list[Seq], tok, eval_context: int, batch_chars: int = BATCH_CHARS,
               sizes: np.ndarray | None = None) -> Iterator[dict]:
    """The items, document by document. Token positions come from the ids the build already has when `sizes`
    (token byte lengths, `positions.token_byte_lengths`) is given and the document's sequences cover it whole;
    otherwise its text is read back and encoded again, a batch at a time (without offsets, with `sizes`)."""
    by_doc: dict[str, list[Seq]] = {}
    for q in seqs:
        if len(q.src.turns):
            by_doc.setdefault(q.src.id, []).append(q)
    backend = tok.backend_tokenizer
    run = backend.encode_batch if sizes is None else backend.encode_batch_fast
    # texts are encoded again without special tokens, the sequences' token positions count a BOS (Llama 3)
    shift = tokens_added_before(backend)

    def encoded(batch: list[tuple]) -> Iterator[dict]:
        encs = run([text for _, text in batch], add_special_tokens=False)
        for i, (r, text) in enumerate(batch):
            enc, encs[i] = encs[i], None
            got = None if sizes is None else token_byte_starts(text, np.asarray(enc.ids, dtype=np.int32), sizes)
            if got is None and sizes is not None:
                enc = backend.encode(text, add_special_tokens=False)
            starts = got if got is not None else token_starts(enc)
            yield from _doc_items(r, text, starts, by_doc[r.id], eval_context, got is not None, shift)

    todo: list[tuple] = []  # documents to encode again, in a batch (items still come out in document order)
    size = 0
    for chunks in by_doc.values():
        r = chunks[0].src
        text = r.full_text()  # read back one at a time
        got = None if sizes is None else known_starts(text, chunks, sizes, shift)
        if got is None:
            todo.append((r, text))
            size += len(text)
            if size >= batch_chars:
                yield from encoded(todo)
                todo, size = [], 0
            continue
        if todo:
            yield from encoded(todo)
            todo, size = [], 0
        yield from _doc_items(r, text, got, chunks, eval_context, True, shift)
    if todo:
        yield from encoded(todo)


def known_starts(text: str, chunks: list[Seq], sizes: np.ndarray, before: int = 0) -> np.ndarray | None:
    """`token_byte_starts` from the ids the document was encoded to, when its sequences hold every one of them: one
    sequence, or chunks that follow one another from token 0 (each chunk's stop token is not the text's). The
    tokens' bytes must then add up to the text's, which also rules out a part missing at the end. `before`: the
    tokens the tokenizer put before the text (left out, as in the text encoded again without them)."""
    chunks = sorted(chunks, key=lambda q: q.tok_start)
    if chunks[0].tok_start != 0 or any(a.tok_end != b.tok_start for a, b in zip(chunks, chunks[1:])):
        return None
    ids = np.concatenate([q.ids[:q.tok_end - q.tok_start] for q in chunks])[before:]
    if len(ids) and int(ids.max()) >= len(sizes):
        return None
    extra = int(sizes[ids].sum()) - len(text.encode("utf-8"))
    if len(ids) and extra > 0 and extra == sizes[ids[-1]]:
        ids = ids[:-1]  # the stop token added after the text
    return token_byte_starts(text, ids, sizes)


def _doc_items(r, text: str, starts: np.ndarray, chunks: list[Seq], eval_context: int,
               in_bytes: bool = False, shift: int = 0) -> list[dict]:
    """The items of one document, with every character → token lookup done by one `searchsorted` per array.
    `starts` are where tokens start: in characters, or (`in_bytes`) in UTF-8 bytes.
    `shift`: tokens the chunks' positions count before the text's first (a BOS) and `starts` does not.

    A prompt starts at the earliest segment cut (not before the last gap) that leaves at most `eval_context`
    tokens before the turn's content; cut token positions never decrease, so that cut is found by bisection."""
    if not r.turns:
        return []
    turns = np.asarray(r.turns, dtype=np.int64).reshape(-1, 3)  # also flat, after Rendered.spill

    def where(chars: np.ndarray) -> np.ndarray:
        return char_bytes(text, chars) if in_bytes else chars

    at_all = np.searchsorted(starts, where(turns[:, 1]), "left").tolist()
    cuts = sorted({0, *r.cuts})
    cut_tok = np.searchsorted(starts, where(np.asarray(cuts, dtype=np.int64)), "left")
    gaps = sorted(r.gaps)
    spans = sorted((q.tok_start - shift, q.tok_end - shift) for q in chunks)
    span_starts = [a for a, _ in spans]
    items = []
    canon = r.canon_answers
    for n, ((turn_start, content_start, content_end), at) in enumerate(zip(turns.tolist(), at_all)):
        answer = text[content_start:content_end]
        canonical = (answer if canon[n] is None else canon[n]) if n < len(canon) else None
        if not (_has_content(canonical) if canonical is not None else answer.strip()):
            continue  # no content: the same turns are items under every policy
        k = bisect_right(span_starts, at) - 1
        if k < 0 or at >= spans[k][1]:
            continue  # this turn's chunk is in another split (chunk split unit)
        g = bisect_right(gaps, turn_start)
        floor = gaps[g - 1] if g else 0  # a prompt does not span a gap
        lo, hi = bisect_left(cuts, floor), bisect_right(cuts, turn_start)
        first = lo + int(np.searchsorted(cut_tok[lo:hi], at - eval_context, "left"))
        begin = cuts[first] if first < hi else turn_start
        item = {"id": f"{r.id}:t{n}", "prompt": text[begin:content_start], "answer": answer}
        if canonical is not None:
            item["answer_canonical"] = canonical
        items.append(item)
    return items


def _has_content(canonical: str) -> bool:
    """`content_text(canonical)` is not empty; at once for a text without markers or asides (every marker and
    every aside `content_text` removes holds a `|` or a `(`), as most answers are."""
    if "|" not in canonical and "(" not in canonical:
        return bool(canonical.strip())
    return bool(content_text(canonical))


def chat_items(seqs: list[Seq], tok, eval_context: int) -> Iterator[dict]:
    backend = tok.backend_tokenizer
    for q in seqs:
        msgs = q.src.messages or []
        if not msgs:
            continue
        meta = q.src.meta or [None] * len(msgs)
        sizes = [len(e.ids) + 5 for e in backend.encode_batch([m["content"] for m in msgs], add_special_tokens=False)]
        system = 1 if msgs[0]["role"] == "system" else 0
        for k, m in enumerate(msgs):
            if m["role"] != "assistant" or k == 0:
                continue
            key, canonical = meta[k] if meta[k] is not None else (f"m{k}", None)
            if canonical is not None and not content_text(canonical):
                continue  # no content (only markers and cue text): the same messages are items under every policy
            # drop the oldest messages (estimate first, then confirm with the real rendering)
            first, used = k, sizes[0] if system else 0
            while first - 1 >= system and used + sizes[first - 1] <= eval_context:
                first -= 1
                used += sizes[first]
            first = min(first, k - 1)
            while True:
                shown = msgs[:system] + msgs[max(first, system):k]
                prompt = tok.apply_chat_template(shown, tokenize=False, add_generation_prompt=True)
                if first >= k - 1 or len(backend.encode(prompt, add_special_tokens=False).ids) <= eval_context:
                    break
                first += 1
            if not any(x["role"] != "system" for x in shown):
                continue
            item = {"id": f"{q.src.doc_id}/{key}", "prompt": prompt, "answer": m["content"], "messages": shown}
            if canonical is not None:
                item["answer_canonical"] = canonical
            yield item
