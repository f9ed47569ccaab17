"""A tokenizer that cannot encode Korean is refused before anything is built: a folder without tokenizer.json (which
transformers turns into a 26-token tokenizer that drops every syllable), or one that maps Hangul to unknown tokens."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from build_helpers import BOOK, write
from malmungchi.cli import main
from malmungchi.prep.tokenizer import TokenizerError, encoding_problem, load_tokenizer


def build(corpus, tok, out):
    return CliRunner().invoke(main, ["corpus", "build", str(corpus), "--tokenizer", str(tok), "--out", str(out)],
                              catch_exceptions=False)


def test_a_folder_without_tokenizer_json_is_refused(tmp_path, qwen3_tokenizer_dir):
    tok = tmp_path / "tok"
    tok.mkdir()
    shutil.copy(qwen3_tokenizer_dir / "tokenizer_config.json", tok / "tokenizer_config.json")
    corpus = tmp_path / "corpus"
    write(corpus, "a.txt", BOOK)
    r = build(corpus, tok, tmp_path / "out")
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "tokens in its vocabulary" in lines[0] and "no tokenizer.json" in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_a_tokenizer_that_maps_korean_to_unknown_is_refused(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "[PAD]"] + [f"w{i}" for i in range(400)] + list("abcdefghijklmnopqrstuvwxyz,.!")
    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path / "english"
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(folder)
    with pytest.raises(TokenizerError, match="encodes Korean as unknown tokens"):
        load_tokenizer(str(folder))


def test_a_real_korean_capable_tokenizer_passes(qwen3_tokenizer_dir):
    assert encoding_problem(load_tokenizer(str(qwen3_tokenizer_dir))) is None
