"""Reading gold, prediction and results JSONL files, with one clear `file:line` message per problem.

Ids are matched as text (`7` and `"7"` are the same item) because prediction files are often written by other
tools that stringify ids; anything other than a string or an integer is rejected rather than guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malmungchi.contracts.build import EVAL_ITEMS, BuildPaths
from malmungchi.corpus.datafiles import valid_messages
from malmungchi.errors import UserError


class EvalInputError(UserError):
    """An input problem; `lines` holds one message per problem, each naming the file (and line)."""


@dataclass(frozen=True)
class GoldItem:
    id: Any  # as written in the file (str or int)
    key: str  # the id as matched across files
    answers: tuple[str, ...]
    prompt: str | None = None
    messages: tuple[dict, ...] | None = None
    line: int = 0


def resolve_gold_path(path: str | Path) -> Path:
    """A build directory means its `eval/test.jsonl` (see DESIGN.md, stage 2 → 3 contract)."""
    p = Path(path)
    if p.is_dir():
        candidate = BuildPaths(p).eval_items
        if not candidate.is_file():
            raise EvalInputError(f"{p}: a folder without {EVAL_ITEMS}; pass a build folder "
                                 "(`malmungchi corpus build`) or a .jsonl of gold records")
        return candidate
    return p


def read_jsonl(path: str | Path, *, allow_truncated_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for every non-blank line. With `allow_truncated_tail`, a last line without
    its newline that does not parse is skipped: that is what a process killed mid-write leaves behind."""
    p = Path(path)
    if not p.exists():
        raise EvalInputError(f"{p}: no such file")
    if p.is_dir():
        raise EvalInputError(f"{p}: is a folder, expected a .jsonl file")
    try:
        data = p.read_bytes()
    except OSError as err:
        raise EvalInputError(f"{p}: cannot read ({err.strerror})") from None
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        is_tail = number == len(lines) and not complete
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if is_tail and allow_truncated_tail:
                return
            raise EvalInputError(f"{p}:{number}: not UTF-8; save the file as UTF-8") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            if is_tail and allow_truncated_tail:
                return
            raise EvalInputError(f"{p}:{number}: invalid JSON ({err.msg} at column {err.colno}); "
                                 "each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise EvalInputError(f"{p}:{number}: expected a JSON object, got {type(obj).__name__}")
        yield number, obj


def id_key(obj: dict, path: Path | str, line: int) -> str:
    if "id" not in obj:
        raise EvalInputError(f'{path}:{line}: no "id" field; every line needs a unique "id"')
    value = obj["id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise EvalInputError(f'{path}:{line}: "id" must be a string or an integer, got {json.dumps(value)}')
    return str(value)


def _answers(obj: dict, path: Path, line: int) -> tuple[str, ...]:
    if "answer" not in obj:
        raise EvalInputError(f'{path}:{line}: no "answer" field; give a string or a list of acceptable strings')
    value = obj["answer"]
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise EvalInputError(f'{path}:{line}: "answer" must be a string or a non-empty list of strings')


def _unique_records(p: Path) -> Iterator[tuple[int, dict, str]]:
    """(line, object, id key) for every record; a repeated id is an error naming both lines."""
    seen: dict[str, int] = {}
    for line, obj in read_jsonl(p):
        key = id_key(obj, p, line)
        if key in seen:
            raise EvalInputError(f"{p}:{line}: duplicate id {key!r} (first on line {seen[key]})")
        seen[key] = line
        yield line, obj, key


def read_gold(path: str | Path) -> list[GoldItem]:
    """Gold records `{"id", "prompt", "answer"}` (+ `messages` in chat mode), in file order."""
    p = resolve_gold_path(path)
    items: list[GoldItem] = []
    for line, obj, key in _unique_records(p):
        prompt = obj.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise EvalInputError(f'{p}:{line}: "prompt" must be a string')
        messages = obj.get("messages")
        if messages is not None:
            if not valid_messages(messages):
                raise EvalInputError(f'{p}:{line}: "messages" must be a non-empty list of '
                                     '{"role": ..., "content": ...} objects')
            messages = tuple(messages)
        items.append(GoldItem(obj["id"], key, _answers(obj, p, line), prompt, messages, line))
    if not items:
        raise EvalInputError(f"{p}: no gold records")
    return items


def check_overlap(preds: dict, gold_keys: set[str], predictions_path, gold_path) -> None:
    """EvalInputError when no prediction's id is a gold id (`gold_keys`: every gold item's key): predictions for
    another build or split would score 0% with an interval, as if it were a result."""
    if preds and not any(k in gold_keys for k in preds):
        first = next(iter(preds))
        raise EvalInputError(f"{predictions_path}: none of its {len(preds):,} ids is in {gold_path} (its first: "
                             f"{first!r}): predictions for another build or split?")


def read_predictions(path: str | Path) -> dict[str, str | None]:
    """`{"id", "prediction"}` lines → id key → prediction (`null` counts as missing)."""
    p = Path(path)
    out: dict[str, str | None] = {}
    for line, obj, key in _unique_records(p):
        if "prediction" not in obj:
            raise EvalInputError(f'{p}:{line}: no "prediction" field')
        value = obj["prediction"]
        if value is not None and not isinstance(value, str):
            raise EvalInputError(f'{p}:{line}: "prediction" must be a string or null')
        out[key] = value
    if not out:  # scored, it would be 0% with an interval: a wrong or unfinished file, not a result
        raise EvalInputError(f"{p}: no predictions (an empty file? give the results of `eval run` or a JSONL of "
                             '{"id", "prediction"})')
    return out
