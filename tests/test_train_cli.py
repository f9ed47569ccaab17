"""`malmungchi train run` on the command line: config errors (all at once, one line each, exit 2, nothing
written), a missing model, --dry-run."""

from __future__ import annotations

import json

from click.testing import CliRunner

from malmungchi.cli import main
from train_helpers import tiny_build, tiny_model  # noqa: F401 - fixtures


def _run(*args):
    return CliRunner().invoke(main, ["train", "run", *map(str, args)], catch_exceptions=False)


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def test_unknown_and_bad_train_args_all_reported_nothing_written(tmp_path, tiny_build, tiny_model):
    cfg = tmp_path / "train.toml"
    cfg.write_text('[train]\nlr = "fast"\nlora_r = 0\n\n[train.args]\nlerning_rate_warmup = 3\nwarmup_step = 5\n'
                   'output_dir = "x"\n', encoding="utf-8")
    out = tmp_path / "run"
    result = _run(tiny_build, "--model", tiny_model, "--out", out, "--config", cfg)
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 5, lines
    text = "\n".join(lines)
    assert "train.lr" in text and "train.lora_r" in text
    assert "train.args.warmup_step: not a field of trl's SFTConfig (did you mean 'warmup_steps'?)" in text
    assert "train.args.lerning_rate_warmup: not a field of trl's SFTConfig" in text
    assert "train.args.output_dir: set by malmungchi" in text
    assert all(str(cfg) in line for line in lines)
    assert not out.exists()


def test_unknown_train_key_did_you_mean(tmp_path, tiny_build, tiny_model):
    cfg = tmp_path / "malmungchi.toml"
    cfg.write_text("[train]\nlearning_rate = 0.1\nbatch_sise = 3\n", encoding="utf-8")
    out = tmp_path / "run"
    result = _run(tiny_build, "--model", tiny_model, "--out", out, "--config", cfg)
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 2, lines
    assert "unknown key 'train.batch_sise' (did you mean 'batch_size'?)" in lines[1] or \
        "unknown key 'train.batch_sise' (did you mean 'batch_size'?)" in lines[0]
    assert not out.exists()


def test_bad_train_args_value_one_line_exit_2(tmp_path, tiny_build, tiny_model):
    cfg = tmp_path / "train.toml"
    cfg.write_text('[train.args]\nlr_scheduler_type = "sideways"\n', encoding="utf-8")
    out = tmp_path / "run"
    result = _run(tiny_build, "--model", tiny_model, "--out", out, "--config", cfg)
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: [train.args]:") and "sideways" in lines[0], lines
    assert not out.exists()


def test_flag_and_args_conflict_and_missing_model(tmp_path, tiny_build):
    out = tmp_path / "run"
    result = _run(tiny_build, "--model", tmp_path / "no-such-model", "--out", out, "--quant", "none")
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 1 and "no-such-model" in lines[0] and "never downloads" in lines[0], lines
    result = _run(tiny_build, "--model", "someone/not-cached-anywhere", "--out", out, "--quant", "none")
    assert result.exit_code == 2 and len(_error_lines(result)) == 1
    result = _run(tmp_path / "nope", "--model", "x", "--out", out)
    assert result.exit_code == 2 and "no such build directory" in result.stderr
    result = _run(tiny_build, "--out", out)
    assert result.exit_code == 2 and "no base model" in result.stderr
    assert not out.exists()


def test_dry_run_prints_the_plan(tmp_path, tiny_build, tiny_model):
    out = tmp_path / "run"
    result = _run(tiny_build, "--model", tiny_model, "--out", out, "--dry-run", "--max-steps", "7", "--lora-r", "4")
    assert result.exit_code == 0, result.stderr
    assert "…" not in result.stdout, result.stdout  # at 80 columns rich alone cut the run directory's path
    wide = CliRunner().invoke(main, ["train", "run", *map(str, (tiny_build, "--model", tiny_model, "--out", out,
                                                               "--dry-run", "--max-steps", "7", "--lora-r", "4"))],
                              env={"COLUMNS": "200"})
    assert f" {out} " in wide.stdout, wide.stdout
    text = " ".join(wide.stdout.split())
    for needle in ("quantization", "LoRA targets", "q_proj", "trainable parameters", "new tokens",
                   "<|sound|>=151669", "소리", "trainable_token_indices", "GPU memory (estimate)", "steps", "7"):
        assert needle in text, wide.stdout
    as_json = _run(tiny_build, "--model", tiny_model, "--out", out, "--dry-run", "--max-steps", "7", "--json")
    plan = json.loads(as_json.stdout)["plan"]
    assert "trainable_token_indices" in plan["new tokens trained by"] and "quantization" in plan
    assert not out.exists()


def test_push_to_hub_in_train_args_is_refused(tmp_path, tiny_build, tiny_model):
    cfg = tmp_path / "train.toml"
    cfg.write_text("[train.args]\npush_to_hub = true\nhub_model_id = \"me/run\"\n", encoding="utf-8")
    result = _run(tiny_build, "--model", tiny_model, "--out", tmp_path / "run", "--config", cfg)
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 2 and all("nothing is uploaded during training" in x and "malmungchi hub push" in x
                                   for x in lines)
    assert not (tmp_path / "run").exists()
