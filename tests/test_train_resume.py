"""Kill a training run after its first checkpoint; `--resume` continues from the last checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.train.checkpoints import checkpoint_step, complete_checkpoints
from train_helpers import tiny_build, tiny_model  # noqa: F401 - fixtures


def test_interrupt_then_resume(tmp_path, tiny_build, tiny_model):
    cfg = tmp_path / "train.toml"
    cfg.write_text("[train]\nquant = \"none\"\nlora_r = 4\nbatch_size = 2\nlr = 0.01\nseed = 3\n\n"
                   "[train.args]\nsave_steps = 2\nlogging_steps = 1\neval_strategy = \"no\"\n", encoding="utf-8")
    out = tmp_path / "run"
    args = [str(tiny_build), "--model", str(tiny_model), "--out", str(out), "--config", str(cfg), "--max-steps", "8"]
    proc = subprocess.Popen([sys.executable, "-m", "malmungchi", "train", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # Wait for a whole checkpoint, not for its trainer_state.json to appear: the trainer writes that file last but
    # not atomically, so a kill just after it is opened leaves a torn checkpoint-2 and no whole one (the run then
    # starts over, as a run killed before its first checkpoint does).
    deadline = time.monotonic() + 120
    try:
        while not complete_checkpoints(out / "checkpoints"):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "run_manifest.json").exists(), "the run finished before it could be interrupted"
    saved = sorted(checkpoint_step(d) for d in complete_checkpoints(out / "checkpoints"))
    assert saved and saved[-1] < 8

    # without --resume the run directory is refused
    result = CliRunner().invoke(main, ["train", "run", *args], catch_exceptions=False)
    assert result.exit_code == 2 and "--resume" in result.stderr

    result = CliRunner().invoke(main, ["train", "run", *args, "--resume"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["resumed_from"].endswith(f"checkpoint-{saved[-1]}")
    assert manifest["hyperparameters"]["steps"] == 8
    metrics = json.loads((out / "metrics.json").read_text())
    steps = [p["step"] for p in metrics["loss_curve"]]
    assert steps == list(range(1, 9)), steps  # the steps before the kill too, from the checkpoint's state
    assert [p.get("before_resume", False) for p in metrics["loss_curve"]] == [s <= saved[-1] for s in steps]
    assert (out / "checkpoints" / "checkpoint-8").is_dir()
    assert (out / "loss.png").read_bytes().startswith(b"\x89PNG")  # both parts of the curve, drawn apart


def test_resume_without_checkpoint(tmp_path, tiny_build, tiny_model):
    result = CliRunner().invoke(main, ["train", "run", str(tiny_build), "--model", str(tiny_model), "--out",
                                       str(tmp_path / "run"), "--resume", "--quant", "none"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "no checkpoint" in result.stderr


def _train_args(tiny_build, tiny_model, out, *extra):
    return ["train", "run", str(tiny_build), "--model", str(tiny_model), "--out", str(out), "--quant", "none",
            "--lora-r", "4", "--batch-size", "2", *map(str, extra)]


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path, tiny_build, tiny_model):
    out = tmp_path / "run"
    torn = out / "checkpoints" / "checkpoint-2"  # what a kill in the middle of the first save leaves
    torn.mkdir(parents=True)
    (torn / "adapter_model.safetensors").write_bytes(b"\x10\x00")
    for extra in ([], ["--resume"]):
        result = CliRunner().invoke(main, _train_args(tiny_build, tiny_model, out, "--max-steps", 2, *extra),
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        assert "stopped before its first checkpoint; starting it over" in result.stderr
        assert json.loads((out / "run_manifest.json").read_text())["hyperparameters"]["steps"] == 2
        (out / "run_manifest.json").unlink()  # as if killed again before finishing
        shutil.rmtree(out / "checkpoints")
        torn.mkdir(parents=True)


def test_a_run_directory_with_other_files_is_not_started_over(tmp_path, tiny_build, tiny_model):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(main, _train_args(tiny_build, tiny_model, out, "--max-steps", 1),
                                catch_exceptions=False)
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize("tear", ["trainer_state.json", "adapter_model.safetensors"])
def test_resume_skips_a_torn_last_checkpoint(tmp_path, tiny_build, tiny_model, tear):
    out = tmp_path / "run"
    cfg = tmp_path / "train.toml"
    cfg.write_text("[train.args]\nsave_steps = 2\nlogging_steps = 1\neval_strategy = \"no\"\n", encoding="utf-8")
    args = _train_args(tiny_build, tiny_model, out, "--max-steps", 4, "--config", cfg)
    assert CliRunner().invoke(main, args, catch_exceptions=False).exit_code == 0
    (out / "run_manifest.json").unlink()  # killed while saving checkpoint-4, before the run was written
    last = out / "checkpoints" / "checkpoint-4" / tear
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    result = CliRunner().invoke(main, [*args, "--resume"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "checkpoint-4 incomplete" in result.stderr and "resuming from checkpoint-2" in result.stderr
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["resumed_from"].endswith("checkpoint-2")
