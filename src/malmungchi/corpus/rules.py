"""The rule catalogue: every diagnostic code with its severity, fix safety and documentation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    error = "error"  # the build refuses the file
    warning = "warning"


class FixSafety(str, Enum):
    safe = "safe"  # meaning-preserving: applied by --fix
    unsafe = "unsafe"  # may change meaning: applied by --fix --unsafe-fixes


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str
    doc: str
    fix: FixSafety | None = None


E, W = Severity.error, Severity.warning
SAFE, UNSAFE = FixSafety.safe, FixSafety.unsafe

RULES: dict[str, Rule] = {
    r.code: r
    for r in (
        Rule("F001", "legacy-korean-encoding", E, "file is CP949/EUC-KR, not UTF-8",
             "Korean files saved by older Windows tools are often CP949 (EUC-KR). Every later stage reads UTF-8, "
             "so such a file would become mojibake.\n\nFix (unsafe): re-encode the file as UTF-8.", UNSAFE),
        Rule("F002", "utf16-encoding", E, "file is UTF-16, not UTF-8",
             "UTF-16 files (often from Notepad's 'Unicode' option) start with a byte-order mark and hold NUL bytes.\n\n"
             "Fix (unsafe): re-encode the file as UTF-8.", UNSAFE),
        Rule("F003", "binary-file", E, "file is binary (holds NUL bytes)",
             "A file with NUL bytes that is not UTF-16 is not text: an image, an archive or a corrupt file. "
             "Remove it from the corpus folder or leave it out with `--exclude NAME` or `[lint] exclude`."),
        Rule("F004", "empty-file", W, "file is empty",
             "The file has no text (or only whitespace). It contributes nothing; delete it or fill it."),
        Rule("F005", "invalid-utf8", E, "file is not valid UTF-8 and no known encoding fits",
             "Some bytes are not valid UTF-8 and the file does not decode as CP949 or UTF-16 either. The position of "
             "the first bad byte is reported. Find the tool that wrote it and re-save as UTF-8."),
        Rule("F006", "utf8-bom", W, "file starts with a UTF-8 byte-order mark",
             "A UTF-8 BOM (EF BB BF) is invisible in most editors but becomes a U+FEFF character in the first line, "
             "and then in the first training token.\n\nFix (safe): remove the BOM.", SAFE),
        Rule("F007", "unreadable-file", E, "file cannot be read",
             "The file exists but could not be read (permissions, a broken or looping symlink, an I/O error)."),
        Rule("F008", "very-long-line", W, "a line of 50,000 characters or more",
             "The build cuts books between paragraphs and dialogue turns only; a single line longer than a training "
             "row (a few thousand characters at the usual max_length) is lost whole, and a file that is one huge "
             "line (a table dumped without line breaks, a whole book on one line) keeps almost nothing. Break the "
             "line into paragraphs (blank lines between them)."),
        Rule("U001", "not-nfc", W, "text is not in Unicode NFC (decomposed Hangul)",
             "macOS and some tools write Hangul decomposed into jamo (NFD): '한' becomes 'ᄒ ᅡ ᆫ'. It looks the same "
             "but tokenizes into many more tokens and never matches NFC text.\n\nFix (safe): normalize to NFC.", SAFE),
        Rule("U002", "invisible-character", W, "invisible character (zero-width space, joiner, soft hyphen, ...)",
             "Zero-width spaces, joiners, word joiners, soft hyphens and stray BOMs are invisible, split words for the "
             "tokenizer and break exact match.\n\nFix (safe): remove them.", SAFE),
        Rule("U003", "control-character", E, "control character in text",
             "C0/C1 control characters other than tab and line breaks (for example U+0008 or U+001B) come from broken "
             "copy-paste or terminal logs.\n\nFix (unsafe): remove them.", UNSAFE),
        Rule("U004", "replacement-character", W, "U+FFFD replacement character: text was lost in an earlier conversion",
             "U+FFFD (�) marks bytes that an earlier tool could not decode. The original text is gone; recover it "
             "from the source."),
        Rule("U005", "mixed-line-endings", W, "file mixes line endings (CRLF, LF, CR)",
             "Mixed line endings shift line numbers in some tools and leave stray carriage returns in the text.\n\n"
             "Fix (safe): convert every line ending to the file's most common one.", SAFE),
        Rule("M001", "unknown-marker", E, "unknown marker name",
             "The text holds something spelled like a marker (`|NAME|>`) whose name is not registered. Register it "
             "under `[markers.NAME]` in malmungchi.toml, or correct it."),
        Rule("M002", "marker-near-miss", E, "marker name is a near miss of a known one",
             "An unknown marker name is very close to a registered one (`|SOUNDS|>` for `|SOUND|>`), most likely a "
             "typo.\n\nFix (unsafe): rename to the suggested marker.", UNSAFE),
        Rule("M003", "non-canonical-marker", W, "marker spelled in a non-canonical form",
             "The canonical spelling is `|NAME|>` with an upper-case name. Recognised slips: `<|NAME|>`, spaces "
             "inside, lower case, a missing `|` or `>`.\n\nFix (safe): rewrite to the canonical spelling.", SAFE),
        Rule("S001", "unclosed-block", E, "block opened but never closed",
             "`|START_OF_X|>` has no matching `|END_OF_X|>`: another block's END closed around it, or (with "
             "`[lint] require_end_markers = true`) the book or the file ended first. Without that setting a block "
             "left open at the next block marker or `|END_OF_BOOK|>` is the start-only spelling (S009)."),
        Rule("S002", "unopened-block", E, "block closed but never opened",
             "`|END_OF_X|>` appears without a matching `|START_OF_X|>` before it."),
        Rule("S003", "nesting-violation", E, "marker stands where it is not allowed",
             "Each marker may only stand in the contexts its registry entry lists (`inside`): a title inside a "
             "dialogue, a dialogue inside a dialogue or a cue inside a title are errors. (`|END_OF_BOOK|>` inside "
             "an open block closes the book and reports the block as S001.)"),
        Rule("S004", "empty-block", W, "block holds no text",
             "A block such as `|START_OF_DIALOGUE|>|END_OF_DIALOGUE|>` holds nothing."),
        Rule("S005", "duplicate-title", W, "book has more than one title, or two books share a title",
             "Each book should have one title block, and titles identify books in reports and splits."),
        Rule("S006", "text-after-end", W, "text after the last |END_OF_BOOK|>",
             "Text after the last `|END_OF_BOOK|>` belongs to no finished book. It is kept as an unterminated book; "
             "add `|END_OF_BOOK|>` after it or remove it."),
        Rule("S007", "missing-end-of-book", W, "file has no |END_OF_BOOK|>",
             "The whole file is read as one unterminated book. Add `|END_OF_BOOK|>` at the end of each book."),
        Rule("S008", "turn-without-speaker", W, "dialogue without a speaker in a file where most have one",
             "Dialogues may be written with `이름: ` turns or without speakers (quoted speech in narration, "
             "`|START_OF_DIALOGUE|>\"조심해서 걸어라.\" 할머니가 말했다.`); either is fine. A file whose dialogues "
             "mostly start with `이름: ` and a few do not is the likely typo: those few are reported (chat rendering "
             "cannot give their first turn a role)."),
        Rule("S009", "start-only-block", W, "block without its END marker, closed at the next block or book end",
             "The start-only spelling: `|START_OF_X|>` alone on its line opens a block that is closed where the next "
             "block marker starts a line, or at `|END_OF_BOOK|>` (or the end of the file), as if `|END_OF_X|>` "
             "were written there; the build reads the same tree either way. A START followed by text on its line "
             "(`|START_OF_TITLE|>두 번째 이야기`) is a one-line block and needs nothing. Set `[lint] "
             "require_end_markers = true` to make every missing END an S001 error instead.\n\nFix (safe): insert "
             "`|END_OF_X|>` where the block was closed.", SAFE),
        Rule("T001", "unbalanced-overlap", W, "overlap tag /os… without its /oe on the line (or /oe without /os…)",
             "With `--transcript-style kspon`, `/os1 … /oe` marks speech overlapping another speaker's turn. The "
             "tags are removed in the build (the rows' order keeps the overlap), so an unbalanced one loses "
             "nothing, but it usually means a tag was cut or mistyped.\n\nFix (safe): append `/oe` to a line whose "
             "`/os…` never closes (the build removes both).", SAFE),
        Rule("T002", "half-dual-transcription", W, "dual transcription (written)/(spoken) with a part missing",
             "With `--transcript-style kspon`, `(360000명)/(삼십 육만 명)` gives the written and the spoken form; "
             "the build keeps one (`--dual-transcription written|spoken`). `(20)(이 십)` lacks the slash and "
             "`(5월)/` the spoken form: neither is read as a pair, so both forms, or the parentheses, end up in the "
             "training text.\n\nFix (safe): insert `/` between the two forms when only the slash is missing.", SAFE),
        Rule("T003", "unknown-transcript-tag", W, "transcript tag letter that is not n/, b/, l/, o/ or u/",
             "With `--transcript-style kspon`, a lone letter and a slash marks a sound: `n/` noise, `b/` breath, "
             "`l/` laughter, `o/` another voice, `u/` unintelligible speech (each becomes a SOUND cue). Another "
             "letter is left in the text as written: probably a typo for one of these."),
        Rule("D001", "invalid-jsonl-line", E, "JSONL line is not valid JSON",
             "Each line of a `.jsonl` file must be one JSON object."),
        Rule("D002", "jsonl-record-shape", E, "JSONL record has neither `text` nor `messages`",
             "The build reads `{\"text\": ...}` or `{\"messages\": [{\"role\", \"content\"}, ...]}` records."),
        Rule("D003", "table-row-shape", E, "CSV/TSV row has a different number of fields than the header",
             "A row with too many or too few fields usually means an unquoted delimiter or a broken line. The build "
             "also reports here a table it cannot parse, or one without a column that --prompt-column, "
             "--answer-column, --speaker-column or --text-column names (the file is refused, or dropped with "
             "--allow-errors)."),
        Rule("D004", "unknown-chat-role", E, "chat message has a role other than system, user or assistant",
             "A `messages` record's roles decide what the model learns to say: the build trains on assistant turns "
             "only. A role such as `wizard` or `narrator` has no place in a chat template (it would end up as a "
             "speaker prefix inside the training target). Other datasets' names for the three roles are mapped and "
             "not reported: `human` → user, `gpt`, `bot` and `model` → assistant, `developer` → system. Rename "
             "the role, or build with --allow-errors to drop the record (counted in the manifest)."),
        Rule("D005", "unpaired-surrogate", E, "JSONL string holds half of a surrogate pair",
             "JSON writes a character outside the Basic Multilingual Plane (most emoji) as two `\\u` escapes, "
             "`\\ud83d\\ude00`; one of the two alone is no character, and no tokenizer or Parquet file can hold "
             "it. It is usually left by a tool that cut a string inside an emoji. Re-export the file, or build "
             "with --allow-errors to drop the record (counted in the manifest)."),
        Rule("D006", "table-columns-unnamed", W, "CSV/TSV table that the build reads only with its columns named",
             "Without column options the build reads a table's `text` column (or its only column) as plain text, "
             "one document per row, and refuses any other table. Name its columns: `prompt_column`/"
             "`answer_column` for paired rows, `speaker_column`/`text_column` for a transcript (a table a "
             "dialogue), in `[build]` of malmungchi.toml or as the build's options (lint sees only the config "
             "file, so it reports every such table while the config names none). The message suggests the "
             "options that fit the header, or the columns by number and `header = false` for a table whose first "
             "row reads like data. A table that is not part of the corpus (an index of it) is left out by "
             "`--exclude NAME` or `[lint] exclude`."),
    )
}


def rule(code: str) -> Rule:
    return RULES[code]


def matches(code: str, patterns: list[str]) -> bool:
    return any(p == "ALL" or code.startswith(p) for p in patterns)


def unknown_patterns(patterns: list[str]) -> list[str]:
    return [p for p in patterns if p != "ALL" and not any(c.startswith(p) for c in RULES)]


def markdown() -> str:
    """docs/rules.md: every rule with its documentation (kept in sync by a test)."""
    out = ["# Lint rules", "", "Generated by `python -m malmungchi.corpus.rules > docs/rules.md`; "
           "`malmungchi corpus rule CODE` prints the same text.", "",
           "| code | name | severity | fix | summary |", "|---|---|---|---|---|"]
    out += [f"| [{r.code}](#{r.code.lower()}) | {r.name} | {r.severity.value} | {r.fix.value if r.fix else ''} | "
            f"{r.summary.replace('|', chr(92) + '|')} |" for r in RULES.values()]
    for r in RULES.values():
        fix = f"fix: {r.fix.value}" if r.fix else "no automatic fix"
        out += ["", f"## {r.code}", "", f"**{r.name}** ({r.severity.value}, {fix}): {r.summary}", "", r.doc]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
