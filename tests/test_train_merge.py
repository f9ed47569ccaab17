"""`malmungchi train merge RUN --out DIR`: one plain model folder that `AutoModelForCausalLM.from_pretrained` loads
alone, with the adapter run's logits; for a QLoRA run too (the base reloaded unquantized). `train run --merge`
goes the same way, so its merged/ is the same bytes."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.train import modeling
from malmungchi.train.loader import load_for_inference
from malmungchi.train.runner import resolve, train
from train_helpers import tiny_build, tiny_model, train_cfg  # noqa: F401 - fixtures

PROBE = "옛날 옛적에 <|sound|> 호랑이가 <|laugh|> 울었다 <|start_of_dialogue|>"


def _merge(run, out, *extra):
    return CliRunner().invoke(main, ["train", "merge", str(run), "--out", str(out), *map(str, extra)],
                              catch_exceptions=False)


def _plain(folder):
    """The merged folder loaded the way any script would: transformers alone, nothing of peft or malmungchi."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, tiny_build, tiny_model):
    run = tmp_path_factory.mktemp("plain") / "run"
    train(resolve(tiny_build, train_cfg(tiny_model, run, max_steps=3, lr=2e-2)))
    return run


def test_merge_of_an_unquantized_run_loads_alone_with_the_same_logits(tmp_path, plain_run):
    out = tmp_path / "merged"
    stale = tmp_path / ".merged.4194304.k2x9q0ab.tmp"  # what a merge killed mid-save left (no such process)
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    result = _merge(plain_run, out)
    assert result.exit_code == 0, result.output
    assert f"into {out}" in result.stdout and "float32" in result.stdout
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left beside it, stale too
    assert out.stat().st_mode & 0o077  # shared like any folder, not mkdtemp's 0700
    merged, tok = _plain(out)
    manifest = json.loads((plain_run / "run_manifest.json").read_text(encoding="utf-8"))
    assert len(tok) == manifest["vocab"]["vocab_after"]
    assert merged.config.vocab_size == manifest["vocab"]["rows_after"]
    assert not any("lora" in n or "trainable_tokens" in n for n, _ in merged.named_parameters())
    adapter, tok2, _ = load_for_inference(plain_run)
    ids = tok(PROBE, return_tensors="pt").input_ids
    assert ids.tolist() == tok2(PROBE, return_tensors="pt").input_ids.tolist()
    assert set(manifest["vocab"]["new_ids"]) & set(ids[0].tolist())
    a, m = _logits(adapter, ids), _logits(merged, ids)
    # the same float32 sums in another order (W + s·BA once, instead of W·x + s·B(A·x) each call)
    torch.testing.assert_close(m, a, rtol=0, atol=1e-5)
    print(f"unquantized: max |merged - adapter| = {(m - a).abs().max().item():.3g}")


