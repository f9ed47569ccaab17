"""Content bits per character: how well a model predicts a build's test text, comparable across marker policies
and tokenizers.

Teacher-forced over each test sequence of `eval/content.parquet` (`prep.content`): every token after the first
is predicted from those before it; its loss in bits is weighted by the share of its characters that are content
(marker tokens weigh 0, a token mixing marker and text counts its share), summed, and divided by the content's
characters (and, for `bits_per_byte`, its UTF-8 bytes, as lm-evaluation-harness's `bits_per_byte`). The first
token of a sequence is given, never predicted: its characters count in neither sum. Lower is better.

Per document sums are kept so two runs can be compared document by document (`experiment`'s paired bootstrap).
Cost: one forward pass per test sequence, in length-sorted batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from malmungchi.contracts.build import BuildPaths
from malmungchi.eval.records import EvalInputError

LN2 = math.log(2)


@dataclass
class Sums:
    bits: float = 0.0
    chars: int = 0
    bytes: int = 0
    tokens: int = 0

    def add(self, other: Sums) -> None:
        self.bits += other.bits
        self.chars += other.chars
        self.bytes += other.bytes
        self.tokens += other.tokens

    @property
    def bpc(self) -> float | None:
        return self.bits / self.chars if self.chars else None

    @property
    def bits_per_byte(self) -> float | None:
        return self.bits / self.bytes if self.bytes else None


@dataclass
class ContentBpc:
    total: Sums
    by_doc: dict[str, Sums] = field(default_factory=dict)

    def as_dict(self) -> dict:
        t = self.total
        return {"bpc": t.bpc, "bits_per_byte": t.bits_per_byte, "bits": t.bits, "content_chars": t.chars,
                "content_bytes": t.bytes, "tokens": t.tokens, "documents": len(self.by_doc),
                "by_doc": {k: {"bits": v.bits, "chars": v.chars, "bytes": v.bytes, "tokens": v.tokens}
                           for k, v in sorted(self.by_doc.items())}}


def read_content(build_dir: str | Path) -> list[dict]:
    """The rows of a build's `eval/content.parquet` (text-mode builds of schema 2 on)."""
    import pyarrow.parquet as pq

    path = BuildPaths(Path(build_dir)).eval_content
    if not path.is_file():
        raise EvalInputError(f"{path}: no such file; content bits per character need a text-mode build made by "
                             "this version of malmungchi (rebuild with `malmungchi corpus build`)")
    return pq.read_table(path).to_pylist()


def content_bpc(model, rows: list[dict], *, batch_tokens: int = 8192,
                on_progress: Callable[[int], None] | None = None) -> ContentBpc:
    """Content bits per character of `model` on `rows` (see the module docstring)."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))
    out = ContentBpc(Sums())
    model.eval()
    start = 0
    while start < len(order):
        longest = max(1, len(rows[order[start]]["input_ids"]))
        size = max(1, batch_tokens // longest)
        batch = [rows[i] for i in order[start:start + size]]
        start += size
        ids = torch.zeros(len(batch), longest, dtype=torch.long)
        mask = torch.zeros(len(batch), longest, dtype=torch.long)
        for k, r in enumerate(batch):
            ids[k, :len(r["input_ids"])] = torch.tensor(r["input_ids"], dtype=torch.long)
            mask[k, :len(r["input_ids"])] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:].to(device),
                                                    reduction="none").cpu().numpy()
        for k, r in enumerate(batch):
            out.total.add(s := _row_sums(nll[k], r))
            out.by_doc.setdefault(r["doc_id"], Sums()).add(s)
        if on_progress is not None:
            on_progress(len(batch))
    return out


def _row_sums(nll: np.ndarray, row: dict) -> Sums:
    """One sequence's bits over its predicted tokens (1..n-1), weighted by their content share."""
    n = len(row["input_ids"])
    chars = np.asarray(row["chars"][1:n], dtype=np.float64)
    content = np.asarray(row["content_chars"][1:n], dtype=np.float64)
    share = np.divide(content, chars, out=np.zeros_like(content), where=chars > 0)
    bits = float((nll[:n - 1] * share).sum() / LN2)
    return Sums(bits, int(content.sum()), int(sum(row["content_bytes"][1:n])), int((share > 0).sum()))
