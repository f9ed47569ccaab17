"""The quick start is the first thing a new user runs: it must finish offline and show the model learning."""

import json

from click.testing import CliRunner

from malmungchi.cli import main


def test_quickstart_runs_every_stage_and_exact_match_rises(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may come from a hub
    out = tmp_path / "qs"
    result = CliRunner().invoke(main, ["quickstart", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for stage in ("1/5 lint", "2/5 build", "3/5 exact match before", "4/5", "5/5 exact match after"):
        assert stage in result.output
    assert "quick start summary" in result.output

    def em(name: str) -> float:
        rows = [json.loads(line) for line in (out / "eval" / name).read_text(encoding="utf-8").splitlines()]
        return sum(r["em_normalized"] for r in rows) / len(rows)

    before, after = em("before-memorized.jsonl"), em("after-memorized.jsonl")
    assert before == 0.0
    assert after >= 0.5, f"memorised exact match only {after:.0%} after training"
    metrics = json.loads((out / "run" / "metrics.json").read_text(encoding="utf-8"))
    losses = [p["loss"] for p in metrics["loss_curve"]]
    assert losses[-1] < losses[0] / 4
    manifest = json.loads((out / "build" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["mode"] == "chat" and manifest["tokenizer"]["added_tokens"]


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
