"""`corpus export`: a build's sequences (the same `plan()`, so the same documents in the same splits) written for
another trainer instead of as packed Parquet rows. One function per format; `FORMATS` says which build mode each
takes and what it writes.

| format | modes | per split | beside it |
|---|---|---|---|
| `messages` | chat | `SPLIT.jsonl`: `{"id", "doc_id", "messages"}` (OpenAI / trl conversational) | |
| `sharegpt` | chat | `SPLIT.jsonl`: `{"id", "doc_id", "conversations": [{"from", "value"}], "system"}` | `dataset_info.json`, `new_special_tokens.yaml` (LLaMA-Factory) |
| `alpaca` | chat | `SPLIT.jsonl`: `{"id", "doc_id", "instruction", "input", "output", "system", "history"}` | the same |
| `axolotl` | text, chat | `SPLIT.jsonl`: `{"id", "doc_id", "segments": [{"label", "text"}]}` (`type: input_output`) | `axolotl.yaml` |
| `tokenized` | text, chat | `SPLIT.parquet`: `id`, `doc_id`, `input_ids`, `attention_mask`, `labels` (-100 off the loss), one sequence a row | |

Text-mode builds have no conversations, so the three conversational formats refuse them (an alpaca pair made of
eval-style prompt → turn would train something else than the build does); `axolotl` and `tokenized` carry the
build's own tokens and loss mask in either mode.

Every record is one sequence of the build (a document, a chunk of one, or a conversation), in the build's order,
with its `id` and `doc_id` (the manifest's document id). LLaMA-Factory wants a conversation to start with a user
turn: one that starts with the assistant gets an empty user turn first (counted in the summary's notes).

`axolotl`: each run of tokens with the same loss mask is decoded into one segment. Axolotl tokenizes every segment
on its own without special tokens and concatenates the ids; the export does the same and compares with the build's
ids, and the summary counts the sequences where that differs (`not_lossless`: a token spanning a segment boundary,
or a tokenizer that does not give back its own decoding).

Bytes are reproducible: sorted keys, no timestamps, fixed Parquet settings. Everything is written into a temporary
folder beside `out` and renamed into place, as a build is (`malmungchi.outdir`: the folder gets the umask's mode,
a `--force` killed mid-swap is undone by the next export or build of `out`, temporaries of dead writers are
removed); `export.json` (the summary) is written last.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from malmungchi.contracts.build import SPLITS
from malmungchi.errors import UserError
from malmungchi.hub.card import quoted
from malmungchi.outdir import overlap_problem, write_in_place
from malmungchi.prep import arrays

if TYPE_CHECKING:  # the CLI imports this module for its format names; the build machinery comes with the plan
    from malmungchi.prep.build import Plan
    from malmungchi.prep.encode import Seq

EXPORT_SUMMARY = "export.json"  # written last: its presence means the export finished
IGNORE_INDEX = -100  # the label of a token without loss (transformers, trl, axolotl, LLaMA-Factory)
TOKENIZED_ROW_GROUP = 1024 * 1024  # rows: pyarrow's default row group size, which tokenized exports always had
TOKENIZED_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("doc_id", pa.string()),
    ("input_ids", pa.list_(pa.int32())),
    ("attention_mask", pa.list_(pa.int8())),
    ("labels", pa.list_(pa.int32())),
])


class ExportError(UserError):
    """A format that does not apply to the build, or an output folder that may not be written."""


@dataclass
class _Context:
    """What the writers share: the plan and the notes they leave for the summary."""
    plan: Plan
    notes: dict[str, int]

    def note(self, key: str, n: int = 1) -> None:
        self.notes[key] = self.notes.get(key, 0) + n


@dataclass(frozen=True)
class Format:
    name: str
    modes: tuple[str, ...]
    suffix: str  # of the per-split files
    records: Callable[[_Context, list[Seq]], Iterable[dict]] | None  # JSONL formats
    extras: Callable[[_Context, Path, list[str]], list[str]] | None = None  # files beside the splits
    doc: str = ""


# ---- conversational formats (chat mode) ----------------------------------------------------------------------

def _messages(ctx: _Context, seqs: list[Seq]) -> Iterator[dict]:
    for q in seqs:
        yield {"id": q.id, "doc_id": q.doc_id, "messages": [dict(m) for m in q.src.messages or []]}


def _turns(ctx: _Context, q: Seq) -> tuple[str, list[tuple[str, str]]]:
    """The system prompt and the conversation as alternating (user, assistant) pairs, as LLaMA-Factory reads
    them; a conversation opening with the assistant gets an empty user turn first."""
    msgs = list(q.src.messages or [])
    system = msgs.pop(0)["content"] if msgs and msgs[0]["role"] == "system" else ""
    if msgs and msgs[0]["role"] == "assistant":
        msgs.insert(0, {"role": "user", "content": ""})
        ctx.note("conversations opening with the assistant (an empty user turn put first)")
    pairs = []
    for k in range(0, len(msgs), 2):
        user, reply = msgs[k], msgs[k + 1] if k + 1 < len(msgs) else None
        if user["role"] != "user" or reply is None or reply["role"] != "assistant":
            raise ExportError(f"{q.id}: its messages do not alternate user/assistant "
                              f"({', '.join(m['role'] for m in msgs)}); LLaMA-Factory's formats need that")
        pairs.append((user["content"], reply["content"]))
    return system, pairs


def _sharegpt(ctx: _Context, seqs: list[Seq]) -> Iterator[dict]:
    for q in seqs:
        system, pairs = _turns(ctx, q)
        conv = []
        for user, reply in pairs:
            conv += [{"from": "human", "value": user}, {"from": "gpt", "value": reply}]
        yield {"id": q.id, "doc_id": q.doc_id, "conversations": conv, "system": system}


def _alpaca(ctx: _Context, seqs: list[Seq]) -> Iterator[dict]:
    for q in seqs:
        system, pairs = _turns(ctx, q)
        (instruction, output), history = pairs[-1], [list(p) for p in pairs[:-1]]
        yield {"id": q.id, "doc_id": q.doc_id, "instruction": instruction, "input": "", "output": output,
               "system": system, "history": history}


def new_tokens(p: Plan) -> dict[str, str]:
    """Every token the build added to the tokenizer (in id order) → the description its embedding is initialised
    from: the marker's, or `화자 N` for a speaker token."""
    described = {i.rendered: i.description for i in p.policies.info.values() if i.policy == "special"}
    out = {}
    for token, tid in sorted(p.registration.added.items(), key=lambda kv: kv[1]):
        if tid < p.registration.vocab_before:
            continue
        speaker = token.removeprefix("<|speaker_").removesuffix("|>")
        out[token] = described.get(token) or (f"화자 {speaker}" if speaker.isdigit() else token)
    return out


