"""A build directory written straight from plain documents, exactly as the stage 2 → 3 contract (docs/DESIGN.md)
describes it: what the train tests train on, without going through `malmungchi corpus build`."""

from __future__ import annotations

from pathlib import Path

from malmungchi.contracts.build import ROW_COLUMNS, BuildPaths

DEFAULT_MARKERS = {
    "SOUND": ("<|sound|>", "소리"),
    "START_OF_DIALOGUE": ("<|start_of_dialogue|>", "대화"),
    "END_OF_DIALOGUE": ("<|end_of_dialogue|>", "대화"),
    "LAUGH": ("<|laugh|>", ""),  # no description: initialised from the mean of all rows
}


def write_contract_build(out_dir: str | Path, base_tokenizer_dir: str | Path, splits: dict[str, list[tuple[str, str]]],
                         *, row_len: int = 128, markers: dict[str, tuple[str, str]] | None = None,
                         mask_first: int = 0, pack: bool = True) -> Path:
    """Write a build directory exactly as the stage 2 → 3 contract (docs/DESIGN.md) describes it, from plain
    documents: `splits` maps a split name to `(doc_id, text)` pairs. Markers are added to the tokenizer as special
    tokens; each document is tokenized, ended with eos, cut to `row_len` and packed first-fit into rows of at most
    `row_len` tokens (one document a row with `pack=False`, as `corpus build --no-pack` writes them). `mask_first`
    tokens of each document get assistant_mask 0 (to exercise loss masking).

    Faster than `malmungchi corpus build`, and independent of it: the train tests read what the contract says."""
    import hashlib
    import json

    import polars as pl
    from transformers import AutoTokenizer

    out = Path(out_dir)
    paths = BuildPaths(out)
    paths.data.mkdir(parents=True, exist_ok=True)
    markers = DEFAULT_MARKERS if markers is None else markers
    tok = AutoTokenizer.from_pretrained(str(base_tokenizer_dir))
    vocab_before = len(tok)
    tok.add_tokens([t for t, _ in markers.values()], special_tokens=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.save_pretrained(paths.tokenizer)
    added = {t: tok.convert_tokens_to_ids(t) for t, _ in markers.values()}
    eos = tok.eos_token_id
    split_stats = {}
    documents = []
    for split, docs in splits.items():
        seqs = []
        for doc_id, text in docs:
            ids = tok.encode(text, add_special_tokens=False)[: row_len - 1] + [eos]
            seqs.append((doc_id, ids))
            documents.append({"id": doc_id, "source": "tiny", "title": doc_id, "split": split, "status": "kept",
                              "reason": None, "tokens": len(ids)})
        rows: list[list[tuple[str, list[int]]]] = []
        for doc_id, ids in seqs:  # first fit
            for row in rows:
                if pack and sum(len(s) for _, s in row) + len(ids) <= row_len:
                    row.append((doc_id, ids))
                    break
            else:
                rows.append([(doc_id, ids)])
        table: dict[str, list] = {column: [] for column in ROW_COLUMNS}
        for row in rows:
            table["input_ids"].append([i for _, s in row for i in s])
            table["assistant_masks"].append([int(k >= mask_first) for _, s in row for k in range(len(s))])
            table["position_ids"].append([k for _, s in row for k in range(len(s))])
            table["seq_lengths"].append([len(s) for _, s in row])
            table["doc_ids"].append([d for d, _ in row])
        schema = {"input_ids": pl.List(pl.Int32), "assistant_masks": pl.List(pl.Int8),
                  "position_ids": pl.List(pl.Int32), "seq_lengths": pl.List(pl.Int32), "doc_ids": pl.List(pl.String)}
        pl.DataFrame(table, schema=schema).write_parquet(paths.split(split))
        split_stats[split] = {"rows": len(rows), "sequences": len(seqs), "documents": len(seqs),
                              "tokens": sum(len(s) for _, s in seqs)}
    h = hashlib.sha256()
    for f in sorted(paths.data.glob("*.parquet")) + sorted(paths.tokenizer.iterdir()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    manifest = {
        "schema_version": 1,
        "content_hash": h.hexdigest(),
        "inputs": [],
        "documents": documents,
        "config": {"row_len": row_len},
        "mode": "text",
        "tokenizer": {"source": str(base_tokenizer_dir), "class": type(tok).__name__, "vocab_before": vocab_before,
                      "vocab_after": len(tok), "eos_token": tok.eos_token, "eos_id": eos,
                      "pad_token": tok.pad_token, "pad_id": tok.pad_token_id, "stop_token": tok.eos_token,
                      "stop_id": eos, "added_tokens": added},
        "markers": {name: {"policy": "special", "token": t, "id": added[t], "description": d}
                    for name, (t, d) in markers.items()},
        "splits": split_stats,
        "figures": {},
    }
    paths.manifest.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    paths.report.write_text("{}", encoding="utf-8")
    return out
