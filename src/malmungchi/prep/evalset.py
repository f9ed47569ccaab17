"""`eval/test.jsonl`: exact-match items from the test split.

Text mode: the text before a dialogue turn's content (cut at a segment boundary so that at most `eval_context`
tokens of context remain, the speaker prefix included) → the turn's content. Chat mode: the conversation up to an
assistant message (as the chat template renders it with the generation prompt) → that message; the oldest
messages go first when the prompt is longer than `eval_context` tokens.
"""

from __future__ import annotations

import numpy as np

from malmungchi.prep.encode import Seq, token_starts


def text_items(seqs: list[Seq], tok, eval_context: int) -> list[dict]:
    items: list[dict] = []
    by_doc: dict[str, list[Seq]] = {}
    for q in seqs:
        if q.src.turns:
            by_doc.setdefault(q.src.id, []).append(q)
    if not by_doc:
        return items
    docs = [v[0].src for v in by_doc.values()]
    encs = tok.backend_tokenizer.encode_batch([r.text for r in docs], add_special_tokens=False)
    for r, enc in zip(docs, encs):
        starts = token_starts(enc)
        cuts = sorted(set([0] + r.cuts))
        chunks = by_doc[r.id]
        for n, (turn_start, content_start, content_end) in enumerate(r.turns):
            answer = r.text[content_start:content_end]
            if not answer.strip():
                continue
            at = int(np.searchsorted(starts, content_start, "left"))
            if not any(q.tok_start <= at < q.tok_end for q in chunks):
                continue  # this turn's chunk is in another split (chunk split unit)
            begin = turn_start
            floor = max((g for g in r.gaps if g <= turn_start), default=0)  # a prompt does not span a gap
            for c in reversed([c for c in cuts if floor <= c <= turn_start]):
                if at - int(np.searchsorted(starts, c, "left")) > eval_context:
                    break
                begin = c
            items.append({"id": f"{r.id}:t{n}", "prompt": r.text[begin:content_start], "answer": answer})
    return items


def chat_items(seqs: list[Seq], tok, eval_context: int) -> list[dict]:
    items = []
    backend = tok.backend_tokenizer
    for q in seqs:
        msgs = q.src.messages or []
        if not msgs:
            continue
        sizes = [len(e.ids) + 5 for e in backend.encode_batch([m["content"] for m in msgs], add_special_tokens=False)]
        system = 1 if msgs[0]["role"] == "system" else 0
        for k, m in enumerate(msgs):
            if m["role"] != "assistant" or k == 0:
                continue
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
            items.append({"id": f"{q.id}:m{k}", "prompt": prompt, "answer": m["content"], "messages": shown})
    return items