def _llamafactory(ctx: _Context, root: Path, splits: list[str], formatting: str) -> list[str]:
    """`dataset_info.json` (one dataset per split, `malmungchi_SPLIT`) and `new_special_tokens.yaml` (token →
    description, for `new_special_tokens_config` with `init_special_tokens: desc_init`)."""
    if formatting == "sharegpt":
        entry = {"formatting": "sharegpt", "columns": {"messages": "conversations", "system": "system"},
                 "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}}
    else:
        entry = {"formatting": "alpaca", "columns": {"prompt": "instruction", "query": "input", "response": "output",
                                                      "system": "system", "history": "history"}}
    info = {f"malmungchi_{name}": {"file_name": f"{name}.jsonl", **entry} for name in splits}
    _write_text(root / "dataset_info.json", json.dumps(info, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    tokens = new_tokens(ctx.plan)
    lines = [f"{quoted(t)}: {quoted(d)}" for t, d in tokens.items()]
    # LLaMA-Factory registers these as *special* tokens, which decoding with skip_special_tokens (its default)
    # deletes from generated text; malmungchi registers them as plain added tokens. Say so where it is read.
    note = (["# new_special_tokens_config registers these as special tokens: generate with skip_special_tokens: false",
             "# to see them in the output, or give add_tokens: " + ",".join(tokens) + " instead (plain added",
             "# tokens, as malmungchi registers them; no desc_init then)."] if tokens else [])
    _write_text(root / "new_special_tokens.yaml", "\n".join(note + lines) + "\n" if lines else "{}\n")
    return ["dataset_info.json", "new_special_tokens.yaml"]


# ---- axolotl input_output segments (both modes) --------------------------------------------------------------

def runs(mask: np.ndarray) -> list[tuple[int, int, bool]]:
    """(start, end, loss) of each maximal run of equal mask values."""
    if not len(mask):
        return []
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), len(mask)]
    return [(a, b, bool(mask[a])) for a, b in zip(bounds, bounds[1:])]


def _mask(q: Seq) -> np.ndarray:
    return q.mask if q.has_mask else np.ones(q.n, np.int8)


def segments(tok, ids: np.ndarray, mask: np.ndarray) -> list[dict]:
    """The sequence as axolotl `input_output` segments: each run of equal loss mask decoded as it was tokenized."""
    return [{"label": loss, "text": tok.decode(ids[a:b].tolist(), skip_special_tokens=False,
                                               clean_up_tokenization_spaces=False)}
            for a, b, loss in runs(mask)]


def retokenize(tok, segs: list[dict]) -> list[int]:
    """What axolotl's `input_output` makes of `segs`: each text tokenized on its own without special tokens, the
    ids concatenated."""
    if not segs:
        return []
    out: list[int] = []
    for ids in tok([s["text"] for s in segs], add_special_tokens=False)["input_ids"]:
        out += ids
    return out


def _axolotl(ctx: _Context, seqs: list[Seq]) -> Iterator[dict]:
    tok = ctx.plan.tokenizer
    for q in seqs:
        ids = q.ids
        segs = segments(tok, ids, _mask(q))
        if retokenize(tok, segs) != ids.tolist():
            ctx.note("not_lossless")
        yield {"id": q.id, "doc_id": q.doc_id, "segments": segs}


def _axolotl_yaml(ctx: _Context, root: Path, splits: list[str]) -> list[str]:
    """A config snippet: the datasets, the build's tokenizer (its ids are the export's), the added tokens and the
    rows peft should train for them. Paths are relative to the export folder (run axolotl from there), so the
    bytes do not depend on where it was written."""
    tokens = new_tokens(ctx.plan)
    ids = [ctx.plan.registration.added[t] for t in tokens]
    lines = ["# axolotl config snippet written by `malmungchi corpus export --format axolotl`; paths are relative",
             "# to this folder. The build's tokenizer: the segments tokenize back to the export's ids with it.",
             "tokenizer_config: tokenizer"]
    if "train" in splits:
        lines += ["datasets:", "  - path: train.jsonl", "    ds_type: json", "    type: input_output"]
    if "validation" in splits:
        lines += ["test_datasets:", "  - path: validation.jsonl", "    ds_type: json", "    type: input_output",
                  "    split: train"]
    lines += ["train_on_inputs: false",
              "sample_packing: false  # packed sequences would attend to each other without a varlen kernel"]
    if tokens:
        lines += ["tokens:  # the added tokens (already in the build's tokenizer, in this order)"]
        lines += [f"  - {quoted(t)}" for t in tokens]
        lines += [f"peft_trainable_token_indices: [{', '.join(str(i) for i in ids)}]  # their embedding rows"]
    _write_text(root / "axolotl.yaml", "\n".join(lines) + "\n")
    return ["axolotl.yaml"]


# ---- tokenized rows (both modes) -----------------------------------------------------------------------------

def tokenized_table(seqs: list[Seq]) -> pa.Table:
    """One unpacked sequence per row; `labels` are the ids with IGNORE_INDEX where the build has no loss. The
    columns are made with `prep.arrays` from flat numpy buffers and one offsets array shared by the three list
    columns (not `arrays.list_of_arrays` per column, which would make the offsets and flat buffers three times):
    about 10 bytes a token, no Python object per token. At most `arrays.MAX_LIST_VALUES` tokens (the offsets are
    int32; OverflowError past that): `tokenized_tables` cuts a split into tables that fit."""
    row_offsets = arrays.offsets([q.n for q in seqs])
    ids = np.concatenate([q.ids for q in seqs]).astype(np.int32, copy=False) if seqs else np.zeros(0, np.int32)
    if any(q.has_mask for q in seqs):
        labels = np.where(np.concatenate([_mask(q) for q in seqs]) == 1, ids, IGNORE_INDEX).astype(np.int32)
    else:  # text mode: every token carries the loss
        labels = ids
    return pa.Table.from_arrays([
        arrays.strings([q.id for q in seqs]),
        arrays.strings([q.doc_id for q in seqs]),
        arrays.lists(row_offsets, arrays.numeric(ids)),
        arrays.lists(row_offsets, arrays.numeric(np.ones(len(ids), np.int8))),
        arrays.lists(row_offsets, arrays.numeric(labels)),
    ], schema=TOKENIZED_SCHEMA)


def tokenized_tables(seqs: list[Seq]) -> Iterator[pa.Table]:
    """`tokenized_table` of consecutive runs of `seqs` of at most TOKENIZED_ROW_GROUP rows and
    `arrays.MAX_LIST_VALUES` tokens (one empty table for none): one Parquet row group each, so only one run's
    buffers are in memory."""
    start = 0
    while True:
        end, tokens = start, 0
        while end < len(seqs) and end - start < TOKENIZED_ROW_GROUP and \
                tokens + seqs[end].n <= arrays.MAX_LIST_VALUES:
            tokens += seqs[end].n
            end += 1
        if end == start < len(seqs):
            raise ExportError(f"{seqs[start].id}: {seqs[start].n} tokens, more than one Parquet list holds")
        yield tokenized_table(seqs[start:end])
        if end >= len(seqs):
            return
        start = end


def _write_tokenized(path: Path, seqs: list[Seq]) -> None:
    """The split as `pq.write_table(tokenized_table(seqs), ...)` wrote it before (the same settings and row groups,
    so the same bytes), one row group at a time."""
    with pq.ParquetWriter(path, TOKENIZED_SCHEMA, compression="zstd", use_dictionary=False,
                          write_statistics=False) as writer:
        for table in tokenized_tables(seqs):
            writer.write_table(table, row_group_size=TOKENIZED_ROW_GROUP)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("messages", ("chat",), ".jsonl", _messages,
           doc="OpenAI / trl conversational JSONL ({\"messages\": [...]})"),
    Format("sharegpt", ("chat",), ".jsonl", _sharegpt, lambda c, r, s: _llamafactory(c, r, s, "sharegpt"),
           doc="LLaMA-Factory sharegpt JSONL with dataset_info.json and new_special_tokens.yaml"),
    Format("alpaca", ("chat",), ".jsonl", _alpaca, lambda c, r, s: _llamafactory(c, r, s, "alpaca"),
           doc="LLaMA-Factory alpaca JSONL (instruction/output/history) with dataset_info.json"),
    Format("axolotl", ("text", "chat"), ".jsonl", _axolotl, _axolotl_yaml,
           doc="axolotl input_output segments (label per run of equal loss mask) with an axolotl.yaml snippet"),
    Format("tokenized", ("text", "chat"), ".parquet", None,
           doc="unpacked token ids with labels (-100 off the loss), one sequence a row"),
)}


