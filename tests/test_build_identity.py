"""One corpus, one split, one set of test items, whatever the marker policy, tokenizer or folder name."""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from malmungchi.experiment.arms import ARMS, policy_settings
from malmungchi.prep.build import plan
from malmungchi.prep.identity import any_content, content_text
from malmungchi.prep.ledger import DropKind
from malmungchi.prep.write import write_build
from malmungchi.quickstart.pipeline import sample_dir
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import default_registry

POLICIES = ARMS


def _build(corpus, tok_dir, out, parsed=None, **cfg):
    p = plan([str(corpus)], BuildConfig(**cfg), default_registry(), tokenizer_source=str(tok_dir), parsed=parsed)
    write_build(p, out)
    items = [json.loads(line) for line in (out / "eval" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    splits = {d["id"]: d["split"] for d in m["documents"] if d["status"] == "kept"}
    return splits, items


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("c") / "kc"
    shutil.copytree(sample_dir(), d, ignore=shutil.ignore_patterns("README.md"))
    return d


@pytest.fixture(scope="module")
def builds(corpus, qwen3_tokenizer_dir, kogpt2_tokenizer_dir, tmp_path_factory):
    """The sample built with every policy (and with a second tokenizer), whole documents (out, splits, items)."""
    root = tmp_path_factory.mktemp("builds")
    seen = {}
    combos = [("qwen3", qwen3_tokenizer_dir, p) for p in POLICIES] + \
        [("kogpt2", kogpt2_tokenizer_dir, p) for p in ("special", "text")]  # another tokenizer, both spellings
    for tok_name, tok_dir, policy in combos:
        out = root / f"{tok_name}-{policy}"
        seen[tok_name, policy] = (out, *_build(corpus, tok_dir, out, split_unit="document",
                                               **policy_settings(policy, default_registry())))
    return seen


def test_every_policy_and_tokenizer_gives_the_same_split_and_items(builds):
    _, splits, items = builds["qwen3", "special"]
    assert "test" in splits.values() and len(items) >= 10
    for key, (_, other_splits, other_items) in builds.items():
        assert other_splits == splits, key
        assert [i["id"] for i in other_items] == [i["id"] for i in items], key
        assert [i["answer_canonical"] for i in other_items] == [i["answer_canonical"] for i in items], key
    # the policy's own rendering differs where a marker stands; the canonical one spells it |NAME|>
    special = {i["id"]: i for i in builds["qwen3", "special"][2]}
    marked = [i for i in builds["qwen3", "text"][2] if "|SOUND|>" in i["answer_canonical"]]
    assert marked, "the sample has sound cues in dialogue turns"
    for i in marked:
        assert "<|sound|>" in special[i["id"]]["answer"] and i["answer"] == i["answer_canonical"]
    for i in builds["qwen3", "drop"][2]:
        assert "|SOUND|>" not in i["answer"] and content_text(i["answer_canonical"])


def _content_hash(out) -> str:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))["content_hash"]


def _parse(corpus, **cfg):
    from malmungchi.prep.readers import find_inputs
    from malmungchi.prep.stream import parse_all

    return parse_all(find_inputs([str(corpus)]), default_registry(), BuildConfig(**cfg))


def test_one_parse_builds_every_policy_byte_identically(builds, corpus, qwen3_tokenizer_dir, tmp_path):
    """`experiment markers` parses the inputs once and builds every policy from those trees: each build is the
    same, byte for byte, as one that reads the files (and building one policy leaves the trees for the next)."""
    parsed = _parse(corpus)
    for policy in ("drop", "special", "strip"):
        out = tmp_path / policy
        _build(corpus, qwen3_tokenizer_dir, out, parsed=parsed, split_unit="document",
               **policy_settings(policy, default_registry()))
        assert _content_hash(out) == _content_hash(builds["qwen3", policy][0]), policy


