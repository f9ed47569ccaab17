"""The build report: what the corpus costs in tokens and where it went. One dict (report.json, `--json`) and a
rich rendering of it. Everything is computed from the plan with numpy over token ids, never per token in Python.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from rich.console import Console, Group
from rich.text import Text

from malmungchi.prep import ledger
from malmungchi.prep.build import Plan
from malmungchi.prep.split import SPLITS
from malmungchi.prep.tokenizer import identity, partial_char_ids
from malmungchi.tables import print_fitted


def report(p: Plan) -> dict:
    """The build's figures (computed once per plan; the writer computes them while it writes the data)."""
    if p.report_cache is None:
        p.report_cache = _report(p)
    return p.report_cache


def _report(p: Plan) -> dict:
    cfg = p.cfg
    tok = p.tokenizer
    seqs = [q for name in SPLITS for q in p.splits[name]]
    lengths = np.array([q.n for q in seqs], dtype=np.int64)
    total = int(lengths.sum())
    splits = {name: _split_figures(p, name) for name in SPLITS}
    rows_all = sum(s["rows"] for s in splits.values())
    used = p.rendered
    markers = _markers(p, total)
    doc_tokens = sorted(((n, rid) for rid, n in p.doc_tokens.items()), reverse=True)[:5]
    titles = {r.id: r.title for r in p.rendered}
    hist = _histogram(lengths, cfg.max_length)
    over = sum(1 for n in p.doc_tokens.values() if n > cfg.max_length)
    return {
        "mode": cfg.mode,
        "max_length": cfg.max_length,
        "split_unit": p.split_unit,
        "notes": p.notes,
        "warnings": p.warnings,
        "tokenizer": {**identity(tok, p.tokenizer_source), "vocab_before": p.registration.vocab_before,
                      "vocab_after": p.registration.vocab_after, "added_tokens": p.registration.added,
                      "reused_tokens": p.registration.reused, "collisions": p.registration.collisions,
                      "round_trip_problems": p.registration.whitespace,
                      "stop_token": p.stop[0], "stop_id": p.stop[1]},
        "documents": {**ledger.counts(p.documents), "duplicates": p.duplicates},
        "splits": splits,
        "tokens": total,
        "lengths": {
            "sequences": len(lengths),
            "mean": round(float(lengths.mean()), 1) if len(lengths) else 0,
            **{f"p{q}": int(np.percentile(lengths, q)) if len(lengths) else 0 for q in (50, 90, 99)},
            "max": int(lengths.max()) if len(lengths) else 0,
            "documents_over_max_length": over,
            "histogram": hist,
        },
        "truncation": {"lost_tokens": sum(x.tokens for x in p.lost), "lost_pieces": len(p.lost),
                       "documents_mostly_lost": sum(d.mostly_lost for d in p.documents),
                       "by_reason": dict(sorted(Counter(str(x.kind) for x in p.lost).items())),
                       "examples": [{"id": x.id, "tokens": x.tokens, "reason": x.reason} for x in p.lost[:10]]},
        "packing": {"packed": cfg.pack, "rows": rows_all,
                    "efficiency": round(total / (rows_all * cfg.max_length), 4) if rows_all else None},
        "markers": markers,
        "cues": _cues(p),
        "korean": _korean(p, seqs, total),
        "unicode": {"nfd_jamo": sum(r.nfd for r in used), "not_nfc_texts": sum(r.not_nfc for r in used),
                    "fullwidth": sum(r.fullwidth for r in used)},
        "longest": [{"id": rid, "title": titles.get(rid), "tokens": int(n)} for n, rid in doc_tokens],
        "eval_items": len(p.eval_items),
    }


def _split_figures(p: Plan, name: str) -> dict:
    seqs = p.splits[name]
    n_tok = sum(q.n for q in seqs)
    rows = len(p.rows[name])
    return {
        "documents": len({q.doc_id for q in seqs}),
        "sequences": len(seqs),
        "rows": rows,
        "tokens": n_tok,
        "loss_tokens": int(sum(int(q.mask.sum()) if q.has_mask else q.n for q in seqs)),
        "packing_efficiency": round(n_tok / (rows * p.cfg.max_length), 4) if rows else None,
    }


