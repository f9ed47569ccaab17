"""`malmungchi hub push` against a local HTTP server speaking the Hub routes huggingface_hub calls (tests/hub_server.py):
the files and their bytes arrive, the card says what the run is, the token goes only into the Authorization header,
and every refusal is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from build_helpers import BOOK, book, write
from hub_server import HubServer
from malmungchi.cli import main
from malmungchi.train.runner import resolve, train
from train_helpers import tiny_build, tiny_model, train_cfg  # noqa: F401 - fixtures

TOKEN = "hf_testtoken_0123456789abcdef"


def _push(*args):
    return CliRunner().invoke(main, ["hub", "push", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """No saved login (an empty HF_HOME), online, the token in HF_TOKEN."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return monkeypatch


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_build, tiny_model):
    run = tmp_path_factory.mktemp("hubrun") / "run"
    train(resolve(tiny_build, train_cfg(tiny_model, run, max_steps=1)))
    return run


@pytest.fixture(scope="module")
def real_build(tmp_path_factory, qwen3_tokenizer_dir):
    corpus = tmp_path_factory.mktemp("hubcorpus") / "books"
    write(corpus, "a.txt", BOOK + "".join(book(i) for i in range(6)))
    out = tmp_path_factory.mktemp("hubbuild") / "build"
    r = CliRunner().invoke(main, ["corpus", "build", str(corpus), "--tokenizer", str(qwen3_tokenizer_dir), "--out",
                                  str(out), "--max-length", "128"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def _no_token_anywhere(result, *roots: Path) -> None:
    assert TOKEN not in result.output and TOKEN not in (result.stderr or "")
    for root in roots:
        for f in root.rglob("*"):
            if f.is_file():
                assert TOKEN.encode() not in f.read_bytes(), f


def test_a_run_goes_up_with_its_files_and_a_card_the_token_only_as_the_bearer(tmp_path, hub_env, run_dir):
    results = run_dir.parent / "results.jsonl"  # an `eval run` results file: the fields the card's table reads
    results.write_text("".join(json.dumps({"id": f"d{i}:t0", "prediction": "x", "em_strict": i % 2,
                                           "em_normalized": 1, "em_lenient": 1, "char_f1": 0.5}) + "\n"
                               for i in range(4)), encoding="utf-8")
    with HubServer(TOKEN) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        result = _push(run_dir, "--repo", "me/tiny-run", "--private", "--base-model", "Qwen/Qwen3-0.6B",
                       "--license", "apache-2.0", "--results", results)
    assert result.exit_code == 0, result.output
    assert "pushed" in result.stdout and "me/tiny-run" in result.stdout
    assert hub.repos["model:me/tiny-run"]["private"] is True
    assert len(hub.commits) == 1
    got = hub.files("model", "me/tiny-run")
    for rel in ("adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert got[rel] == (run_dir / "adapter" / rel).read_bytes(), rel
    assert got["run_manifest.json"] == (run_dir / "run_manifest.json").read_bytes()
    assert got["metrics.json"] == (run_dir / "metrics.json").read_bytes()
    build_path = Path(json.loads(got["run_manifest.json"])["build"]["path"])
    assert got["build_manifest.json"] == (build_path / "manifest.json").read_bytes()
    config = json.loads(got["adapter_config.json"])
    assert config["base_model_name_or_path"] == "Qwen/Qwen3-0.6B"  # not the local folder it was trained from
    assert not any(rel.startswith(("checkpoints/", "tokenizer/")) for rel in got)

    card = got["README.md"].decode("utf-8")
    front = card.split("---\n")[1]
    import yaml

    meta = yaml.safe_load(front)
    assert meta["base_model"] == "Qwen/Qwen3-0.6B" and meta["library_name"] == "peft"
    assert meta["license"] == "apache-2.0" and meta["language"] == ["ko"] and "malmungchi" in meta["tags"]
    manifest = json.loads(got["run_manifest.json"])
    assert all(str(i) in card for i in manifest["added_ids"])
    sound = json.loads(got["build_manifest.json"])["markers"]["SOUND"]["id"]
    assert f"| `\\|SOUND\\|>` | special | `<\\|sound\\|>` | {sound} |" in card
    assert "AutoPeftModelForCausalLM.from_pretrained(\"me/tiny-run\")" in card
    assert "| learning rate |" in card and "| LoRA r | 4 |" in card
    assert "| results.jsonl | 4 | 0.5000 | 1.0000 | 1.0000 | 0.5000 |" in card

    api = [r for r in hub.requests if r["path"] != "/api/validate-yaml"]
    assert {r["path"].split("?")[0] for r in api} >= {"/api/repos/create", "/api/models/me/tiny-run/preupload/main",
                                                      "/api/models/me/tiny-run/commit/main"}
    assert all(r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in api)
    for r in hub.requests:  # the token travels in that header only
        assert TOKEN.encode() not in r["body"]
        assert all(TOKEN not in v for k, v in r["headers"].items() if k != "authorization")
    assert all(TOKEN.encode() not in data for data in got.values())
    _no_token_anywhere(result, tmp_path, run_dir.parent)


def test_a_build_goes_up_as_a_dataset_repo_whose_card_loads_the_training_splits(tmp_path, hub_env, real_build):
    with HubServer(TOKEN) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        result = _push(real_build, "--repo", "me/tiny-build")
    assert result.exit_code == 0, result.output
    got = hub.files("dataset", "me/tiny-build")
    local = {p.relative_to(real_build).as_posix() for p in real_build.rglob("*") if p.is_file()}
    assert set(got) == local
    assert all(got[rel] == (real_build / rel).read_bytes() for rel in local)  # the card too: same license
    # the pushed files, as a dataset folder, load the packed training splits (not eval/test.jsonl)
    import datasets

    mirror = tmp_path / "mirror"
    for rel, data in got.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(data)
    ds = datasets.load_dataset(str(mirror))
    manifest = json.loads(got["manifest.json"])
    assert sorted(ds) == ["test", "train", "validation"]
    assert {s: len(ds[s]) for s in ds} == {s: manifest["splits"][s]["rows"] for s in ds}
    assert "input_ids" in ds["train"].column_names and "prompt" not in ds["test"].column_names
    _no_token_anywhere(result, tmp_path)


def test_dry_run_lists_files_and_prints_the_card_without_a_token_or_a_server(tmp_path, monkeypatch, run_dir):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    result = _push(run_dir, "--repo", "me/tiny-run", "--dry-run")
    assert result.exit_code == 0, result.output
    size = (run_dir / "adapter" / "adapter_model.safetensors").stat().st_size
    line = next(x for x in result.stdout.splitlines() if x.endswith("  adapter_model.safetensors"))
    assert f"{size / 1024:.1f} KiB" in line or f"{size / 1024 / 1024:.1f} MiB" in line, line
    assert "nothing sent" in result.stdout and "library_name: \"peft\"" in result.stdout
    assert "README.md" in result.stdout and "## Training" in result.stdout


def test_refusals_are_one_line(tmp_path, hub_env, run_dir):
    def one_line(result, *needles):
        assert result.exit_code == 2, result.output
        lines = [x for x in result.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and all(n in lines[0] for n in needles), lines
        assert "Traceback" not in result.output
        _no_token_anywhere(result)

    one_line(_push(run_dir, "--repo", "not a repo"), "--repo", "OWNER/NAME")
    one_line(_push(run_dir, "--repo", "me/a--b"), "--repo")
    one_line(_push(tmp_path, "--repo", "me/x"), str(tmp_path), "neither a run directory")
    with HubServer("another-token") as hub:  # the server knows another token: 401
        hub_env.setenv("HF_ENDPOINT", hub.url)
        one_line(_push(run_dir, "--repo", "me/tiny-run"), "refused the token", "HTTP 401", "HF_TOKEN")
        assert not hub.repos and not hub.commits
        hub_env.delenv("HF_TOKEN")
        one_line(_push(run_dir, "--repo", "me/tiny-run"), "no Hugging Face token", "HF_TOKEN", "hf auth login")
    hub_env.setenv("HF_TOKEN", TOKEN)
    hub_env.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    one_line(_push(run_dir, "--repo", "me/tiny-run"), "cannot reach http://127.0.0.1:9")
    hub_env.setenv("HF_HUB_OFFLINE", "1")
    one_line(_push(run_dir, "--repo", "me/tiny-run"), "HF_HUB_OFFLINE")