def test_merge_refuses_a_folder_that_is_not_a_run_and_an_existing_out(tmp_path, plain_run, tiny_build):
    for not_run in (tmp_path / "missing", tiny_build):
        result = _merge(not_run, tmp_path / "m1")
        assert result.exit_code == 2
        lines = [x for x in result.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and str(not_run) in lines[0], lines
        assert "Traceback" not in result.output and not (tmp_path / "m1").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine", encoding="utf-8")
    result = _merge(plain_run, taken)
    assert result.exit_code == 2
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "already exists" in lines[0] and str(taken) in lines[0], lines
    assert sorted(p.name for p in taken.iterdir()) == ["keep.txt"]
    result = _merge(plain_run, plain_run / "adapter" / "merged")  # inside the run, but not its merged/
    assert result.exit_code == 2 and "inside the input" in result.stderr
    own = plain_run / "merged"  # the run's own place (`train run --merge`): the message names no --out
    own.mkdir()
    try:
        result = _merge(plain_run, own)
        assert result.exit_code == 2 and "--out" not in result.stderr.split("`")[0], result.stderr
        assert "an earlier merge of this run" in result.stderr and "train merge" in result.stderr
    finally:
        own.rmdir()


def test_a_folder_made_at_out_while_merging_is_left_alone(tmp_path, plain_run, monkeypatch):
    import shutil

    out = tmp_path / "m"
    real = shutil.copy2

    def copy_and_race(src, dst, **kw):  # another process makes --out (empty) while the tokenizer is copied
        out.mkdir(exist_ok=True)
        return real(src, dst, **kw)

    monkeypatch.setattr(shutil, "copy2", copy_and_race)
    result = _merge(plain_run, out)
    assert result.exit_code == 2
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "already exists" in lines[0] and str(out) in lines[0], lines
    assert out.is_dir() and not any(out.iterdir())  # theirs, untouched: not replaced by the merged model
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary left beside it


@pytest.mark.skipif(modeling.bitsandbytes_problem() is not None,
                    reason=f"bitsandbytes cannot run here: {modeling.bitsandbytes_problem()}")
def test_a_qlora_run_merges_into_the_full_precision_base(tmp_path, tiny_build, tiny_model):
    run = tmp_path / "run"
    out = train(resolve(tiny_build, train_cfg(tiny_model, run, quant="4bit", max_steps=3, lr=2e-2, merge=True)))
    assert out.manifest["quantization"] == "4bit" and out.manifest["merged"] is True
    result = _merge(run, tmp_path / "merged")
    assert result.exit_code == 0, result.output
    assert "4-bit" in result.stdout
    # `train run --merge` and `train merge` are one code path: the same tensors
    from safetensors.torch import load_file

    a_w, b_w = load_file(str(run / "merged" / "model.safetensors")), load_file(str(tmp_path / "merged" /
                                                                                   "model.safetensors"))
    assert a_w.keys() == b_w.keys() and all(torch.equal(a_w[k], b_w[k]) for k in a_w)

    merged, tok = _plain(tmp_path / "merged")
    assert not any(type(m).__name__ == "Linear4bit" for m in merged.modules())
    assert "quantization_config" not in json.loads((tmp_path / "merged" / "config.json").read_text())
    ids = tok(PROBE, return_tensors="pt").input_ids
    m = _logits(merged, ids)
    q4, _, _ = load_for_inference(run)  # the adapter as trained: on the 4-bit base
    full, _, _ = load_for_inference(run, quant="none")  # the same adapter on the full-precision base
    assert any(type(x).__name__ == "Linear4bit" for x in q4.modules())
    a4, afull = _logits(q4, ids), _logits(full, ids)
    # merging itself is exact: the merged model is the adapter on the full-precision base
    torch.testing.assert_close(m, afull, rtol=0, atol=1e-5)
    # against the adapter as trained, it differs by the base's NF4 quantization error and by nothing else: the
    # gap is that of the two bases under the same adapter (up to float noise), and small beside the logits
    quant_gap = (afull - a4).abs().max().item()
    gap = (m - a4).abs().max().item()
    assert gap <= quant_gap + 1e-5, (gap, quant_gap)
    assert 0 < quant_gap < 0.1 * a4.abs().max().item(), (quant_gap, a4.abs().max().item())
    print(f"4-bit: max |merged - adapter(4-bit)| = {gap:.3g}, max |merged - adapter(full)| = "
          f"{(m - afull).abs().max().item():.3g}, max |logit| = {a4.abs().max().item():.3g}")


def test_train_run_merge_refuses_a_merged_folder_before_training(tmp_path, plain_run, tiny_build, tiny_model):
    """`--resume --merge` of a run merged before: said at once, not after the training it would have redone."""
    import shutil

    from malmungchi.train.errors import TrainError

    run = tmp_path / "run"
    shutil.copytree(plain_run, run)
    ckpt = run / "checkpoints"
    assert any(ckpt.glob("checkpoint-*")), sorted(p.name for p in ckpt.iterdir())
    (run / "merged").mkdir()
    before = sorted(p.name for p in ckpt.iterdir())
    with pytest.raises(TrainError, match="an earlier merge of this run"):
        train(resolve(tiny_build, train_cfg(tiny_model, run, max_steps=5, lr=2e-2, merge=True)), resume=True)
    assert sorted(p.name for p in ckpt.iterdir()) == before  # no step trained, no checkpoint written


def test_loading_a_run_for_inference_says_nothing_of_deprecated_transformers_properties(plain_run):
    """`eval run RUN` printed transformers' FutureWarning about `is_gradient_checkpointing` (peft asks it on every
    adapter load) before its first line; training filtered it, loading for inference did not."""
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        load_for_inference(plain_run)
    assert not [w for w in seen if "is_gradient_checkpointing" in str(w.message)], [str(w.message) for w in seen]
