"""The quick start is the first thing a new user runs: it must finish offline and show the model learning."""

import json
import os
import signal
import subprocess
import sys
import time

from click.testing import CliRunner
from rich.console import Console

from malmungchi.cli import main
from malmungchi.quickstart.pipeline import Results, Settings, print_summary


def test_quickstart_killed_then_rerun_runs_every_stage_and_exact_match_rises(tmp_path):
    """What a new user runs first, interrupted the hard way after its build (SIGKILL) and run again: the rerun
    replaces the half-made folder, runs every stage offline and shows the model learning (default settings);
    `--json` gives the summary alone on stdout, which the human summary renders the same."""
    out = tmp_path / "qs"
    args = [sys.executable, "-m", "malmungchi", "quickstart", "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # nothing may come from a hub
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    try:
        while not (out / "build" / "manifest.json").is_file():  # killed in the middle: after the build
            assert proc.poll() is None, "the quick start ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "run" / "run_manifest.json").exists()

    rerun = subprocess.run(args + ["--json"], capture_output=True, text=True, timeout=600, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Traceback" not in rerun.stderr
    for stage in ("1/5 lint", "2/5 build", "3/5 exact match before", "4/5", "5/5 exact match after"):
        assert stage in rerun.stderr
    summary = json.loads(rerun.stdout)  # --json: the summary alone on stdout, the stages on stderr

    def em(name: str) -> float:
        rows = [json.loads(line) for line in (out / "eval" / name).read_text(encoding="utf-8").splitlines()]
        return sum(r["em_normalized"] for r in rows) / len(rows)

    before, after = em("before-memorized.jsonl"), em("after-memorized.jsonl")
    assert before == 0.0
    assert after >= 0.5, f"memorised exact match only {after:.0%} after training"
    assert summary["em"]["after"]["memorized"] == after and summary["steps"] == Settings.steps
    metrics = json.loads((out / "run" / "metrics.json").read_text(encoding="utf-8"))
    losses = [p["loss"] for p in metrics["loss_curve"]]
    assert losses[-1] < losses[0] / 4 and summary["losses"] == losses
    manifest = json.loads((out / "build" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["mode"] == "chat" and manifest["tokenizer"]["added_tokens"]

    # the human summary of the same results
    console = Console(record=True, width=100)
    fields = {k: v for k, v in summary.items() if k not in ("out", "steps")}
    print_summary(Results(**fields), Settings(out=out), console)
    text = console.export_text()
    assert "quick start summary" in text and f"0% before → {after:.0%} after training" in text


def test_quickstart_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me", encoding="utf-8")
    result = CliRunner().invoke(main, ["quickstart", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "was not made by the quick start" in result.output
    assert (tmp_path / "mine.txt").read_text(encoding="utf-8") == "keep me"


def test_the_quick_start_calls_the_library_not_the_cli():
    import ast
    from importlib import resources

    for path in (resources.files("malmungchi") / "quickstart").iterdir():
        if not path.name.endswith(".py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in imported if m == "malmungchi.cli" or m.startswith("malmungchi.cli.")], path.name