def test_renaming_the_folder_moves_no_document(corpus, qwen3_tokenizer_dir, tmp_path):
    renamed = tmp_path / "kc2"
    shutil.copytree(corpus, renamed)
    a, _ = _build(corpus, qwen3_tokenizer_dir, tmp_path / "a")
    b, _ = _build(renamed, qwen3_tokenizer_dir, tmp_path / "b")
    assert {k.split("/", 1)[1]: v for k, v in a.items()} == {k.split("/", 1)[1]: v for k, v in b.items()}


def test_content_characters_do_not_depend_on_policy_or_tokenizer(builds):
    """eval/content.parquet: per test token, the characters that are text rather than marker. Special and text
    spell markers differently and the two tokenizers cut differently; the content is the same."""
    import pyarrow.parquet as pq

    totals = {}
    for tok_name in ("qwen3", "kogpt2"):
        for policy in ("special", "text"):
            out = builds[tok_name, policy][0]
            t = pq.read_table(out / "eval" / "content.parquet").to_pylist()
            m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
            assert m["eval"]["content_skipped"] == 0 and len(t) == m["splits"]["test"]["sequences"]
            assert all(len(r["content_chars"]) == len(r["input_ids"]) for r in t)
            totals[tok_name, policy] = (sum(map(sum, (r["content_chars"] for r in t))),
                                        sum(map(sum, (r["content_bytes"] for r in t))))
    assert len(set(totals.values())) == 1, totals
    chars, nbytes = totals["qwen3", "special"]
    assert 0 < chars < nbytes  # Korean: 3 bytes a syllable


def test_chunk_units_are_the_same_pieces_under_every_policy_and_tokenizer(corpus, qwen3_tokenizer_dir,
                                                                        kogpt2_tokenizer_dir, tmp_path):
    """A corpus too small for whole books to fill every split is split by pieces of books cut on the parsed tree:
    the same pieces, splits and test items whatever the policy or tokenizer."""
    seen = {}
    for tok_name, tok_dir, policy in (("qwen3", qwen3_tokenizer_dir, "special"), ("qwen3", qwen3_tokenizer_dir, "drop"),
                                      ("kogpt2", kogpt2_tokenizer_dir, "strip")):
        out = tmp_path / f"{tok_name}-{policy}"
        splits, items = _build(corpus, tok_dir, out, split_unit="auto", max_length=128,
                               **policy_settings(policy, default_registry()))
        m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        seen[tok_name, policy] = (m["split_unit"], splits, [(i["id"], i["answer_canonical"]) for i in items])
    unit, splits, items = seen["qwen3", "special"]
    assert unit == "chunk" and len(items) >= 10 and all("@u" in i for i, _ in items)
    assert any("+" in s for s in splits.values())  # a book's pieces in different splits
    for key, other in seen.items():
        assert other == seen["qwen3", "special"], key


def test_chat_mode_items_and_content_are_the_same_under_every_policy(corpus, qwen3_tokenizer_dir, tmp_path):
    """Chat mode: item ids come from the source (dialogue and turn), answers are stored canonically, and
    eval/content.parquet counts the assistant messages' text (not the markers, not the template) — so a run
    trained on `special` and one trained on `drop` are scored on the same items and the same content."""
    import pyarrow.parquet as pq

    seen = {}
    parsed = _parse(corpus, mode="chat")
    for policy in ("special", "drop", "text"):
        out = tmp_path / policy
        splits, items = _build(corpus, qwen3_tokenizer_dir, out, mode="chat", split_unit="document",
                               **policy_settings(policy, default_registry()))
        t = pq.read_table(out / "eval" / "content.parquet").to_pylist()
        seen[policy] = (splits, items, t)
        if policy != "text":  # built again from one parse: the same bytes
            _build(corpus, qwen3_tokenizer_dir, tmp_path / f"{policy}-parsed", parsed=parsed, mode="chat",
                   split_unit="document", **policy_settings(policy, default_registry()))
            assert _content_hash(tmp_path / f"{policy}-parsed") == _content_hash(out), policy
    splits, items, table = seen["special"]
    assert len(items) >= 5 and all(":t" in i["id"] for i in items)
    for policy, (s, its, _) in seen.items():
        assert s == splits and [i["id"] for i in its] == [i["id"] for i in items], policy
        assert [i["answer_canonical"] for i in its] == [i["answer_canonical"] for i in items], policy
    marked = [i for i in items if "|SOUND|>" in i["answer_canonical"]]
    assert marked and all("<|sound|>" in i["answer"] for i in marked)
    by_id = {i["id"]: i for i in seen["drop"][1]}
    assert all("|SOUND|>" not in by_id[i["id"]]["answer"] for i in marked)
    content = {p: sum(map(sum, (r["content_chars"] for r in t))) for p, (_, _, t) in seen.items()}
    # the assistant content only: less than every character of the sequences; the same under special and text;
    # drop also removes the cue text
    assert 0 < content["special"] == content["text"] and content["drop"] < content["special"]
    assert content["special"] < sum(map(sum, (r["chars"] for r in table)))


