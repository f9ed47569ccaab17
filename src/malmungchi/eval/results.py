"""The `eval run` results file as a crash-safe append log.

Invariants, whatever moment the process is killed at:
- each batch's lines go out in one `write` followed by flush + fsync, so a kill loses at most the batch in
  flight and a line is either whole or is the unterminated last line;
- on resume the unterminated tail is cut off (truncating the file to its last newline, so the next append does
  not glue onto it), lines from another fingerprint or for a changed prompt are dropped, and an id already done
  is never generated again: the file never holds an id twice;
- any rewrite (dropping stale lines, the final re-ordering) goes through a temporary file and `os.replace`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from malmungchi.eval.records import EvalInputError, id_key
from malmungchi.atomic import write_text
from malmungchi.eval.score import dumps_line


@dataclass
class ResumeState:
    done: dict[str, dict] = field(default_factory=dict)  # id key → results line reusable under this fingerprint
    stale: int = 0  # lines dropped: other fingerprint, changed prompt, id no longer in the gold file
    redo: set[str] = field(default_factory=set)  # id keys whose line `reusable` refused: asked before, ask again
    duplicates: int = 0
    truncated_tail: bool = False


def load_for_resume(path: Path, fingerprint: str, wanted: Mapping[str, str], *, field_name: str = "prediction",
                    kind: str = "`eval run` results", reusable: Callable[[dict], bool] | None = None) -> ResumeState:
    """Read an existing results file; `wanted` maps each gold id key to its prompt's input hash. Repairs the
    file in place (atomically) when anything in it cannot be kept. Every line must have `field_name` (else it is
    not a `kind` file); a line `reusable` refuses (`eval judge`: no verdict yet; `eval run`: the server rejected
    the item) is dropped to be redone, its key in `redo`."""
    state = ResumeState()
    if not path.exists():
        return state
    if path.is_dir():
        raise EvalInputError(f"{path}: is a folder; --output must be a .jsonl file")
    data = path.read_bytes()
    complete, sep, tail = data.rpartition(b"\n")
    state.truncated_tail = bool(tail)
    kept: list[str] = []
    for number, raw in enumerate(complete.split(b"\n") if complete else [], start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EvalInputError(f"{path}:{number}: not a results line; is --output another file? "
                                 "pass a new --output path or delete this one") from None
        if not isinstance(obj, dict) or field_name not in obj:
            raise EvalInputError(f"{path}:{number}: not an {kind} line; pass a new --output path")
        key = id_key(obj, path, number)
        if obj.get("fingerprint") != fingerprint or wanted.get(key) != obj.get("input_sha"):
            state.stale += 1
            continue
        if reusable is not None and not reusable(obj):
            state.redo.add(key)
            continue
        if key in state.done:
            state.duplicates += 1
            continue
        state.done[key] = obj
        kept.append(raw.decode("utf-8") + "\n")
    if state.stale or state.duplicates or state.redo:
        write_text(path, "".join(kept))
    elif state.truncated_tail:
        with open(path, "r+b") as fh:  # drop the half line the killed run left
            fh.truncate(len(complete) + len(sep))
            fh.flush()
            os.fsync(fh.fileno())
    return state


class Appender:
    """Appends whole batches: one write of all the batch's lines, then flush and fsync. The file is opened by the
    first batch, so a run that fails before producing anything leaves no file behind."""

    def __init__(self, path: Path):
        self._path = path
        self._fh = None

    def write_batch(self, lines: Iterable[dict]) -> None:
        if self._fh is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self._path, "ab", buffering=0)
        data = "".join(dumps_line(obj) for obj in lines).encode("utf-8")
        view = memoryview(data)
        while view:  # a regular-file write is whole in practice; loop in case the OS says otherwise
            written = self._fh.write(view)
            view = view[written:]
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rewrite_in_order(path: Path, lines: Iterable[dict]) -> None:
    """Replace the log with its final form: one line per id, in gold-file order."""
    write_text(path, "".join(dumps_line(obj) for obj in lines))
