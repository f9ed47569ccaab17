"""The README's plain-trl recipe (the python block after `<!-- test: plain-trl -->`) runs as written, with only its
paths and step count replaced and the CPU settings added (trl's SFTConfig defaults to bf16, which needs a GPU):
a tiny model, a small build of the bundled sample, 2 steps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet() -> str:
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- test: plain-trl -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md has no python block after <!-- test: plain-trl -->"
    return m.group(1)


def _substitute(code: str, **values) -> str:
    for name, value in values.items():
        code, n = re.subn(rf'^{name} = "[^"]*"', f"{name} = {str(value)!r}", code, flags=re.M)
        assert n == 1, name
    code, n = re.subn(r"max_steps=\d+", "max_steps=2, bf16=False, use_cpu=True", code)
    assert n == 1
    return code


def test_plain_trl_recipe_trains_a_build(tmp_path, sample_dir, qwen3_tokenizer_dir, monkeypatch):
    pytest.importorskip("trl")
    from train_helpers import make_model

    build = tmp_path / "build"
    r = CliRunner().invoke(main, ["corpus", "build", str(sample_dir), "--tokenizer", str(qwen3_tokenizer_dir),
                                  "--mode", "chat", "--max-length", "512", "--out", str(build)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    base = make_model(tmp_path / "base", qwen3_tokenizer_dir)  # the base vocabulary: the snippet resizes it
    monkeypatch.chdir(tmp_path)
    code = _substitute(snippet(), BUILD=build, BASE=base, OUT=tmp_path / "run")
    scope: dict = {"__name__": "readme_plain_trl"}
    exec(compile(code, "README.md:plain-trl", "exec"), scope)

    trainer, manifest = scope["trainer"], json.loads((build / "manifest.json").read_text())
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e] or \
        [e["train_loss"] for e in trainer.state.log_history if "train_loss" in e]
    assert trainer.state.global_step == 2 and losses and all(x == x and x > 0 for x in losses)
    adapter = json.loads((tmp_path / "run" / "adapter_config.json").read_text())
    new_ids = list(range(manifest["tokenizer"]["vocab_before"], manifest["tokenizer"]["vocab_after"]))
    assert adapter["trainable_token_indices"] in (new_ids, {"embed_tokens": new_ids})
    assert trainer.model.get_input_embeddings().weight.shape[0] >= manifest["tokenizer"]["vocab_after"]

    # what the recipe is for: a packed row's documents do not see each other (positions restart at each one),
    # and only the assistant turns carry the loss
    row = next(x for x in trainer.train_dataset if len(x["seq_lengths"]) > 1)
    batch = trainer.data_collator([row])
    pos = batch["position_ids"][0].tolist()
    starts = [i for i, p in enumerate(pos) if p == 0]
    assert len(starts) == len(row["seq_lengths"]) and starts[1] == row["seq_lengths"][0]
    labels = batch["labels"][0].tolist()
    assert -100 in labels and any(t != -100 for t in labels)