@pytest.mark.parametrize("policies, fallbacks", [({}, 0), ({"SOUND": 'replace:"<소리>"'}, 1)])
def test_respelling_gives_the_canonical_rendering(corpus, tmp_path, policies, fallbacks):
    """Text mode renders each document once; its identity, canonical answers and leaf sizes come from respelling
    the markers (`prep.identity.Respell`) — exactly what rendering the tree canonically gives, also where the
    source text itself holds a marker's spelling (`<소리>` below: then it renders again; `<|sound|>` in the
    source is read as the marker)."""
    from malmungchi.prep.identity import Canonical
    from malmungchi.prep.policies import Policies
    from malmungchi.prep.readers import find_inputs, read_source
    from malmungchi.prep.render import TextRenderer

    literal = tmp_path / "literal.txt"
    literal.write_text("|START_OF_TITLE|>토큰|END_OF_TITLE|>\n\n"
                       "<|sound|> 라고 쓰면 토큰이 된다. <소리> 도 그렇다.\n\n|START_OF_DIALOGUE|>\n"
                       "가: |SOUND|>(웃음) 정말?\n나: 응.\n|END_OF_DIALOGUE|>\n", encoding="utf-8")
    registry = default_registry()
    cfg = BuildConfig(policies=policies)
    renderer = TextRenderer(Policies(registry, cfg), cfg.speakers)
    fast, slow = Canonical(registry, cfg), Canonical(registry, cfg)
    assert fast.respell is not None
    slow.respell = None
    n = respelled = 0
    for path, key in find_inputs([str(corpus), str(literal)]):
        for doc in read_source(path, key, registry, cfg).documents:
            a, b = renderer.render(doc, key), renderer.render(doc, key)
            respelled += fast.respell.stamp(a)
            fast.stamp(a, doc, key)
            slow.stamp(b, doc, key)
            assert (a.key, a.answers(), a.leaf_sizes) == (b.key, b.answers(), b.leaf_sizes), doc.id
            n += 1
    assert n > 10 and respelled == n - fallbacks


def test_a_book_of_markers_only_is_empty_under_every_policy(tmp_path, qwen3_tokenizer_dir):
    """A book that holds only markers (and asides) renders to nothing under `drop` and to marker tokens under
    `special`: it is dropped as empty under every policy, so every policy keeps the same documents."""
    from build_helpers import book, write

    corpus = tmp_path / "c"
    write(corpus, "real.txt", book(1))
    write(corpus, "hollow.txt", "|SOUND|>(바람 소리)\n\n|SOUND|>\n\n|END_OF_BOOK|>\n")  # (a title is content)
    seen = {}
    for policy in ("special", "drop", "text"):
        p = plan([str(corpus)], BuildConfig(**policy_settings(policy, default_registry())), default_registry(),
                 tokenizer_source=str(qwen3_tokenizer_dir))
        seen[policy] = {d.source: (d.status, d.kind) for d in p.documents}
    assert seen["special"] == seen["drop"] == seen["text"], seen
    assert seen["special"]["c/hollow.txt"][1] is DropKind.EMPTY and seen["special"]["c/real.txt"][0] == "kept"