def _korean(p: Plan, seqs: list, total: int) -> dict:
    """Tokens per Hangul syllable and eojeol, byte-fallback and unknown tokens (one bincount over every id)."""
    tok = p.tokenizer
    counts = _token_counts(seqs, len(tok)) if seqs else np.zeros(len(tok))
    partial = partial_char_ids(tok, np.nonzero(counts)[0])
    partial_tokens = int(counts[: len(partial)][partial[: len(counts)]].sum()) if seqs else 0
    unk_id = tok.unk_token_id
    unk = int(counts[unk_id]) if unk_id is not None and unk_id < len(counts) else 0
    tokenized = list({id(q.src): q.src for q in seqs}.values())  # the texts the sequences were encoded from
    hangul = sum(r.hangul for r in tokenized)  # (without segments too long to tokenize), for tokens per syllable
    eojeol = sum(r.eojeol for r in tokenized)
    return {
        "hangul_syllables": hangul, "eojeol": eojeol,
        "tokens_per_syllable": round(total / hangul, 3) if hangul else None,
        "tokens_per_eojeol": round(total / eojeol, 3) if eojeol else None,
        "byte_fallback_tokens": partial_tokens,
        "byte_fallback_rate": round(partial_tokens / total, 5) if total else 0,
        "unknown_tokens": unk, "unknown_rate": round(unk / total, 6) if total else 0,
    }


def _token_counts(seqs: list, vocab: int, block: int = 1 << 22) -> np.ndarray:
    """Occurrences of every id, one bincount per ~4M tokens (no copy of the whole corpus's ids at once)."""
    counts = np.zeros(vocab, dtype=np.int64)
    group: list[np.ndarray] = []
    size = 0
    for q in seqs:
        group.append(q.ids)
        size += q.n
        if size >= block:
            c = np.bincount(np.concatenate(group), minlength=vocab)
            counts = counts + c if len(c) == vocab else np.pad(counts, (0, len(c) - len(counts))) + c
            vocab = len(counts)
            group, size = [], 0
    if group:
        c = np.bincount(np.concatenate(group), minlength=vocab)
        counts = counts + c if len(c) == len(counts) else np.pad(counts, (0, len(c) - len(counts))) + c
    return counts


def _markers(p: Plan, total: int) -> dict:
    counts: Counter = Counter()
    for r in p.rendered:
        counts.update(r.markers)
    out = {}
    for name, info in p.policies.info.items():
        n = counts.get(name, 0)
        as_text = len(p.tokenizer.encode(f"|{name}|>", add_special_tokens=False))
        out[name] = {"count": n, "policy": info.policy, "tokens_as_text": as_text, "tokens_as_special": 1,
                     "share_as_text": round(n * as_text / total, 5) if total else 0,
                     "share_as_special": round(n / total, 5) if total else 0}
    return out


def _cues(p: Plan, top: int = 12) -> dict[str, dict[str, int]]:
    """Per inline marker, its most frequent cue texts (`(…)` after it; "" for none) with their counts."""
    counts: Counter = Counter()
    for r in p.rendered:
        counts.update(r.cues)
    by_name: dict[str, Counter] = {}
    for (name, cue), n in counts.items():
        by_name.setdefault(name, Counter())[cue or ""] += n
    return {name: dict(sorted(c.most_common(top), key=lambda kv: (-kv[1], kv[0]))) for name, c in
            sorted(by_name.items())}


def _histogram(lengths: np.ndarray, max_length: int, bins: int = 10) -> list[dict]:
    """Sequence lengths in `bins` bins up to max_length, or, when every sequence is shorter than half of it (short
    dialogue turns in 2,048-token rows), up to the longest one: else they all fall in the first bin."""
    longest = int(lengths.max()) if len(lengths) else 0
    top = max_length if longest > max_length // 2 else max(bins, -(-longest // bins) * bins)
    edges = np.linspace(0, top, bins + 1).astype(int)
    # a bin reads lo–hi, both included: lengths in (edge, next edge], hence the half-integer bounds
    counts, _ = np.histogram(lengths, bins=edges + 0.5) if len(lengths) else (np.zeros(bins, int), None)
    return [{"lo": int(edges[i]) + 1 if i else 1, "hi": int(edges[i + 1]), "count": int(c)} for i, c in enumerate(counts)]


def render(rep: dict, console: Console) -> None:
    """The report for people: splits and lengths, markers, Korean and Unicode figures, documents, longest."""
    _render_splits(rep, console)
    _render_markers(rep, console)
    _render_documents(rep, console)
    for n in rep["notes"]:
        console.print(Text.assemble(("note:", "blue"), f" {n}"))
    for w in rep["warnings"]:
        console.print(Text.assemble(("warning:", "yellow"), f" {w}"))


