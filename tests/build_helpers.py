"""Shared helpers for the build-stage tests: small literal marker texts and a plan() shortcut."""

from __future__ import annotations

from pathlib import Path

from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import default_registry

BOOK = """|START_OF_TITLE|>비 오는 날|END_OF_TITLE|>

장마가 시작된 지 사흘째였다. |SOUND|>(빗소리) 민지는 골목으로 걸어 들어갔다.

|START_OF_DIALOGUE|>
할아버지: 어서 와요. 많이 젖었네.
민지: 안녕하세요. |SOUND|>(웃음) 우산 하나 살 수 있을까요?
할아버지: 그럼요.
|END_OF_DIALOGUE|>

민지는 우산을 받아 들고 가게를 나섰다.
|END_OF_BOOK|>
"""


def book(n: int, paragraphs: int = 3) -> str:
    """A distinct small book with a dialogue (n makes the text unique)."""
    paras = "\n\n".join(f"{n}번째 책의 {i}번째 문단입니다. 오늘은 날씨가 맑고 바람이 분다." for i in range(paragraphs))
    return (f"|START_OF_TITLE|>책 {n}|END_OF_TITLE|>\n\n{paras}\n\n|START_OF_DIALOGUE|>\n"
            f"철수: 안녕, {n}번 친구야.\n영희: 응, 반가워 {n}.\n철수: 오늘 뭐 해?\n영희: 책을 읽을 거야.\n"
            f"|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n")


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


def make_plan(paths, tok_dir, **cfg):
    from malmungchi.prep.build import plan

    return plan([str(p) for p in paths], BuildConfig(**cfg), default_registry(), tokenizer_source=str(tok_dir))
