"""`malmungchi hub push` against a local HTTP server speaking the Hub routes huggingface_hub calls (tests/hub_server.py):
the files and their bytes arrive, the card says what the run is, the token goes only into the Authorization header,
and every refusal is one line."""

from __future__ import annotations

import json
import ntpath
import posixpath
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from build_helpers import BOOK, book, write
from hub_server import HubServer
from malmungchi.cli import main
from malmungchi.hub.card import BaseModel, recorded_base
from malmungchi.hub.names import is_repo_id
from malmungchi.hub.push import portable_path, relative_inside
from malmungchi.train.runner import resolve, train
from train_helpers import make_model, tiny_build, train_cfg  # noqa: F401 - fixtures

TOKEN = "hf_testtoken_0123456789abcdef"


def _push(*args):
    return CliRunner().invoke(main, ["hub", "push", *map(str, args)], catch_exceptions=False)


def _pushed(hub_env, repo: str, *args) -> dict[str, bytes]:
    """`hub push *args --repo repo` of a run against a fresh local Hub; the files the model repo holds then."""
    with HubServer(TOKEN) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        result = _push(*args, "--repo", repo)
    assert result.exit_code == 0, result.output
    return hub.files("model", repo)


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """No saved login (an empty HF_HOME), online, the token in HF_TOKEN."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return monkeypatch


BASE = "models/tiny-base"  # the local folder the run trains from, named relative to its project


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_build, qwen3_tokenizer_dir):
    """A run trained from the local folder `models/tiny-base` of a project folder (a name shaped like a Hub id),
    as `train run --model models/tiny-base` run there records it."""
    project = tmp_path_factory.mktemp("hubproject")
    make_model(project / BASE, qwen3_tokenizer_dir)
    run = tmp_path_factory.mktemp("hubrun") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        train(resolve(tiny_build, train_cfg(Path(BASE), run, max_steps=1)))
    return run


def _front(card: str) -> dict:
    import yaml

    return yaml.safe_load(card.split("---\n")[1])


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
    assert got["metrics.json"] == (run_dir / "metrics.json").read_bytes()
    assert got["loss.png"] == (run_dir / "loss.png").read_bytes() and got["loss.png"].startswith(b"\x89PNG")
    build_path = Path(json.loads((run_dir / "run_manifest.json").read_text())["build"]["path"])
    build_manifest = json.loads((build_path / "manifest.json").read_text())
    tokenizer_dir = Path(build_manifest["tokenizer"]["source"])
    assert tokenizer_dir.is_absolute() and str(tokenizer_dir).encode() not in got["build_manifest.json"]
    build_manifest["tokenizer"]["source"] = tokenizer_dir.name  # the tokenizer folder's name, not its path
    assert json.loads(got["build_manifest.json"]) == build_manifest
    config = json.loads(got["adapter_config.json"])
    assert config["base_model_name_or_path"] == "Qwen/Qwen3-0.6B"  # not the local folder it was trained from
    assert not any(rel.startswith(("checkpoints/", "tokenizer/")) for rel in got)

    card = got["README.md"].decode("utf-8")
    meta = _front(card)
    assert meta["base_model"] == "Qwen/Qwen3-0.6B" and meta["library_name"] == "peft"
    assert meta["license"] == "apache-2.0" and meta["language"] == ["ko"] and "malmungchi" in meta["tags"]
    manifest = json.loads(got["run_manifest.json"])
    assert all(str(i) in card for i in manifest["added_ids"])
    sound = json.loads(got["build_manifest.json"])["markers"]["SOUND"]["id"]
    assert f"| `\\|SOUND\\|>` | special | `<\\|sound\\|>` | {sound} |" in card
    assert "AutoPeftModelForCausalLM.from_pretrained(\"me/tiny-run\")" in card
    assert "| learning rate |" in card and "| LoRA r | 4 |" in card
    assert "![training and validation loss by step](loss.png)" in card  # the plot beside it, shown on the Hub
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


def test_the_card_names_the_base_model_the_run_recorded_not_what_the_current_folder_holds(tmp_path, hub_env,
                                                                                             run_dir):
    recorded = json.loads((run_dir / "run_manifest.json").read_text())["base_model"]
    assert recorded["name_or_path"] == BASE and Path(recorded["resolved"]).is_absolute()
    hub_env.chdir(tmp_path)  # pushed from anywhere but the project: `models/tiny-base` is no folder here
    got = _pushed(hub_env, "me/local-base", run_dir)
    card = got["README.md"].decode("utf-8")
    assert "base_model" not in _front(card)  # a local folder is no Hub id, however its name looks
    assert "base `tiny-base` (a local folder; name its Hub id with `hub push --base-model`)" in card
    assert BASE not in card and recorded["resolved"] not in card
    assert got["adapter_config.json"] == (run_dir / "adapter" / "adapter_config.json").read_bytes()


def _strings(value):
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_the_pushed_manifests_hold_no_path_of_the_machine(tmp_path, hub_env, run_dir):
    on_disk = (run_dir / "run_manifest.json").read_bytes()
    local = json.loads(on_disk)
    assert Path(local["build"]["path"]).is_absolute() and Path(local["base_model"]["resolved"]).is_absolute()
    pushed = _pushed(hub_env, "me/no-paths", run_dir)["run_manifest.json"]
    assert (run_dir / "run_manifest.json").read_bytes() == on_disk  # the run keeps its own
    for root in (str(run_dir.parent), str(Path(local["build"]["path"]).parent), str(Path.home())):
        assert root.encode() not in pushed, root
    got = json.loads(pushed)
    assert not [s for s in _strings(got) if s.startswith(("/", "~/"))]
    # what the paths named stays readable: the build folder's and the base folder's names, the relative name
    assert got["build"] == {**local["build"], "path": Path(local["build"]["path"]).name}
    assert got["base_model"] == {**local["base_model"], "resolved": "tiny-base"}
    assert got["base_model"]["name_or_path"] == BASE
    assert {k: v for k, v in got.items() if k not in ("build", "base_model")} == \
        {k: v for k, v in local.items() if k not in ("build", "base_model")}
    assert pushed == (json.dumps(got, ensure_ascii=False, indent=2) + "\n").encode()  # the layout train run writes
    assert recorded_base(got) == recorded_base(local)

    # trained as `--model /abs/models/tiny-base`: peft recorded that path in adapter_config.json
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    (run / "adapter" / "adapter_config.json").write_text(
        json.dumps({**config, "base_model_name_or_path": local["base_model"]["resolved"]}, indent=2))
    assert json.loads(_pushed(hub_env, "me/no-paths", run)["adapter_config.json"]) == \
        {**config, "base_model_name_or_path": "tiny-base"}


def test_only_the_path_fields_of_the_run_manifest_are_rewritten(tmp_path, run_dir):
    """What the user wrote stays as written, even when it looks like a path: a marker described as `/웃음/`, a
    notice, a [train.args] run name; the fields train run fills with paths are rewritten."""
    from malmungchi.hub.push import plan_push

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    manifest = json.loads((run / "run_manifest.json").read_text())
    manifest["init"]["tokens"] = [{**manifest["init"]["tokens"][0], "description": "/웃음/"}]
    manifest["quantization_notice"] = "/ 4-bit off: no CUDA"
    manifest["hyperparameters"]["args"] = {"run_name": "/exp/a", "logging_dir": "/home/me/logs/a"}
    manifest["resumed_from"] = str(run / "checkpoints" / "checkpoint-1")
    (run / "run_manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    pushed = json.loads(dict(plan_push(run, "me/x").files)["run_manifest.json"])
    assert pushed["init"] == manifest["init"] and pushed["quantization_notice"] == manifest["quantization_notice"]
    assert pushed["hyperparameters"]["args"] == {"run_name": "/exp/a", "logging_dir": "a"}
    assert pushed["resumed_from"] == "checkpoints/checkpoint-1"
    assert pushed["build"]["path"] == Path(manifest["build"]["path"]).name


def test_a_rewritten_adapter_config_is_written_as_peft_writes_it_without_another_models_revision(tmp_path,
                                                                                                  run_dir):
    """Whether the base gets a Hub id (`--base-model`) or only loses its path, the pushed adapter_config.json has
    peft's layout (indent 2, keys sorted); a `revision` the file holds for the model it named does not go up with
    another base."""
    from malmungchi.hub.push import plan_push

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    odd = {"revision": "a" * 40, **dict(reversed(list(config.items()))),
           "base_model_name_or_path": "/home/me/models/tiny-base"}  # keys out of order, as a hand edit leaves them
    (run / "adapter" / "adapter_config.json").write_text(json.dumps(odd, indent=2), encoding="utf-8")
    for given, want in ((None, {**odd, "base_model_name_or_path": "tiny-base"}),
                        ("acme/other", {**odd, "base_model_name_or_path": "acme/other", "revision": None})):
        pushed = dict(plan_push(run, "me/x", base_model=given).files)["adapter_config.json"]
        assert pushed == json.dumps(want, indent=2, sort_keys=True).encode("utf-8"), given


@pytest.mark.parametrize("text, want", [
    ("RUN/checkpoints/checkpoint-40", "checkpoints/checkpoint-40"),  # inside the run directory: relative to it
    ("RUN", "."),
    ("/home/me/builds/b1", "b1"),
    ("/home/me/builds/b1/", "b1"),
    ("~/ds_config.json", "ds_config.json"),
    ("C:\\Users\\me\\models\\tiny", "tiny"),
    ("\\Users\\me\\models\\tiny", "tiny"),  # Windows, rooted without a drive
    ("\\\\server\\share\\models\\tiny", "tiny"),
    ("/home/me/.cache/huggingface/hub/models--acme--tiny/snapshots/" + "a" * 40,
     "models--acme--tiny/snapshots/" + "a" * 40),
    ("models/tiny-base", "models/tiny-base"),  # relative: kept
    ("Qwen/Qwen3-0.6B", "Qwen/Qwen3-0.6B"),
    ("/", "/"),
    ("mean of the base rows", "mean of the base rows"),
    ("https://example.org/x", "https://example.org/x"),
])
def test_portable_path(tmp_path, text, want):
    run = tmp_path / "run"
    assert portable_path(text.replace("RUN", str(run)), run) == want


@pytest.mark.parametrize("ospath, path, base, want", [
    (ntpath, "C:\\Users\\Me\\Run\\checkpoints\\checkpoint-40", "c:\\users\\me\\run", "checkpoints/checkpoint-40"),
    (ntpath, "c:/users/me/run", "C:\\Users\\Me\\Run", "."),  # Windows: case and `/` do not matter
    (ntpath, "C:\\Users\\Me\\Runs\\x", "C:\\Users\\Me\\Run", None),
    (posixpath, "/home/me/run/checkpoints/c-40", "/home/me/run", "checkpoints/c-40"),
    (posixpath, "/home/Me/Run/checkpoints", "/home/me/run", None),  # POSIX: another folder
    (posixpath, "/home/me/runs/x", "/home/me/run", None),
])
def test_inside_the_run_directory_as_the_platform_compares_paths(ospath, path, base, want):
    assert relative_inside(path, base, ospath) == want


def test_a_base_from_the_hub_cache_is_named_by_its_id_and_commit(tmp_path, hub_env, run_dir):
    """A run trained from a model folder of the Hub cache: the card and adapter_config.json name its id, and peft
    loads the base at the commit the run was trained on."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = f"/home/someone/.cache/huggingface/hub/models--acme--tiny-base/snapshots/{commit}"
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    manifest = json.loads((run / "run_manifest.json").read_text())
    manifest["base_model"].update(name_or_path=snapshot, resolved=snapshot)  # as `train run --model SNAPSHOT`
    (run / "run_manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    got = _pushed(hub_env, "me/cached-base", run)
    card = got["README.md"].decode("utf-8")
    assert _front(card)["base_model"] == "acme/tiny-base"
    assert f"base `acme/tiny-base` (revision `{commit}`)" in card
    config = json.loads(got["adapter_config.json"])
    assert config["base_model_name_or_path"] == "acme/tiny-base" and config["revision"] == commit
    pushed = json.loads(got["run_manifest.json"])["base_model"]
    assert pushed["resolved"] == pushed["name_or_path"] == f"models--acme--tiny-base/snapshots/{commit}"
    assert recorded_base({"base_model": pushed}) == recorded_base(manifest)


@pytest.mark.parametrize("name_or_path, resolved, want", [
    ("Qwen/Qwen3-0.6B", None, BaseModel("Qwen/Qwen3-0.6B")),  # a Hub id, loaded from the cache
    ("gpt2", None, BaseModel("gpt2")),  # a legacy id without an owner
    ("models/tiny", "/home/me/proj/models/tiny", BaseModel(None, folder="tiny")),  # a relative local folder
    ("/home/me/ckpt/", "/home/me/ckpt", BaseModel(None, folder="ckpt")),
    ("C:\\models\\tiny", "C:\\models\\tiny", BaseModel(None, folder="tiny")),  # written on Windows
    ("/c/hub/models--Qwen--Qwen3-0.6B/snapshots/" + "a" * 40, "/c/hub/models--Qwen--Qwen3-0.6B/snapshots/" + "a" * 40,
     BaseModel("Qwen/Qwen3-0.6B", "a" * 40)),
    ("/c/hub/models--gpt2/snapshots/" + "b" * 40, "/c/hub/models--gpt2/snapshots/" + "b" * 40,
     BaseModel("gpt2", "b" * 40)),
    ("/c/hub/models--a--b/snapshots/" + "c" * 40 + "/sub", "/c/hub/models--a--b/snapshots/" + "c" * 40 + "/sub",
     BaseModel(None, folder="sub")),  # a subfolder of a snapshot is not the repo's model
])
def test_recorded_base(name_or_path, resolved, want):
    assert recorded_base({"base_model": {"name_or_path": name_or_path, "resolved": resolved}}) == want


@pytest.mark.parametrize("name, repo, base", [
    ("me/tiny-run", True, True),
    ("Qwen/Qwen3-0.6B", True, True),
    ("my_org.x/model_v1.5", True, True),  # '_' and '.' in either part, as huggingface_hub allows
    ("gpt2", False, True),  # a legacy model id: a base, but no repo to push to
    ("me/a--b", False, False),
    ("me/a..b", False, False),
    ("me/model.git", False, False),
    ("me/x/y", False, False),
    ("./models/tiny", False, False),
    ("/home/me/models/tiny", False, False),
    ("me/" + "x" * 97, False, False),
])
def test_one_rule_for_hub_ids_for_the_repo_the_base_and_the_recorded_base(name, repo, base):
    """`--repo` takes OWNER/NAME; `--base-model` and the recorded base (`name_or_path` loaded from the cache) also a
    legacy NAME; the same characters and limits for all three (`hub.names`)."""
    assert is_repo_id(name) is repo
    assert is_repo_id(name, legacy=True) is base
    assert (recorded_base({"base_model": {"name_or_path": name, "resolved": None}}).hub_id == name) is base


def test_a_results_file_reached_by_several_paths_is_one_row_of_the_card(tmp_path, hub_env, run_dir):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "results.jsonl").write_text("".join(json.dumps({"id": f"d{i}:t0", "prediction": "x", "em_strict": 1,
                                                           "em_normalized": 1, "em_lenient": 1, "char_f1": 1.0})
                                               + "\n" for i in range(3)), encoding="utf-8")
    (tmp_path / "latest.jsonl").symlink_to(run / "results.jsonl")
    hub_env.chdir(run)  # `cd RUN; hub push . --results results.jsonl`, the file also found in the run folder
    with HubServer(TOKEN) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        result = _push(".", "--repo", "me/one-row", "--results", "results.jsonl", "--results", "./results.jsonl",
                       "--results", tmp_path / "latest.jsonl")
    assert result.exit_code == 0, result.output
    card = hub.files("model", "me/one-row")["README.md"].decode("utf-8")
    rows = [line for line in card.splitlines() if line.startswith("| ") and " | 3 | 1.0000 |" in line]
    assert rows == ["| results.jsonl | 3 | 1.0000 | 1.0000 | 1.0000 | 1.0000 |"], rows
    assert [c["summary"] for c in hub.commits] == ["malmungchi hub push run"]  # the folder `.` names


