"""Write a plan as the build directory (docs/DESIGN.md), atomically: everything goes into a temporary folder
beside the target, which is renamed into place at the end. Bytes are reproducible: no timestamps, sorted keys,
fixed Parquet settings, so the same inputs and config give the same files and the same content hash.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from malmungchi import __version__
from malmungchi.contracts.build import EVAL_CONTENT, EVAL_ITEMS, BuildPaths
from malmungchi.corpus.parse import collector_paused
from malmungchi.errors import UserError
from malmungchi.hub.card import dataset_card
from malmungchi.outdir import build_out_problem, write_in_place
from malmungchi.prep.build import Plan
from malmungchi.prep.content import content_table
from malmungchi.prep.rows import SCHEMA, Buffers, row_groups
from malmungchi.prep.split import SPLITS
from malmungchi.prep.stats import report
from malmungchi.prep.tokenizer import identity

SCHEMA_VERSION = 2  # 2: splits by source identity (prep.identity), canonical answers, eval/content.parquet
ROW_GROUP = 4096  # rows per Parquet row group, written one group at a time


class OutputExists(UserError):
    """The output folder may not be written (exists without --force, or overlaps an input)."""


class EmptyBuild(UserError):
    """Nothing to train on: the build would have no training row. The message gives the counts (exit 1, as for
    lint's findings: the inputs, not the command, are the problem)."""

    exit_code = 1


def empty_build_problem(p: Plan) -> str | None:
    """Why writing `p` would give a build nobody can use, with the counts, or None: no training row although the
    split ratios ask for a train split (an evaluation-only build, train ratio 0, needs test rows instead)."""
    if p.rows["train"] or (p.cfg.splits.train == 0 and any(p.rows[name] for name in SPLITS)):
        return None
    found = len(p.documents)
    kept = sum(d.kept for d in p.documents)
    rows = ", ".join(f"{name} {len(p.rows[name])}" for name in SPLITS)
    why: dict[str, list[str]] = {}
    for d in p.documents:
        if not d.kept:
            first = (d.reason or "").split("; ")[0]
            why.setdefault(str(d.kind.value if d.kind is not None else "dropped"),
                           []).append(first if len(first) <= 100 else first[:99] + "…")
    dropped = "; ".join(f"{len(reasons)} {kind} (e.g. {reasons[0]})" if reasons[0] else f"{len(reasons)} {kind}"
                        for kind, reasons in sorted(why.items(), key=lambda kv: -len(kv[1])))
    lost = f"; {len(p.lost)} sequence(s) lost to max_length {p.cfg.max_length}" if p.lost else ""
    # kept documents whose rows all went to the other splits (a corpus of one or two short documents): the
    # split ratios say where they go, not the inputs
    elsewhere = any(p.rows[name] for name in SPLITS if name != "train")
    if elsewhere:
        advice = ("every kept document went to the validation/test splits: add documents, or pass --split-ratios "
                  "1,0,0 (or `[build.splits]` in the config) to train on all of them")
    elif not kept and "no_dialogue" in why:
        advice = ("chat mode trains on dialogues only (`|START_OF_DIALOGUE|>` blocks of `이름: 말` lines, see "
                  "--assistant-speaker; Q/A tables; messages JSONL): mark the dialogues, or build in text mode "
                  "(--mode text)")
    else:
        advice = "check the inputs and `malmungchi corpus lint`"
    return (f"nothing to train on: 0 training rows ({rows} rows; {found} document(s) found, {kept} kept, "
            f"{found - kept} dropped{': ' + dropped if dropped else ''}{lost}, in {len(p.sources)} file(s)); "
            f"{advice}")


def _dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_build(p: Plan, out: str | Path, *, force: bool = False) -> dict:
    """Write the build directory and return its manifest. The report is computed here (unless it was already),
    beside the data files being written; `prep.stats.report(p)` then returns it at no cost."""
    out = Path(out)

    def refuse_empty() -> None:
        empty = empty_build_problem(p)
        if empty:
            raise EmptyBuild(empty)

    # a --force build or export killed mid-swap is undone first; the swap and its recovery: malmungchi.outdir
    sources = [s.path for s in p.sources]
    with collector_paused():  # tens of thousands of eval items and row tables, in no cycle (as in `plan`)
        return write_in_place(out, lambda tmp: _write_into(p, tmp), force=force, error=OutputExists,
                              problem=lambda: build_out_problem(out, sources, force=force), ready=refuse_empty)


def _write_splits(p: Plan, paths: BuildPaths) -> None:
    buffers = Buffers()  # each row group is written before the next is made in the same arrays
    for name in SPLITS:
        with pq.ParquetWriter(paths.split(name), SCHEMA, compression="zstd", compression_level=3,
                              use_dictionary=False, write_statistics=False) as writer:
            for group in row_groups(p.splits[name], p.rows[name], ROW_GROUP, buffers):
                writer.write_table(group, row_group_size=ROW_GROUP)


def _write_content(p: Plan, paths: BuildPaths) -> dict:
    """`eval/content.parquet`: the test sequences with their content characters per token."""
    table, skipped = content_table(p.splits["test"], p.tokenizer, p.policies, p.cfg.speakers == "token",
                                   p.stop[0] if p.cfg.mode == "chat" else None,  # chat: the end-of-turn
                                   sizes=p.byte_lengths)
    pq.write_table(table, paths.eval_content, compression="zstd", use_dictionary=False, write_statistics=False)
    return {"content": EVAL_CONTENT, "content_sequences": table.num_rows, "content_skipped": skipped}


def _write_into(p: Plan, root: Path) -> dict:
    paths = BuildPaths(root)
    paths.data.mkdir()
    paths.eval_items.parent.mkdir()
    # Parquet encoding and compression release the GIL: the splits are written in a thread while this one makes
    # the eval items and the report and saves them and the tokenizer
    with ThreadPoolExecutor(1) as pool:
        parquet = pool.submit(_write_splits, p, paths)
        try:
            rep = report(p)  # makes the eval items too (cached on the plan)
            p.tokenizer.save_pretrained(str(paths.tokenizer))
            with paths.eval_items.open("wb") as fh:
                p.eval_items.write_to(fh)  # already one JSON object per line, keys sorted
            content = _write_content(p, paths)
            paths.report.write_text(_dump(rep), encoding="utf-8")
        finally:
            parquet.result()  # its error first, if both failed: it is the one about the data

    config = p.cfg.model_dump(mode="json")
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True, ensure_ascii=False).encode())
    for rel in sorted(str(f.relative_to(root)) for f in paths.data.rglob("*") if f.is_file()) + \
            sorted(str(f.relative_to(root)) for f in paths.tokenizer.rglob("*") if f.is_file()):
        h.update(rel.encode() + b"\0" + _sha256(root / rel).encode())
    content_hash = h.hexdigest()
    tok = p.tokenizer
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "malmungchi_version": __version__,
        "content_hash": content_hash,
        "mode": p.cfg.mode,
        "config": config,
        "inputs": [{"path": s.key, "sha256": s.sha256, "bytes": s.size} for s in p.sources],
        "documents": [d.manifest() for d in p.documents],
        "tokenizer": {**identity(tok, p.tokenizer_source), "vocab_before": p.registration.vocab_before,
                      "vocab_after": p.registration.vocab_after, "stop_token": p.stop[0], "stop_id": p.stop[1],
                      "added_tokens": p.registration.added, "reused_tokens": p.registration.reused},
        "markers": p.policies.manifest({**p.registration.reused, **p.registration.added}),
        "speakers": {r.id: r.speakers for r in p.rendered if r.speakers},
        "split_unit": p.split_unit,
        "splits": {name: {k: rep["splits"][name][k] for k in ("rows", "sequences", "tokens", "documents")}
                   for name in SPLITS},
        "eval": {"path": EVAL_ITEMS, "items": len(p.eval_items), **content},
        "figures": {k: rep[k] for k in ("tokens", "lengths", "packing", "truncation", "korean", "unicode")}
        | {"duplicates": rep["documents"]["duplicates"], "notes": rep["notes"], "warnings": rep["warnings"]},
    }
    # the card is made from the manifest (no path, no clock): the same build gives the same bytes; it is no input
    # of the content hash, which covers what training reads
    paths.card.write_text(dataset_card(manifest), encoding="utf-8")
    paths.manifest.write_text(_dump(manifest), encoding="utf-8")
    return manifest
