"""The document ledger: every drop carries a kind from a fixed set, set where it happens; the report counts kinds
(never message text) and the manifest keeps `kind` beside its `reason`."""

from __future__ import annotations

from build_helpers import book, make_plan, write
from malmungchi.prep.ledger import DropKind
from malmungchi.prep.stats import report

BROKEN = "|START_OF_TITLE|>깨진 책|END_OF_TITLE|>\n\n|END_OF_DIALOGUE|>\n본문이다.\n|END_OF_BOOK|>\n"
LONG = "|START_OF_TITLE|>긴 책|END_OF_TITLE|>\n\n" + "아주 긴 문단이 계속 이어진다. " * 120 + "\n|END_OF_BOOK|>\n"
NARRATION_ONLY = "|START_OF_TITLE|>대화 없는 책|END_OF_TITLE|>\n\n대화가 없는 이야기다.\n|END_OF_BOOK|>\n"


def test_every_drop_has_its_kind_and_the_report_counts_kinds(qwen3_tokenizer_dir, tmp_path):
    d = tmp_path / "c"
    write(d, "a.txt", book(1) + book(2) + book(1))  # book 1 twice
    write(d, "b.txt", BROKEN + book(3))
    write(d, "c.txt", LONG)
    write(d, "d.txt", "|SOUND|>\n|END_OF_BOOK|>\n" + book(4))
    p = make_plan([d], qwen3_tokenizer_dir, allow_errors=True, long_documents="drop", max_length=128,
                  split_unit="chunk", default_policy="drop")  # d.txt#0: only markers
    by_id = {e.id: e for e in p.documents}
    assert by_id["c/a.txt#2"].kind is DropKind.DUPLICATE and by_id["c/a.txt#2"].reason == "duplicate of c/a.txt#0"
    assert by_id["c/b.txt#0"].kind is DropKind.LINT_ERROR and "S002" in by_id["c/b.txt#0"].reason
    assert by_id["c/c.txt#0"].kind is DropKind.TOO_LONG and "longer than max_length" in by_id["c/c.txt#0"].reason
    assert by_id["c/d.txt#0"].kind is DropKind.EMPTY
    assert all(e.kind is None for e in p.documents if e.kept)
    counts = report(p)["documents"]
    assert counts["dropped_by_reason"] == {"duplicate": 1, "empty": 1, "lint_error": 1, "too_long": 1}
    assert counts["found"] == len(p.documents) and counts["kept"] == len(p.documents) - 4
    assert report(p)["truncation"]["by_reason"] == {"document": 1}


def test_kinds_do_not_depend_on_message_wording(qwen3_tokenizer_dir, tmp_path, monkeypatch):
    """Rewording a detail line leaves the counts alone (they used to be found again by searching the text)."""
    import malmungchi.prep.build as build

    d = tmp_path / "c"
    write(d, "a.txt", book(1) + book(1) + book(2) + book(3))
    base = report(make_plan([d], qwen3_tokenizer_dir))["documents"]["dropped_by_reason"]
    original = build._Dedup.keep

    def reworded(self, r):
        kept = original(self, r)
        self.reason = {k: "zelfde tekst als " + v for k, v in self.reason.items()}
        return kept

    monkeypatch.setattr(build._Dedup, "keep", reworded)
    p = make_plan([d], qwen3_tokenizer_dir)
    assert [e.reason for e in p.documents if not e.kept][0].startswith("zelfde tekst")
    assert report(p)["documents"]["dropped_by_reason"] == base == {"duplicate": 1}


def test_chat_mode_drops_books_without_dialogue(qwen3_tokenizer_dir, tmp_path):
    d = tmp_path / "c"
    write(d, "a.txt", NARRATION_ONLY + book(1) + book(2) + book(3))
    p = make_plan([d], qwen3_tokenizer_dir, mode="chat", split_unit="chunk")
    (entry,) = [e for e in p.documents if not e.kept]
    assert entry.id == "c/a.txt#0" and entry.kind is DropKind.NO_DIALOGUE
    assert entry.manifest()["kind"] == "no_dialogue" and entry.manifest()["reason"] == entry.reason
