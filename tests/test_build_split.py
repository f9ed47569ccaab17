"""Dedup counts, deterministic and stable splits, the small-corpus fallback to chunks."""

from __future__ import annotations

import numpy as np

from build_helpers import book, make_plan, write
from malmungchi.prep.encode import Seq
from malmungchi.prep.ledger import DropKind
from malmungchi.prep.render import Rendered
from malmungchi.prep.split import assign, intervals, split_of, unit_number
from malmungchi.schemas.config import SplitRatios


def seqs_for(n_docs: int, chunks: int = 1):
    out = []
    for d in range(n_docs):
        r = Rendered(f"f.txt#{d}", f"f.txt#{d}", "f.txt", None, f"text {d}")
        for c in range(chunks):
            out.append(Seq(f"f.txt#{d}@{c}", r.doc_id, np.array([d, c, 7], np.int32), None, r))
    return out


def test_split_is_deterministic_and_stable_when_documents_are_added():
    ratios = SplitRatios(train=0.6, validation=0.2, test=0.2)
    base = seqs_for(200)
    content = {q.doc_id: q.src.dedup_key() for q in base}
    a = assign(base, ratios, 0, "document", content)
    assert a.by_seq == assign(list(reversed(base)), ratios, 0, "document", content).by_seq
    more = base + [Seq(f"g.txt#{i}", f"g.txt#{i}", np.array([i], np.int32), None,
                       Rendered(f"g.txt#{i}", f"g.txt#{i}", "g", None, f"new {i}")) for i in range(50)]
    content.update({q.doc_id: q.src.dedup_key() for q in more[200:]})
    b = assign(more, ratios, 0, "document", content)
    assert all(b.by_seq[k] == v for k, v in a.by_seq.items())  # no old document moved
    counts = {s: list(a.by_seq.values()).count(s) for s in ("train", "validation", "test")}
    assert 90 <= counts["train"] <= 150 and counts["validation"] > 20 and counts["test"] > 20
    assert a.by_seq != assign(base, ratios, 1, "document", content).by_seq  # the seed matters


def test_chunks_of_one_book_stay_together_in_document_mode():
    s = seqs_for(30, chunks=4)
    a = assign(s, SplitRatios(), 0, "document", {q.doc_id: q.src.dedup_key() for q in s})
    for d in range(30):
        assert len({a.by_seq[f"f.txt#{d}@{c}"] for c in range(4)}) == 1
    assert a.unit == "document"


def test_small_corpus_falls_back_to_chunks_and_fills_every_split():
    s = seqs_for(10, chunks=3)
    a = assign(s, SplitRatios(train=0.9, validation=0.05, test=0.05), 0, "auto",
               {q.doc_id: q.src.dedup_key() for q in s})
    assert set(a.by_seq.values()) == {"train", "validation", "test"}
    assert a.unit == "chunk" and any("split unit: chunk" in n for n in a.notes)


def test_unit_number_interval_mapping():
    spans = intervals(SplitRatios(train=0.5, validation=0.25, test=0.25))
    assert split_of(0.49, spans) == "train" and split_of(0.5, spans) == "validation" and split_of(0.99, spans) == "test"
    assert unit_number(0, "a", "x") == unit_number(0, "a", "x") != unit_number(0, "b", "x")


def test_dedup_and_split_stability_end_to_end(qwen3_tokenizer_dir, tmp_path):
    d = tmp_path / "c"
    write(d, "a.txt", "".join(book(i) for i in range(12)) + book(3))  # book 3 twice
    write(d, "b.txt", book(5))  # and book 5 again in another file
    p = make_plan([d], qwen3_tokenizer_dir, split_unit="document", splits={"train": 0.6, "validation": 0.2,
                                                                             "test": 0.2})
    assert p.duplicates == 2
    dropped = [x for x in p.documents if not x.kept]
    assert sorted(x.reason for x in dropped) == ["duplicate of c/a.txt#3", "duplicate of c/a.txt#5"]
    assert {x.kind for x in dropped} == {DropKind.DUPLICATE}
    before = {x.id: x.split for x in p.documents if x.kept}
    write(d, "c.txt", "".join(book(100 + i) for i in range(5)))
    p2 = make_plan([d], qwen3_tokenizer_dir, split_unit="document", splits={"train": 0.6, "validation": 0.2,
                                                                              "test": 0.2})
    after = {x.id: x.split for x in p2.documents if x.kept}
    assert all(after[k] == v for k, v in before.items())
    assert len(after) == len(before) + 5