def format_problem(fmt: str, mode: str) -> str | None:
    """Why `fmt` cannot export a `mode` build, or None."""
    if fmt not in FORMATS:
        return f"--format {fmt}: choose one of {', '.join(FORMATS)}"
    f = FORMATS[fmt]
    if mode not in f.modes:
        takes = ", ".join(n for n, g in FORMATS.items() if mode in g.modes)
        return (f"--format {fmt} needs a chat-mode build (--mode chat): a text-mode build has no conversations; "
                f"a text-mode build exports as {takes}")
    return None


# ---- writing -------------------------------------------------------------------------------------------------

def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _write_jsonl(path: Path, records: Iterable[dict]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n")
            n += 1
    return n


def is_export_dir(path: Path) -> bool:
    """True when `path` is a finished export (its summary is there)."""
    return (path / EXPORT_SUMMARY).is_file()


def out_problem(out: Path, inputs: Iterable[str], *, force: bool) -> str | None:
    """Why the export may not write `out`, or None: never over or around an input; an existing folder only with
    force, and only when it is an earlier export."""
    problem = overlap_problem(out, inputs)
    if problem:
        return problem
    if not out.exists() and not out.is_symlink():
        return None
    if not force:
        return f"{out} already exists; pass --force to replace it"
    if not out.is_dir() or (any(out.iterdir()) and not is_export_dir(out)):
        return (f"--out {out} is not an earlier export (no {EXPORT_SUMMARY}): --force only replaces one; choose "
                "another --out")
    return None


def export(p: Plan, out: str | Path, fmt: str, split: str = "all", *, force: bool = False) -> dict:
    """Write `p` in format `fmt` into the folder `out` (one file per split, or only `split`) and return the
    summary (also written as `export.json`)."""
    out = Path(out)
    problem = format_problem(fmt, p.cfg.mode)
    if problem:
        raise ExportError(problem)
    if split != "all" and split not in SPLITS:
        raise ExportError(f"--split {split}: choose one of {', '.join(SPLITS)} or all")
    names = list(SPLITS) if split == "all" else [split]
    # a --force export or build killed mid-swap is undone first; the swap and its recovery: malmungchi.outdir
    sources = [s.path for s in p.sources]
    return write_in_place(out, lambda tmp: _write_into(p, tmp, FORMATS[fmt], names), force=force, error=ExportError,
                          problem=lambda: out_problem(out, sources, force=force))


def _write_into(p: Plan, root: Path, f: Format, names: list[str]) -> dict:
    ctx = _Context(p, {})
    splits = {}
    for name in names:
        seqs = p.splits[name]
        path = root / f"{name}{f.suffix}"
        if f.records is None:
            _write_tokenized(path, seqs)
            n = len(seqs)
        else:
            n = _write_jsonl(path, f.records(ctx, seqs))
        splits[name] = {"file": path.name, "records": n, "documents": len({q.doc_id for q in seqs}),
                        "tokens": int(sum(q.n for q in seqs))}
    p.tokenizer.save_pretrained(str(root / "tokenizer"))
    files = [splits[n]["file"] for n in names] + ["tokenizer/"]
    if f.extras is not None:
        files += f.extras(ctx, root, names)
    notes = dict(sorted(ctx.notes.items()))
    summary = {"format": f.name, "mode": p.cfg.mode, "splits": splits, "files": files,
               "new_tokens": new_tokens(p)}
    if f.name == "axolotl":  # sequences whose segments do not tokenize back to the build's ids
        summary["not_lossless"] = notes.pop("not_lossless", 0)
    summary["notes"] = notes
    _write_text(root / EXPORT_SUMMARY, json.dumps(summary, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    return summary
