"""Reading a build directory (the stage 2 → 3 contract in docs/DESIGN.md), checked before any model is loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from malmungchi.train.errors import TrainError

ROW_COLUMNS = ("input_ids", "assistant_masks", "position_ids", "seq_lengths", "doc_ids")


@dataclass
class NewToken:
    """A token the build added to the tokenizer, which the base model has never seen."""

    token: str
    id: int
    marker: str | None = None
    description: str = ""


@dataclass
class BuildDir:
    path: Path
    manifest: dict[str, Any]
    content_hash: str
    splits: dict[str, Any] = field(default_factory=dict)  # name -> datasets.Dataset

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    @property
    def tok(self) -> dict[str, Any]:
        return self.manifest["tokenizer"]

    @property
    def vocab_before(self) -> int:
        return int(self.tok["vocab_before"])

    @property
    def vocab_after(self) -> int:
        return int(self.tok["vocab_after"])

    def new_tokens(self) -> list[NewToken]:
        """The tokens added by the build (id >= vocab_before), with the marker description where one registered
        them."""
        by_id: dict[int, NewToken] = {}
        for name, tid in (self.tok.get("added_tokens") or {}).items():
            if int(tid) >= self.vocab_before:
                by_id[int(tid)] = NewToken(token=name, id=int(tid))
        for marker, entry in (self.manifest.get("markers") or {}).items():
            tid = entry.get("id")
            if tid is None or int(tid) < self.vocab_before:
                continue
            nt = by_id.setdefault(int(tid), NewToken(token=entry.get("token") or marker, id=int(tid)))
            nt.marker = marker
            nt.description = entry.get("description") or ""
        return [by_id[i] for i in sorted(by_id)]

    def rows(self, split: str) -> int:
        return len(self.splits[split]) if split in self.splits else 0

    def real_tokens(self, split: str) -> int:
        if split not in self.splits:
            return 0
        import pyarrow.compute as pc

        table = self.splits[split].data.table
        return int(pc.sum(pc.list_value_length(table.column("input_ids"))).as_py() or 0)


def _load_split(path: Path):
    import datasets
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - arrow raises many kinds
        raise TrainError(f"{path}: cannot read parquet: {exc}") from None
    missing = [c for c in ROW_COLUMNS if c not in table.column_names]
    if missing:
        raise TrainError(f"{path}: missing column{'s' * (len(missing) > 1)} {', '.join(missing)} "
                         "(see 'Stage 2 → 3 contract' in docs/DESIGN.md)")
    from datasets.table import InMemoryTable

    return datasets.Dataset(InMemoryTable(table.select(list(ROW_COLUMNS))))


def check_rows(name: str, ds, vocab_rows: int) -> list[str]:
    """Check the row invariants the collator relies on; return one line per broken invariant."""
    import numpy as np
    import pyarrow.compute as pc

    t = ds.data.table
    lines = []
    n_ids = pc.list_value_length(t.column("input_ids"))
    for col in ("assistant_masks", "position_ids"):
        if not pc.all(pc.equal(n_ids, pc.list_value_length(t.column(col)))).as_py():
            lines.append(f"{name}: {col} and input_ids differ in length in some rows")
    seq_sum = np.array([sum(x) for x in t.column("seq_lengths").to_pylist()], dtype=np.int64)
    if not np.array_equal(seq_sum, n_ids.to_numpy(zero_copy_only=False)):
        bad = int(np.nonzero(seq_sum != n_ids.to_numpy(zero_copy_only=False))[0][0])
        lines.append(f"{name}: row {bad}: seq_lengths do not add up to the row length")
    elif len(ds):
        flat_ids = pc.list_flatten(t.column("input_ids")).to_numpy(zero_copy_only=False)
        if len(flat_ids) and (flat_ids.min() < 0 or flat_ids.max() >= vocab_rows):
            lines.append(f"{name}: token id {int(flat_ids.max())} outside the tokenizer ({vocab_rows} ids)")
        flat_pos = pc.list_flatten(t.column("position_ids")).to_numpy(zero_copy_only=False)
        lengths = np.concatenate([np.asarray(x, dtype=np.int64) for x in t.column("seq_lengths").to_pylist()])
        expect = _positions(lengths)
        if not np.array_equal(flat_pos.astype(np.int64), expect):
            lines.append(f"{name}: position_ids do not restart at 0 at each packed sequence of seq_lengths")
    return lines


def _positions(lengths):
    import numpy as np

    lengths = np.asarray(lengths, dtype=np.int64)
    lengths = lengths[lengths > 0]
    if not len(lengths):
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) - starts


def read_build_dir(path: str | Path, *, check: bool = True) -> BuildDir:
    """Read and check BUILD_DIR; raise TrainError with every problem found."""
    root = Path(path)
    if not root.is_dir():
        raise TrainError(f"{root}: no such build directory")
    mpath = root / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainError(f"{mpath}: missing (is {root} a build directory? run `malmungchi corpus build`)") from None
    except (OSError, ValueError) as exc:
        raise TrainError(f"{mpath}: cannot read: {exc}") from None
    lines = []
    for key in ("content_hash", "tokenizer"):
        if key not in manifest:
            lines.append(f"{mpath}: no {key!r}")
    tok = manifest.get("tokenizer") or {}
    for key in ("vocab_before", "vocab_after"):
        if key not in tok:
            lines.append(f"{mpath}: tokenizer has no {key!r}")
    if not (root / "tokenizer").is_dir():
        lines.append(f"{root / 'tokenizer'}: missing")
    if not (root / "data" / "train.parquet").is_file():
        lines.append(f"{root / 'data' / 'train.parquet'}: missing")
    if lines:
        raise TrainError(*lines)
    build = BuildDir(path=root, manifest=manifest, content_hash=str(manifest["content_hash"]))
    for split in ("train", "validation"):
        f = root / "data" / f"{split}.parquet"
        if f.is_file():
            build.splits[split] = _load_split(f)
    if check:
        for split, ds in build.splits.items():
            lines += check_rows(f"{root / 'data' / (split + '.parquet')}", ds, build.vocab_after)
    if not len(build.splits["train"]):
        lines.append(f"{root / 'data' / 'train.parquet'}: no rows")
    if lines:
        raise TrainError(*lines)
    return build