def _render_splits(rep: dict, console: Console) -> None:
    console.print(Text(f"mode {rep['mode']}, max_length {rep['max_length']}, split unit {rep['split_unit']}, "
                       f"tokenizer {rep['tokenizer']['class']} (vocab {rep['tokenizer']['vocab_before']} → "
                       f"{rep['tokenizer']['vocab_after']}), stop {rep['tokenizer']['stop_token']}", style="bold"))
    rows = []
    for name, s in rep["splits"].items():
        eff = f"{s['packing_efficiency']:.1%}" if s["packing_efficiency"] is not None else "-"
        rows.append([name, f"{s['documents']:,}", f"{s['sequences']:,}", f"{s['rows']:,}", f"{s['tokens']:,}",
                     f"{s['loss_tokens']:,}", eff])
    print_fitted(console, "splits", ["split", "documents", "sequences", "rows", "tokens", "loss tokens", "packing"],
                 rows, left=("split",))
    lg = rep["lengths"]
    console.print(f"sequence lengths: mean {lg['mean']}, p50 {lg['p50']}, p90 {lg['p90']}, p99 {lg['p99']}, "
                  f"max {lg['max']} (max_length {rep['max_length']}); {lg['documents_over_max_length']} "
                  "document(s) were longer than max_length")
    top = max([h["count"] for h in lg["histogram"]] + [1])
    lines = [Text(f"{h['lo']:>6}–{h['hi']:<6} ") + Text("█" * max(0, round(40 * h["count"] / top)), style="cyan")
             + Text(f" {h['count']:,}") for h in lg["histogram"]]
    console.print(Group(*lines))


def _render_markers(rep: dict, console: Console) -> None:
    rows = [[name, v["policy"], f"{v['count']:,}", str(v["tokens_as_text"]), "1", f"{v['share_as_text']:.2%}",
             f"{v['share_as_special']:.2%}"] for name, v in rep["markers"].items() if v["count"]]
    if not rows:
        console.print("markers: none in this corpus")
        return
    print_fitted(console, "markers", ["marker", "policy", "count", "tokens as text", "as special", "share as text",
                                      "share as special"], rows, left=("marker", "policy"))
    for name, cues in rep.get("cues", {}).items():
        shown = ", ".join(f"{cue or '(no cue)'} {n:,}" for cue, n in cues.items())
        console.print(f"cues of {name}: {shown}")


def _render_documents(rep: dict, console: Console) -> None:
    k = rep["korean"]

    def na(x):
        return "n/a" if x is None else x

    console.print(f"Korean: {na(k['tokens_per_syllable'])} tokens per Hangul syllable, {na(k['tokens_per_eojeol'])} per "
                  f"eojeol; byte-fallback tokens {k['byte_fallback_rate']:.2%}, unknown {k['unknown_rate']:.4%}")
    u = rep["unicode"]
    console.print(f"Unicode: {u['not_nfc_texts']} text(s) not NFC, {u['nfd_jamo']} conjoining jamo, "
                  f"{u['fullwidth']} full-width characters")
    d = rep["documents"]
    tr = rep["truncation"]
    console.print(f"documents: {d['found']:,} found, {d['kept']:,} kept, {d['dropped']:,} dropped "
                  f"({', '.join(f'{k}: {v}' for k, v in d['dropped_by_reason'].items()) or 'none'}); "
                  f"{d['duplicates']} duplicate(s) removed; {tr['lost_tokens']:,} token(s) lost in "
                  f"{tr['lost_pieces']} piece(s)" + (f", {tr['documents_mostly_lost']} document(s) mostly lost"
                                                     if tr["documents_mostly_lost"] else ""))
    pk = rep["packing"]
    eff = f"{pk['efficiency']:.1%}" if pk["efficiency"] is not None else "-"
    console.print(f"packing: {'on' if pk['packed'] else 'off'}, {pk['rows']:,} rows, efficiency {eff}; "
                  f"{rep['eval_items']:,} eval item(s)")
    print_fitted(console, "longest documents", ["id", "title", "tokens"],
                 [[x["id"], x["title"] or "", f"{x['tokens']:,}"] for x in rep["longest"]], left=("id", "title"))
