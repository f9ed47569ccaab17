"""Chat mode: conversations longer than max_length cut between messages.

A conversation is cut only after an assistant reply, into consecutive conversations that each keep the system
message, filled greedily from per-message token estimates; a piece still too long once rendered is halved; a
single exchange longer than a row is dropped and counted (`Lost`, kind conversation). Linear in the messages.
"""

from __future__ import annotations

from malmungchi.prep.encode import Encoded, Lost, Piece, Seq, TextEncoder
from malmungchi.prep.ledger import LostKind
from malmungchi.prep.render import Rendered
from malmungchi.schemas.config import BuildConfig

SLACK = 8  # tokens kept free in each piece for what the per-message estimate misses


def split_long_conversations(enc: Encoded, chat_r, encoder: TextEncoder, cfg: BuildConfig, stop_id: int) -> None:
    """`enc.too_long`'s conversations cut into pieces that fit (appended to `enc.seqs`) or lost (`enc.lost`).
    In rounds: every conversation still too long is cut, and all its pieces are encoded in one batch with the
    build's encoder (`encoder`, its ids and loss masks); a piece still too long is cut in the next round. That is
    the order of one conversation at a time with such pieces queued last, so sequences come in that order."""
    pending = list(enc.too_long)
    enc.too_long = []
    while pending:
        contents = [[m["content"] for m in r.messages or []] for r in pending]
        flat = encoder.plain_ids([c for msgs in contents for c in msgs])
        subs: list[Rendered] = []
        at = 0  # where this conversation's messages start in `flat`
        for r in pending:
            msgs = r.messages or []
            sizes = [len(ids) for ids in flat[at:at + len(msgs)]]
            at += len(msgs)
            system = msgs[:1] if msgs and msgs[0]["role"] == "system" else []
            rest = msgs[len(system):]
            total = enc.doc_tokens.get(r.id, 0)
            cut_points = [i + 1 for i, m in enumerate(rest[:-1]) if m["role"] == "assistant"]
            if cfg.long_documents == "drop" or not cut_points:
                enc.lost.append(Lost(r.id, total, f"conversation of {total} tokens is longer than max_length "
                                                  f"{cfg.max_length}" + ("" if cut_points else
                                                                         " and has no place to cut"),
                                     r.doc_id, LostKind.CONVERSATION))
                continue
            part = 0  # pieces are numbered within their conversation: an id does not depend on the others
            for a, b in _pieces(sizes, system, rest, total, cut_points, cfg.max_length):
                half = _ends_with_reply(rest[a:b])
                if not half:
                    continue
                part += 1
                first = len(system) + a
                meta = (r.meta or [None] * len(msgs))
                sub = chat_r.render(system + half, f"{r.id}/c{part}", r.doc_id, r.source, r.title,
                                    meta[:len(system)] + meta[first:first + len(half)])
                sub.markers.clear()
                subs.append(sub)
        pending = [p.r for p in encoder.encode(subs) if not _take(enc, p, cfg.max_length, stop_id)]


def _pieces(sizes: list[int], system: list[dict], rest: list[dict], total: int, cut_points: list[int],
            max_length: int) -> list[tuple[int, int]]:
    """Message ranges of `rest`, cut at `cut_points`, each estimated to fit a row with the system message.
    `sizes`: every message's tokens (the system message's first)."""
    overhead = max(0, (total - sum(sizes)) // max(1, len(sizes)))  # the template's tokens, spread over messages
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


def _take(enc: Encoded, p: Piece, max_length: int, stop_id: int) -> bool:
    """Append an encoded piece as a sequence; False (nothing appended) when it is still too long."""
    sub, ids = p.r, p.ids
    enc.doc_tokens[sub.id] = len(ids)
    if len(ids) > max_length:
        return False
    if ids[-1] != stop_id:
        enc.stop_missing.append(sub.id)
    enc.seqs.append(Seq(sub.id, sub.doc_id, ids, p.mask, sub, 0, len(ids), enc.store))
    return True
