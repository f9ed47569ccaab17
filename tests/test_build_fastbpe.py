"""tiktoken's BPE (`prep.fastbpe`) gives the tokenizer's own ids, or is not used: checked on every Qwen3 vocabulary
entry, on the code points of the first two Unicode planes, on runs that stress pair merging and on the bundled
Korean sample; tokenizers it cannot reproduce are refused with the reason; a build is the same byte for byte
with either encoder; and a disagreement stops the build with the way out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from malmungchi.cli import main
from malmungchi.prep.fastbpe import FastBPE, NotFast, byte_alphabet


@pytest.fixture(scope="module")
def qwen3_with_markers(qwen3_tokenizer_dir):
    from malmungchi.prep.policies import Policies
    from malmungchi.prep.tokenizer import load_tokenizer, register_tokens
    from malmungchi.schemas.config import BuildConfig
    from malmungchi.schemas.registry import default_registry

    tok = load_tokenizer(str(qwen3_tokenizer_dir))
    register_tokens(tok, Policies(default_registry(), BuildConfig()).special_tokens())
    return tok


def _differences(fast: FastBPE, backend, texts: list[str]) -> list[str]:
    ours = fast.encode(texts, threads=1)
    theirs = backend.encode_batch_fast(texts, add_special_tokens=True)
    assert sum(a is None for a in ours) <= len(texts) // 10  # left to the tokenizer: not NFC
    return [t for t, a, b in zip(texts, ours, theirs) if a is not None and a.tolist() != b.ids]


def test_qwen3_every_vocabulary_entry_and_code_point(qwen3_with_markers):
    backend = qwen3_with_markers.backend_tokenizer
    fast = FastBPE.of(qwen3_with_markers)
    alphabet = byte_alphabet()
    entries = []
    for t in backend.get_vocab(with_added_tokens=False):
        try:
            entries.append(bytes(alphabet[c] for c in t).decode("utf-8"))
        except UnicodeDecodeError:
            continue  # part of a character: never a whole piece of text
    assert len(entries) > 150_000
    assert _differences(fast, backend, entries) == []
    points = "".join(chr(c) for c in range(0x20, 0x20000) if not 0xD800 <= c <= 0xDFFF)
    runs = [points[i:i + 100] for i in range(0, len(points), 100)]
    texts = runs + [" ".join(r) for r in runs] + ["가a".join(r) for r in runs[::3]] + ["\n1".join(r) for r in runs[::3]]
    assert _differences(fast, backend, texts) == []


def test_qwen3_runs_added_tokens_and_korean_sample(qwen3_with_markers, sample_dir):
    backend = qwen3_with_markers.backend_tokenizer
    fast = FastBPE.of(qwen3_with_markers)
    units = ["ㅋ", "ㅎ", "ㅠ", " ", ".", "!", "?", "~", "-", "=", "😂", "\n", "\t", "\r\n", "a", "0", "하", "ㅋㅋ", "…", "'s"]
    texts = [u * n + tail for u in units for n in range(1, 40) for tail in ("", " 그래", "\n\n", "ㅋ")]
    texts += ["<|sound|>(울음)<|start_of_dialogue|>\n철수: 네<|end_of_dialogue|>x<|end_of_book|>",
              "<|im_start|>user\n안녕<|im_end|>\n<think>\n\n</think>", "<|sound|<|sound|>|>", "<<|sound|>>"]
    for f in sorted(sample_dir.glob("*.txt")):
        text = f.read_text(encoding="utf-8")
        texts += [text] + text.split("\n\n")
    assert _differences(fast, backend, texts) == []


def _byte_level(vocab_extra: dict[str, int], merges: list[tuple[str, str]]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = byte_alphabet()
    vocab = {c: b for c, b in alphabet.items()} | vocab_extra
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def test_tokenizers_it_cannot_reproduce_are_refused_with_the_reason():
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    good = _byte_level({"ab": 256, "abc": 257}, [("a", "b"), ("ab", "c")])
    fast = FastBPE.of(None, good)
    assert fast.encode(["abc ab"], threads=1)[0].tolist() == good.encode("abc ab").ids == [257, 32, 256]

    def why(backend) -> str:
        with pytest.raises(NotFast) as err:
            FastBPE.of(None, backend)
        return str(err.value)

    meta = Tokenizer(models.BPE({"▁": 0, "a": 1, "[UNK]": 2}, [], unk_token="[UNK]"))
    meta.pre_tokenizer = pre_tokenizers.Metaspace()
    meta.decoder = decoders.Metaspace()
    assert "ByteLevel" in why(meta)
    assert "merge order" in why(_byte_level({"ab": 257, "abc": 256}, [("a", "b"), ("ab", "c")]))
    strip = _byte_level({}, [])
    strip.add_special_tokens([AddedToken("<x>", lstrip=True)])
    assert "strips spaces" in why(strip)
    overlap = _byte_level({}, [])
    overlap.add_special_tokens(["<a|", "|b>"])  # "<a|b>" could be either
    assert "overlaps" in why(overlap)
    inside = _byte_level({}, [])
    inside.add_special_tokens(["<s>", "<s>x"])
    assert "overlaps" in why(inside)
    bos = _byte_level({"ab": 256}, [("a", "b")])
    bos.add_special_tokens(["<s>"])
    bos.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 257)])
    assert FastBPE.of(None, bos).encode(["ab a", ""], threads=1)[0].tolist() == bos.encode("ab a").ids == \
        [257, 256, 32, 97]  # a BOS before the text (Llama 3) is put there too
    assert FastBPE.of(None, bos).encode([""], threads=1)[0].tolist() == bos.encode("").ids == [257]
    eos = _byte_level({}, [])
    eos.add_special_tokens(["</s>"])
    eos.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 256)])
    assert "after the text" in why(eos)


def _tree(root: Path) -> dict[str, str]:
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*")) if f.is_file()}


def _build(*args):
    return CliRunner().invoke(main, ["corpus", "build", *[str(a) for a in args]], catch_exceptions=False)


def test_build_is_byte_identical_with_either_encoder(sample_dir, qwen3_tokenizer_dir, tmp_path):
    common = [sample_dir, "--tokenizer", qwen3_tokenizer_dir, "--max-length", "128", "--eval-context", "64"]
    a = _build(*common, "--out", tmp_path / "a", "--encoder", "tokenizers")
    b = _build(*common, "--out", tmp_path / "b", "--encoder", "tiktoken")
    assert a.exit_code == b.exit_code == 0
    assert "encoded with tokenizers" in a.output and "encoded with tiktoken" in b.output
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["splits"]["train"]["tokens"] > 1000


def test_encoder_tiktoken_where_it_cannot_apply_is_one_line(sample_dir, kogpt2_tokenizer_dir, tmp_path):
    for mode in ("text", "chat"):
        r = CliRunner().invoke(main, ["corpus", "build", str(sample_dir), "--tokenizer", str(kogpt2_tokenizer_dir),
                                      "--out", str(tmp_path / "o"), "--mode", mode, "--encoder", "tiktoken"])
        assert r.exit_code != 0 and not (tmp_path / "o").exists()
        assert "Traceback" not in r.output
        if mode == "text":  # (chat mode: KoGPT2 has no chat template, which is said first)
            assert "--encoder tiktoken" in r.output and "not a byte-level BPE" in r.output, r.output


def test_a_disagreement_stops_the_build_with_the_way_out(sample_dir, qwen3_tokenizer_dir, tmp_path, monkeypatch):
    import numpy as np

    real = FastBPE._one

    def off_by_one(self, text):
        ids = real(self, text)
        return None if ids is None else (ids + 1).astype(np.int32)

    monkeypatch.setattr(FastBPE, "of", classmethod(lambda cls, tok, backend=None: _fast_without_probe(tok, backend)))
    monkeypatch.setattr(FastBPE, "_one", off_by_one)
    r = CliRunner().invoke(main, ["corpus", "build", str(sample_dir), "--tokenizer", str(qwen3_tokenizer_dir),
                                  "--out", str(tmp_path / "o"), "--encoder", "tiktoken"])
    assert r.exit_code != 0 and not (tmp_path / "o").exists()
    assert "differ" in r.output and "--encoder tokenizers" in r.output and "Traceback" not in r.output


def _fast_without_probe(tok, backend):
    """FastBPE.of without its probe check (which would catch the broken encoder before the build does)."""
    import tiktoken

    from malmungchi.prep import fastbpe

    backend = backend or tok.backend_tokenizer
    core = tiktoken.Encoding("t", pat_str=fastbpe._pattern(backend), mergeable_ranks=fastbpe._ranks(tok, backend),
                             special_tokens=fastbpe._specials(backend, True))
    return FastBPE(core, set(fastbpe._specials(backend, True)), True)


_PIECES = ["ㅋ", "ㅎ", "ㅠ", "가", "각", "힣", "ᄀ", "ᅡ", "\u0301", " ", "  ", "\n", "\r\n", "\t", "\u3000", ".", "!",
           "?", "'s", "'LL", "a", "Z", "0", "12", "😂", "👍🏽", "ｆ", "“", "—", "…", "<|sound|>", "<|im_start|>",
           "<think>", "<", "|", ">", "é", "e\u0301", "中", "ا"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(_PIECES), max_size=40))
def test_any_mix_of_korean_text_pieces_encodes_as_the_tokenizer_does(qwen3_with_markers, parts):
    """Random mixes of Hangul, jamo, combining marks (not NFC: left to the tokenizer), whitespace runs, emoji,
    contractions and added tokens: the build's encode (tiktoken where it can) gives the tokenizer's ids."""
    from malmungchi.prep.encode import encode_fast

    backend = qwen3_with_markers.backend_tokenizer
    text = "".join(parts)
    if "fast" not in _FAST:
        _FAST["fast"] = FastBPE.of(qwen3_with_markers)
    got = encode_fast(backend, [text, text + " 끝"], add_special_tokens=True, fast=_FAST["fast"])
    want = backend.encode_batch_fast([text, text + " 끝"], add_special_tokens=True)
    assert [g.tolist() for g in got] == [w.ids for w in want]


_FAST: dict = {}  # built once: hypothesis calls the test many times with the same fixture
