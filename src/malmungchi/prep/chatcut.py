"""Chat mode: conversations longer than max_length cut between messages.

A conversation is cut only after an assistant reply, into consecutive conversations that each keep the system
message, filled greedily from per-message token estimates; a piece still too long once rendered is halved; a
single exchange longer than a row is dropped and counted (`Lost`, kind conversation). Linear in the messages.
"""

from __future__ import annotations

import numpy as np

from malmungchi.prep.encode import Encoded, Lost, Seq, loss_mask
from malmungchi.prep.ledger import LostKind
from malmungchi.prep.positions import token_starts
from malmungchi.prep.render import Rendered
from malmungchi.schemas.config import BuildConfig

SLACK = 8  # tokens kept free in each piece for what the per-message estimate misses


def split_long_conversations(enc: Encoded, chat_r, tok, cfg: BuildConfig, stop_id: int) -> None:
    """`enc.too_long`'s conversations cut into pieces that fit (appended to `enc.seqs`) or lost (`enc.lost`)."""
    pending = list(enc.too_long)
    enc.too_long = []
    backend = tok.backend_tokenizer
    while pending:
        r = pending.pop(0)
        msgs = r.messages or []
        system = msgs[:1] if msgs and msgs[0]["role"] == "system" else []
        rest = msgs[len(system):]
        total = enc.doc_tokens.get(r.id, 0)
        cut_points = [i + 1 for i, m in enumerate(rest[:-1]) if m["role"] == "assistant"]
        if cfg.long_documents == "drop" or not cut_points:
            enc.lost.append(Lost(r.id, total, f"conversation of {total} tokens is longer than max_length "
                                              f"{cfg.max_length}" + ("" if cut_points else " and has no place to cut"),
                                 r.doc_id, LostKind.CONVERSATION))
            continue
        part = 0  # pieces are numbered within their conversation: an id does not depend on the others
        for a, b in _pieces(backend, msgs, system, rest, total, cut_points, cfg.max_length):
            half = _ends_with_reply(rest[a:b])
            if not half:
                continue
            part += 1
            first = len(system) + a
            meta = (r.meta or [None] * len(msgs))
            sub = chat_r.render(system + half, f"{r.id}/c{part}", r.doc_id, r.source, r.title,
                                meta[:len(system)] + meta[first:first + len(half)])
            if not _take(enc, sub, backend, cfg.max_length, stop_id):
                pending.append(sub)


def _pieces(backend, msgs: list[dict], system: list[dict], rest: list[dict], total: int, cut_points: list[int],
            max_length: int) -> list[tuple[int, int]]:
    """Message ranges of `rest`, cut at `cut_points`, each estimated to fit a row with the system message."""
    sizes = [len(e.ids) for e in backend.encode_batch([m["content"] for m in msgs], add_special_tokens=False)]
    overhead = max(0, (total - sum(sizes)) // max(1, len(msgs)))  # the template's tokens, spread over messages
    sys_cost = sum(sizes[:len(system)]) + overhead * len(system)
    cost = [n + overhead for n in sizes[len(system):]]
    budget = max_length - sys_cost - SLACK
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
    return pieces


def _ends_with_reply(messages: list[dict]) -> list[dict]:
    """`messages` up to its last assistant message ([] when it has none)."""
    while messages and messages[-1]["role"] != "assistant":
        messages = messages[:-1]
    return messages if any(m["role"] == "assistant" for m in messages) else []


def _take(enc: Encoded, sub: Rendered, backend, max_length: int, stop_id: int) -> bool:
    """Encode a piece and append it as a sequence; False (nothing appended) when it is still too long."""
    sub.markers.clear()
    e = backend.encode(sub.text, add_special_tokens=False)
    enc.doc_tokens[sub.id] = len(e.ids)
    if len(e.ids) > max_length:
        return False
    ids = np.asarray(e.ids, dtype=np.int32)
    mask = loss_mask(token_starts(e), sub.loss or [], len(ids))
    if ids[-1] != stop_id:
        enc.stop_missing.append(sub.id)
    enc.seqs.append(Seq(sub.id, sub.doc_id, ids, mask, sub, 0, len(ids), enc.store))
    return True