def test_a_build_goes_up_as_a_dataset_repo_whose_card_loads_the_training_splits(tmp_path, hub_env, real_build,
                                                                                 qwen3_tokenizer_dir):
    with HubServer(TOKEN) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        result = _push(real_build, "--repo", "me/tiny-build")
    assert result.exit_code == 0, result.output
    got = hub.files("dataset", "me/tiny-build")
    local = {p.relative_to(real_build).as_posix() for p in real_build.rglob("*") if p.is_file()}
    assert set(got) == local
    # the card too (same license); the manifest with the tokenizer folder's name for its path
    assert all(got[rel] == (real_build / rel).read_bytes() for rel in local - {"manifest.json"})
    manifest = json.loads((real_build / "manifest.json").read_text())
    assert manifest["config"]["tokenizer"] == manifest["tokenizer"]["source"] == str(qwen3_tokenizer_dir)
    manifest["config"]["tokenizer"] = manifest["tokenizer"]["source"] = qwen3_tokenizer_dir.name
    assert json.loads(got["manifest.json"]) == manifest
    assert str(qwen3_tokenizer_dir).encode() not in got["manifest.json"]
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


@pytest.mark.parametrize("odd", [
    {"build": "x", "hyperparameters": "x", "lora": "x", "vocab": "x", "base_model": "tiny", "added_ids": 7,
     "train_embeddings": [], "init": "x"},
    {"hyperparameters": {"steps": 1, "args": "x"}, "lora": [1], "vocab": None, "build": {"path": 3}},
    {},  # no base model recorded at all
    {"base_model": {"name_or_path": None, "resolved": None}},
])
def test_a_manifest_with_odd_sections_still_gets_a_card_without_a_traceback(tmp_path, run_dir, odd):
    """A hand-edited run manifest whose sections are no JSON objects (or missing): the card says what there is,
    and that no base model is recorded, never `base \`None\``."""
    broken = tmp_path / "odd"
    shutil.copytree(run_dir, broken)
    (broken / "run_manifest.json").write_text(json.dumps(odd), encoding="utf-8")
    result = CliRunner().invoke(main, ["hub", "push", str(broken), "--repo", "me/x", "--dry-run"])
    assert result.exit_code == 0 and result.exception is None, result.output
    assert "base model not recorded (name its Hub id with `hub push --base-model`)" in result.stdout
    assert "None`" not in result.stdout


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
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    for text, why in (("[]", "not the JSON object"), ('{"base_model": ', "cannot read")):
        (broken / "run_manifest.json").write_text(text)
        one_line(_push(broken, "--repo", "me/x"), str(broken / "run_manifest.json"), why)
    (broken / "run_manifest.json").write_text('{"base_model": "tiny", "build": []}')
    assert _push(broken, "--repo", "me/x", "--dry-run").exit_code == 0  # odd fields: a card all the same
    with HubServer("another-token") as hub:  # the server knows another token: 401
        hub_env.setenv("HF_ENDPOINT", hub.url)
        one_line(_push(run_dir, "--repo", "me/tiny-run"), "refused the token", "HTTP 401", "HF_TOKEN")
        assert not hub.repos and not hub.commits
        hub_env.delenv("HF_TOKEN")
        one_line(_push(run_dir, "--repo", "me/tiny-run"), "no Hugging Face token", "HF_TOKEN", "hf auth login")
    hub_env.setenv("HF_TOKEN", TOKEN)
    hub_env.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    one_line(_push(run_dir, "--repo", "me/x", "--base-model", "./models/tiny-base"), "--base-model",
             "not a Hub model id", "OWNER/NAME")
    one_line(_push(run_dir, "--repo", "me/tiny-run"), "cannot reach http://127.0.0.1:9")
    hub_env.setenv("HF_HUB_OFFLINE", "1")
    one_line(_push(run_dir, "--repo", "me/tiny-run"), "HF_HUB_OFFLINE")
