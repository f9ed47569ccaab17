"""Make the marker-experiment corpus of `docs/evidence/` from the shared Korean data (read from ../shared/data
beside the checkout; nothing is downloaded):

- KoCoNovel novels (CC BY-SA 4.0) turned into marker books: `|START_OF_TITLE|>` with the Korean title from the
  novel index, each scene a paragraph per line of narration, each quoted line (`"…"`) a line-scoped
  `|START_OF_DIALOGUE|>` (the start-only spelling users write), `|END_OF_BOOK|>`;
- BACKSpeech transcripts (CC BY-NC-SA 4.0) as they are, read with the KsponSpeech conventions (noise `n/` and
  the like become `|SOUND|>` cues, backchannels `|BACKCHANNEL|>`), through the corpus's `malmungchi.toml`;
- the bundled sample (marker books with titles, dialogues and sound cues).

    python bench/evidence_corpus.py OUT_DIR [--novels N] [--transcripts N]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CONFIG = """# written by bench/evidence_corpus.py: how the BACKSpeech transcripts (tables) are read
[build]
transcript_style = "kspon"
speaker_column = "2"
text_column = "3"
header = false
"""


def titles() -> dict[str, str]:
    with (SHARED / "longform" / "koconovel" / "list_of_novels.csv").open(encoding="utf-8") as fh:
        return {row["ID"]: row["Korean Title"] for row in csv.DictReader(fh)}


def marker_book(rows: list[dict], title: str) -> str:
    out = [f"|START_OF_TITLE|>{title}|END_OF_TITLE|>", ""]
    for row in rows:
        for line in row["text"].splitlines():
            line = line.strip()
            if not line:
                continue
            out.append(f"|START_OF_DIALOGUE|>{line}" if line.startswith('"') else line)
            out.append("")
    out.append("|END_OF_BOOK|>")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--novels", type=int, default=40)
    ap.add_argument("--transcripts", type=int, default=25)
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: not found (the shared data lives beside the checkout)")
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    (out / "koconovel").mkdir(parents=True)
    names = titles()
    novels = sorted((SHARED / "longform" / "koconovel").glob("*.text.jsonl"), key=lambda p: int(p.name.split("_")[0]))
    for path in novels[: args.novels]:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        novel_id = path.name.split("_")[0]
        (out / "koconovel" / f"{path.name.removesuffix('.text.jsonl')}.txt").write_text(
            marker_book(rows, names.get(novel_id, path.name)), encoding="utf-8")
    (out / "backspeech").mkdir()
    for path in sorted((SHARED / "transcripts" / "backspeech").glob("*.csv"))[: args.transcripts]:
        shutil.copy(path, out / "backspeech" / path.name)
    (out / "malmungchi.toml").write_text(CONFIG, encoding="utf-8")  # found walking up from the corpus folder
    shutil.copytree(ROOT / "src" / "malmungchi" / "data" / "sample", out / "sample",
                    ignore=shutil.ignore_patterns("README.md"))
    files = sorted(p for p in out.rglob("*") if p.is_file())
    print(f"{out}: {len(files)} files, {sum(p.stat().st_size for p in files) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
