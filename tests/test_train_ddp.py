"""Two CPU processes (`accelerate launch`, the README's command, gloo): DDP trains, tokens are counted across ranks,
rank 0 writes the run. accelerate's multi-process launcher is torch.distributed.run (torchrun) underneath, so the
torchrun launch path is this one; `MALMUNGCHI_TEST_TORCHRUN=1` also runs it with torchrun directly."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from malmungchi.train.loader import load_for_inference
from train_helpers import tiny_build, tiny_model  # noqa: F401 - fixtures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(os.path.join(os.path.dirname(
    sys.executable), "torchrun")), reason="torchrun not installed")
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"] if os.environ.get("MALMUNGCHI_TEST_TORCHRUN") else
                         ["accelerate"])
def test_two_process_ddp(tmp_path, tiny_build, tiny_model, launcher):
    out = tmp_path / "run"
    if launcher == "torchrun":
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                  str(_free_port())]
    else:  # the README's command; on CPUs accelerate needs --multi_gpu (its --cpu means one process)
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
                  str(_free_port())]
    cmd = launch + ["-m", "malmungchi", "train", "run", str(tiny_build), "--model", str(tiny_model),
                    "--out", str(out), "--max-steps", "2", "--quant", "none", "--batch-size", "1", "--lora-r", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["hyperparameters"]["world_size"] == 2
    assert manifest["hyperparameters"]["steps"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    # each step took one row on each rank; tokens are summed over both
    import pyarrow.parquet as pq

    lengths = [len(r) for r in pq.read_table(tiny_build / "data" / "train.parquet").column("input_ids").to_pylist()]
    assert metrics["loss_curve"][0]["tokens"] > max(lengths)
    assert proc.stdout.count("trained 2 steps") == 1  # rank 0 only
    model, tok, _ = load_for_inference(out)
    assert model is not None
