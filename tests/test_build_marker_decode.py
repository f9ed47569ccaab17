"""Marker tokens keep one id each and survive `decode(skip_special_tokens=True)` (the default of lm-eval, vLLM and
most tutorials): they are registered as non-special added tokens. Checked on the real Qwen3, Llama 3 and KoGPT2
tokenizers through `corpus build` and the tokenizer it saves."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from malmungchi.cli import main

TEXT = "할머니가 |SOUND|>(흐느끼는 소리) 말했다."


@pytest.mark.parametrize("name", ["qwen3", "llama3", "kogpt2"])
def test_markers_are_one_id_and_survive_skip_special_tokens(name, request, tmp_path, sample_dir):
    from malmungchi.prep.tokenizer import load_tokenizer

    tok_dir = request.getfixturevalue(f"{name}_tokenizer_dir")
    out = tmp_path / "b"
    r = CliRunner().invoke(main, ["corpus", "build", str(sample_dir), "--tokenizer", str(tok_dir), "--out",
                                  str(out), "--max-length", "512"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    tok = load_tokenizer(str(out / "tokenizer"))
    added = m["tokenizer"]["added_tokens"]
    assert added and len(tok) == m["tokenizer"]["vocab_after"]
    for token, token_id in added.items():
        assert tok.encode(token, add_special_tokens=False) == [token_id], token
        assert token not in tok.all_special_tokens
    sound = m["markers"]["SOUND"]["token"]
    ids = tok.encode(f"할머니가 {sound}(흐느끼는 소리) 말했다.", add_special_tokens=False)
    assert added[sound] in ids
    assert sound in tok.decode(ids, skip_special_tokens=True)