@pytest.mark.parametrize("which", ["qwen3", "llama3"])  # llama3: a BOS before every text
def test_content_from_the_build_ids_is_the_tokenizers_offsets(corpus, which, request):
    """content.parquet takes where tokens start from the build's ids (their byte lengths); encoding the test
    documents again with offsets gives the same rows, byte for byte."""
    from malmungchi.prep.content import content_table

    tok_dir = request.getfixturevalue(f"{which}_tokenizer_dir")
    p = plan([str(corpus)], BuildConfig(tokenizer=str(tok_dir), max_length=128,
                         splits={"train": 0.5, "validation": 0.0, "test": 0.5}),
             default_registry())
    assert p.byte_lengths is not None and len(p.splits["test"]) > 3
    from_ids, skipped = content_table(p.splits["test"], p.tokenizer, p.policies, sizes=p.byte_lengths)
    encoded, skipped_encoded = content_table(p.splits["test"], p.tokenizer, p.policies)
    assert skipped == skipped_encoded == 0
    assert from_ids.equals(encoded) and from_ids.num_rows == len(p.splits["test"])


def test_a_build_does_not_import_pandas(tmp_path, qwen3_tokenizer_dir):
    """pyarrow imports pandas on the first `pa.array` call (0.2-0.35 s of every build): tables are made from
    buffers (`prep.arrays`)."""
    import subprocess
    import sys

    code = ("import sys; from malmungchi.prep.build import plan; from malmungchi.prep.write import write_build; "
            "from malmungchi.schemas.config import BuildConfig; from malmungchi.schemas.registry import "
            "default_registry; from malmungchi.quickstart.pipeline import sample_dir; "
            f"p = plan([str(sample_dir())], BuildConfig(tokenizer={str(qwen3_tokenizer_dir)!r}, max_length=256), "
            f"default_registry()); write_build(p, {str(tmp_path / 'b')!r}); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False" and (tmp_path / "b" / "eval" / "content.parquet").is_file()


@pytest.mark.parametrize("policy", ["special", "text"])
def test_a_turn_too_long_for_any_row_leaves_the_other_answers_in_place(tmp_path, qwen3_tokenizer_dir, policy):
    """A turn longer than any row is taken out before encoding; the turns after it keep their own canonical
    answers (they once took those of the turn before them)."""
    turns = ["가: 첫 말이에요.", "나: " + "아주긴말" * 60000, "가: |SOUND|>(웃음) 셋째 말.", "나: 넷째 말이에요.",
             "가: |SOUND|>(한숨) 다섯째."]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "long.txt").write_text("|START_OF_TITLE|>긴 대화|END_OF_TITLE|>\n\n|START_OF_DIALOGUE|>\n"
                                             + "\n".join(turns) + "\n|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n",
                                             encoding="utf-8")
    _, items = _build(tmp_path / "c", qwen3_tokenizer_dir, tmp_path / "out", max_length=256,
                      splits={"train": 0, "validation": 0, "test": 1}, default_policy=policy)
    assert [i["answer_canonical"] for i in items] == ["첫 말이에요.", "|SOUND|>(웃음) 셋째 말.", "넷째 말이에요.",
                                                      "|SOUND|>(한숨) 다섯째."]
    assert [content_text(i["answer"]) for i in items] == [content_text(i["answer_canonical"]) for i in items]


@pytest.mark.parametrize("answer", ["네.", "  ", "", "\u3000", "(웃음)", " (웃음) ", "|SOUND|>", "|SOUND|>(한숨) 응",
                                    "<|sound|>", "a|b", "(", "(열린 괄호", "|END_OF_DIALOGUE|>\n", "x (y) z"])
def test_the_eval_items_quick_content_check_agrees_with_content_text(answer):
    from malmungchi.prep.evalset import _has_content

    assert _has_content(answer) == bool(content_text(answer))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["(", ")", "|SOUND|>", "<|sound|>", " ", "\u3000", "\n", "가", "e\u0301", "\u0301",
                                 "(웃음)", "|START_OF_DIALOGUE|>", "x"]), max_size=14).map("".join))
def test_any_content_says_whether_content_text_is_empty(text):
    """Chat mode asks it of every turn (an item needs content under every policy): the same answer as the
    normalised content, without making it."""
    assert any_content(text) == bool(content_text(text))
