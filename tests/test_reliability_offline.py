"""No download, no remote code, no secret on disk: a short build → train → eval with every socket connection
refused (and HF_HUB_OFFLINE unset), fake access tokens in the environment, and every file written grepped."""

from __future__ import annotations

import json
import socket
import sys

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from train_helpers import make_model

SECRETS = {"HF_TOKEN": "hf_fakeSECRET123", "HUGGING_FACE_HUB_TOKEN": "hf_fakeSECRET456",
           "WANDB_API_KEY": "fakeWANDBsecret789"}


@pytest.fixture
def no_network(monkeypatch):
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1:] if args and isinstance(args[0], socket.socket) else args)[:200])
        raise OSError("network access in a test (malmungchi must never download)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_build_train_eval_offline_without_remote_code_or_secrets(tmp_path, monkeypatch, no_network, sample_dir,
                                                                 qwen3_tokenizer_dir):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    for name in ("WANDB_MODE", "WANDB_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    model = make_model(tmp_path / "model", qwen3_tokenizer_dir)

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    calls: list[tuple[str, dict]] = []
    for cls in (AutoConfig, AutoModelForCausalLM, AutoTokenizer):
        real = cls.from_pretrained.__func__

        def spy(klass, *args, _real=real, _name=cls.__name__, **kwargs):
            if sys._getframe(1).f_globals.get("__name__", "").startswith("malmungchi"):  # malmungchi's own loads
                calls.append((_name, kwargs))
            return _real(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))

    output = []

    def cli(*args):
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the commands must not rely on the user setting it
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        r = CliRunner().invoke(main, [str(a) for a in args])
        output.append(r.output)
        assert r.exit_code == 0, r.output
        assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
        return r

    build, run = tmp_path / "build", tmp_path / "run"
    cli("corpus", "build", sample_dir, "--tokenizer", qwen3_tokenizer_dir, "--out", build, "--max-length", 128)
    trained = cli("train", "run", build, "--model", model, "--out", run, "--quant", "none", "--max-steps", 2,
                  "--batch-size", 2, "--lora-r", 4, "--json")
    summary = json.loads(trained.stdout)  # --json: only the outcome on stdout, progress on stderr
    assert summary["steps"] == 2 and summary["run_dir"] == str(run) and summary["train_loss"] > 0
    cli("eval", "run", run, "--data", build, "--output", tmp_path / "results.jsonl", "--limit", 3,
        "--max-new-tokens", 4, "--device", "cpu")
    assert no_network == [], f"tried to connect: {no_network}"

    # remote code: off by default, recorded off, and every model/config load says so explicitly
    manifest = json.loads((run / "run_manifest.json").read_text(encoding="utf-8"))
    flags = [v for k, v in _walk(manifest) if k == "trust_remote_code"]
    assert flags and not any(flags), flags
    loads = [kw for name, kw in calls if name in ("AutoModelForCausalLM", "AutoConfig")]
    assert loads and all(kw.get("trust_remote_code") is False for kw in loads), loads
    assert not any(kw.get("trust_remote_code") for _, kw in calls)
    assert {name for name, _ in calls} >= {"AutoModelForCausalLM", "AutoConfig"}

    # no secret in any file written (manifests, metrics, results, logs, checkpoints) nor in what was printed
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(tmp_path / "model")]
    assert any(p.name == "run_manifest.json" for p in written) and any(p.suffix == ".jsonl" for p in written)
    for p in written:
        data = p.read_bytes()
        for value in SECRETS.values():
            assert value.encode() not in data, f"{value} written to {p}"
    for value in SECRETS.values():
        assert not any(value in text for text in output)


def _walk(obj, key=None):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key)
    else:
        yield key, obj


def test_a_hub_id_fails_clearly_without_connecting(tmp_path, monkeypatch, no_network, sample_dir):
    """A model or tokenizer that is only a hub id (not in the cache) is one clear error, never a download."""
    import huggingface_hub.constants as hub_constants
    import huggingface_hub.utils._detect_agent as detect_agent

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    # as in a process that imported huggingface_hub before going offline and has not built a session yet: it
    # would fetch its user-agent registry from the hub on the first request
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(detect_agent, "_registry", None, raising=False)
    monkeypatch.setattr(detect_agent, "_read_cached_registry", lambda *a, **k: None, raising=False)
    r = CliRunner().invoke(main, ["corpus", "build", str(sample_dir), "--tokenizer", "someone/not-cached",
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "someone/not-cached" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert no_network == [] and not (tmp_path / "o").exists()


def test_loading_a_tokenizer_leaves_the_process_online(monkeypatch, qwen3_tokenizer_dir):
    """The Python API goes offline for its own loads only: a caller that builds and then pushes to the Hub in one
    process (or sets HF_HUB_OFFLINE itself) finds the environment and huggingface_hub as it left them."""
    import os

    import huggingface_hub.constants as hub_constants

    from malmungchi.prep.tokenizer import load_tokenizer

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    assert len(load_tokenizer(str(qwen3_tokenizer_dir))) > 1000
    assert "HF_HUB_OFFLINE" not in os.environ and hub_constants.HF_HUB_OFFLINE is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    load_tokenizer(str(qwen3_tokenizer_dir))
    assert os.environ["HF_HUB_OFFLINE"] == "0" and hub_constants.HF_HUB_OFFLINE is False
