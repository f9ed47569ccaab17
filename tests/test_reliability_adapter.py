"""`eval run` on a run whose adapter is damaged: one line naming the file and what is wrong, exit 2, no traceback
and no Hub lookup."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.train.runner import resolve, train
from train_helpers import tiny_build, tiny_model, train_cfg  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_build, tiny_model):
    out = tmp_path_factory.mktemp("run") / "run"
    train(resolve(tiny_build, train_cfg(tiny_model, out, max_steps=1)))
    return out


def _truncate(f):
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


DAMAGE = {
    "weights deleted": ("adapter_model.safetensors", lambda f: f.unlink(), "missing"),
    "weights truncated": ("adapter_model.safetensors", _truncate, "not a readable safetensors file"),
    "weights empty": ("adapter_model.safetensors", lambda f: f.write_bytes(b""), "empty (0 bytes)"),
    "config broken": ("adapter_config.json", lambda f: f.write_text('{"r": 4,', encoding="utf-8"), "not valid JSON"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_adapter_is_one_line_naming_the_file(run_dir, tmp_path, case):
    name, damage, what = DAMAGE[case]
    broken = tmp_path / "run"
    shutil.copytree(run_dir, broken)
    damage(broken / "adapter" / name)
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "a", "prompt": "옛날 옛적에", "answer": "호랑이가"}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    out = tmp_path / "results.jsonl"
    r = CliRunner().invoke(main, ["eval", "run", str(broken), "--data", str(gold), "--output", str(out)])
    assert r.exit_code == 2, (r.output, r.exception)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert str(broken / "adapter" / name) in lines[0] and what in lines[0], lines[0]
    assert "huggingface.co" not in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_the_undamaged_run_still_loads(run_dir):
    from malmungchi.train.loader import load_for_inference

    model, tok, manifest = load_for_inference(run_dir)
    assert manifest["quantization"] == "none"
    assert json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["r"] == 4


def test_device_is_honoured_for_run_folders(run_dir, tmp_path):
    """`--device` used to be ignored for run folders: `--device cuda` "worked" on a machine without CUDA."""
    import torch

    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "a", "prompt": "옛날 옛적에", "answer": "호랑이가"}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    args = ["eval", "run", str(run_dir), "--data", str(gold), "--max-new-tokens", "2"]
    if not torch.cuda.is_available():
        r = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "cuda.jsonl"), "--device", "cuda"])
        assert r.exit_code == 2 and "--device cuda: no CUDA device is available" in r.stderr
        assert not (tmp_path / "cuda.jsonl").exists()
    from malmungchi.eval.load import load

    loaded = load(run_dir, device="cpu")
    assert {p.device.type for p in loaded.model.parameters()} == {"cpu"}
