"""`malmungchi eval export --format lm-eval`: the task YAML and its scoring hook load and score with malmungchi's
tiers (always run, by importing utils.py directly); lm-eval itself runs the task on a tiny model when installed."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml
from click.testing import CliRunner

from malmungchi.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


class _TaskLoader(yaml.SafeLoader):
    """YAML as lm-eval reads it: `!function module.name` names the hook."""


_TaskLoader.add_constructor("!function", lambda loader, node: ("!function", loader.construct_scalar(node)))


@pytest.fixture(scope="module")
def builds(tmp_path_factory, sample_dir, qwen3_tokenizer_dir):
    out = {}
    for mode in ("text", "chat"):
        b = tmp_path_factory.mktemp(mode) / f"sample-{mode}"
        r = run("corpus", "build", sample_dir, "--tokenizer", qwen3_tokenizer_dir, "--mode", mode, "--max-length",
                512, "--out", b)
        assert r.exit_code == 0, r.output
        out[mode] = b
    return out


def _utils(folder):
    spec = importlib.util.spec_from_file_location("lmeval_utils_under_test", folder / "utils.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("mode", ["text", "chat"])
def test_task_yaml_and_hook(mode, builds, tmp_path):
    build = builds[mode]
    r = run("eval", "export", build, "--format", "lm-eval", "--out", tmp_path / "task")
    assert r.exit_code == 0, r.output
    task = f"malmungchi_sample_{mode}"
    cfg = yaml.load((tmp_path / "task" / f"{task}.yaml").read_text(encoding="utf-8"), Loader=_TaskLoader)
    assert cfg["task"] == task and cfg["output_type"] == "generate_until" and cfg["dataset_path"] == "json"
    assert cfg["dataset_kwargs"]["data_files"]["test"] == str((build / "eval" / "test.jsonl").resolve())
    assert (cfg["doc_to_text"], cfg["doc_to_target"], cfg["test_split"]) == ("prompt", "answer", "test")
    assert cfg["process_results"] == ("!function", "utils.process_results")
    assert [m["metric"] for m in cfg["metric_list"]] == ["em_strict", "em_normalized", "em_lenient", "char_f1"]
    stop = json.loads((build / "manifest.json").read_text())["tokenizer"]["stop_token"]
    assert cfg["generation_kwargs"]["until"] == (["\n"] if mode == "text" else [stop])
    assert stop and stop != "\n"

    hook = _utils(tmp_path / "task")
    doc = json.loads((build / "eval" / "test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    answer = doc["answer"]
    assert hook.process_results(doc, [answer]) == {"em_strict": 1, "em_normalized": 1, "em_lenient": 1,
                                                   "char_f1": 1.0}
    cut = hook.process_results(doc, [f" {answer}{stop}더 쓴 글"])  # cut at the stop token, then trimmed
    assert cut["em_strict"] == 1
    spaced = hook.process_results(doc, ["  ".join(answer.split(" ")) + "\u200b"])  # doubled spaces, zero width
    assert spaced["em_strict"] == (0 if " " in answer else spaced["em_strict"]) and spaced["em_normalized"] == 1
    wrong = hook.process_results(doc, ["전혀 다른 대답"])
    assert wrong["em_normalized"] == 0 and wrong["char_f1"] < 1

    r = CliRunner().invoke(main, ["eval", "export", str(build), "--out", str(tmp_path / "task")])
    assert r.exit_code == 2 and "already exists" in r.output and "--force" in r.output


def test_lm_eval_runs_the_task(builds, tmp_path):
    """lm-eval's own CLI path (simple_evaluate, the hf model, the task loaded from --include_path) on a tiny
    random model: every item generated, scored by the hook, and the means are malmungchi's scoring of the same
    generations."""
    pytest.importorskip("lm_eval")
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from train_helpers import make_model
    from malmungchi.eval.normalize import Normalizer

    build = builds["text"]
    r = run("eval", "export", build, "--out", tmp_path / "task", "--task", "mm_text")
    assert r.exit_code == 0, r.output
    model = make_model(tmp_path / "model", build / "tokenizer")
    out = simple_evaluate(model="hf", model_args={"pretrained": str(model), "tokenizer": str(build / "tokenizer"),
                                                  "dtype": "float32", "max_length": 512},
                          tasks=["mm_text"], task_manager=TaskManager(include_path=str(tmp_path / "task")),
                          limit=3, log_samples=True, device="cpu", batch_size=1,
                          gen_kwargs={"max_gen_toks": 8})
    samples = out["samples"]["mm_text"]
    assert len(samples) == 3
    stop = json.loads((build / "manifest.json").read_text())["tokenizer"]["stop_token"]
    normalizer = Normalizer(end_markers=(stop,))
    mine = [normalizer.score(s["filtered_resps"][0], [s["doc"]["answer"]]) for s in samples]
    res = out["results"]["mm_text"]
    for metric in ("em_strict", "em_normalized", "em_lenient", "char_f1"):
        assert res[f"{metric},none"] == pytest.approx(sum(getattr(m, metric) for m in mine) / 3)
