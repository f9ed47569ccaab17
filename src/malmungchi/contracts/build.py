"""The build directory, the stage 2 → 3 contract (docs/DESIGN.md): the names of its files, recognising one, and
reading and checking it before any model is loaded.

`corpus build` writes it (`malmungchi.prep.write`), `train run` reads it (`read_build_dir`), `eval` takes its
`eval/test.jsonl` as gold and its mode; all of them spell its files through this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from malmungchi.errors import UserError

BUILD_MANIFEST = "manifest.json"  # written last: its presence means the build finished
BUILD_REPORT = "report.json"
BUILD_CARD = "README.md"  # the dataset card: its `configs:` make `datasets.load_dataset(BUILD_DIR)` load the splits
BUILD_TOKENIZER = "tokenizer"
BUILD_DATA = "data"
EVAL_ITEMS = "eval/test.jsonl"  # as the manifest's "eval.path" names it
EVAL_CONTENT = "eval/content.parquet"  # content characters per test token ("eval.content")
SPLITS = ("train", "validation", "test")
ROW_COLUMNS = ("input_ids", "assistant_masks", "position_ids", "seq_lengths", "doc_ids")


class BuildDirError(UserError):
    """BUILD_DIR is not a whole build directory; one line per problem, each naming the file."""


@dataclass(frozen=True)
class BuildPaths:
    """Where each file of the build directory at `root` lies."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / BUILD_MANIFEST

    @property
    def report(self) -> Path:
        return self.root / BUILD_REPORT

    @property
    def card(self) -> Path:
        return self.root / BUILD_CARD

    @property
    def tokenizer(self) -> Path:
        return self.root / BUILD_TOKENIZER

    @property
    def data(self) -> Path:
        return self.root / BUILD_DATA

    def split(self, name: str) -> Path:
        return self.data / f"{name}.parquet"

    @property
    def eval_items(self) -> Path:
        return self.root / EVAL_ITEMS

    @property
    def eval_content(self) -> Path:
        return self.root / EVAL_CONTENT


def is_build_dir(path: str | Path) -> bool:
    """True when `path` is a build directory written by `malmungchi corpus build` (its manifest names us)."""
    try:
        data = json.loads(BuildPaths(Path(path)).manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "malmungchi_version" in data and "content_hash" in data


def build_mode(path: str | Path) -> str | None:
    """The build's mode (text/chat) when `path` is a build directory with a readable manifest, else None."""
    manifest = BuildPaths(Path(path)).manifest
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("mode") if manifest.is_file() else None
    except (OSError, ValueError):
        return None


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
        return BuildPaths(self.path).tokenizer

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

    def most_sequences_per_row(self, split: str) -> int:
        """The most packed sequences a row of `split` holds (`seq_lengths`): 1 when every row is one sequence, as in
        a `--no-pack` build; 0 for no rows."""
        if split not in self.splits or not len(self.splits[split]):
            return 0
        import pyarrow.compute as pc

        table = self.splits[split].data.table
        return int(pc.max(pc.list_value_length(table.column("seq_lengths"))).as_py() or 0)


def _load_split(path: Path):
    import datasets
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - arrow raises many kinds
        raise BuildDirError(f"{path}: cannot read parquet: {exc}") from None
    missing = [c for c in ROW_COLUMNS if c not in table.column_names]
    if missing:
        raise BuildDirError(f"{path}: missing column{'s' * (len(missing) > 1)} {', '.join(missing)} "
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
        if not pc.all(pc.equal(n_ids, pc.list_value_length(t.column(col))), min_count=0).as_py():  # 0 rows: true
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
    """Read and check BUILD_DIR (its train and validation splits); raise BuildDirError with every problem found."""
    root = Path(path)
    if not root.is_dir():
        raise BuildDirError(f"{root}: no such build directory")
    paths = BuildPaths(root)
    mpath = paths.manifest
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildDirError(f"{mpath}: missing (is {root} a build directory? run `malmungchi corpus build`)") from None
    except (OSError, ValueError) as exc:
        raise BuildDirError(f"{mpath}: cannot read: {exc}") from None
    lines = []
    for key in ("content_hash", "tokenizer"):
        if key not in manifest:
            lines.append(f"{mpath}: no {key!r}")
    tok = manifest.get("tokenizer") or {}
    for key in ("vocab_before", "vocab_after"):
        if key not in tok:
            lines.append(f"{mpath}: tokenizer has no {key!r}")
    if not paths.tokenizer.is_dir():
        lines.append(f"{paths.tokenizer}: missing")
    if not paths.split("train").is_file():
        lines.append(f"{paths.split('train')}: missing")
    if lines:
        raise BuildDirError(*lines)
    build = BuildDir(path=root, manifest=manifest, content_hash=str(manifest["content_hash"]))
    for split in ("train", "validation"):
        if paths.split(split).is_file():
            build.splits[split] = _load_split(paths.split(split))
    if check:
        for split, ds in build.splits.items():
            lines += check_rows(str(paths.split(split)), ds, build.vocab_after)
    if not len(build.splits["train"]):
        lines.append(f"{paths.split('train')}: no rows")
    if lines:
        raise BuildDirError(*lines)
    return build
