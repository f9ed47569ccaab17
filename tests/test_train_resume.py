"""Kill a training run after its first checkpoint; `--resume` continues from the last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from malmungchi.cli import main
from train_helpers import tiny_build, tiny_model  # noqa: F401 - fixtures


def test_interrupt_then_resume(tmp_path, tiny_build, tiny_model):
    cfg = tmp_path / "train.toml"
    cfg.write_text("[train]\nquant = \"none\"\nlora_r = 4\nbatch_size = 2\nlr = 0.01\nseed = 3\n\n"
                   "[train.args]\nsave_steps = 2\nlogging_steps = 1\neval_strategy = \"no\"\n", encoding="utf-8")
    out = tmp_path / "run"
    args = [str(tiny_build), "--model", str(tiny_model), "--out", str(out), "--config", str(cfg), "--max-steps", "8"]
    proc = subprocess.Popen([sys.executable, "-m", "malmungchi", "train", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first = out / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    deadline = time.monotonic() + 120
    try:
        while not first.is_file():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "run_manifest.json").exists(), "the run finished before it could be interrupted"
    saved = sorted(int(d.name.split("-")[1]) for d in (out / "checkpoints").glob("checkpoint-*")
                   if (d / "trainer_state.json").is_file())
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
    assert steps == list(range(saved[-1] + 1, 9)), steps
    assert (out / "checkpoints" / "checkpoint-8").is_dir()


def test_resume_without_checkpoint(tmp_path, tiny_build, tiny_model):
    result = CliRunner().invoke(main, ["train", "run", str(tiny_build), "--model", str(tiny_model), "--out",
                                       str(tmp_path / "run"), "--resume", "--quant", "none"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "no checkpoint" in result.stderr
