"""`eval export --format lm-eval`: a build's `eval/test.jsonl` as an lm-evaluation-harness task, scored with
malmungchi's own exact-match tiers and char F1 (`eval.normalize`).

Two files go into the output folder: `TASK.yaml` (a `generate_until` task over the gold file, `dataset_path: json`)
and `utils.py` (its `process_results` hook: the tiers of `eval score`, the build's stop token as an end marker). Run
it with `lm_eval --model hf --model_args pretrained=MODEL --tasks TASK --include_path FOLDER`, with malmungchi
importable in that environment.

The prompt is used as the build wrote it, and generation stops where `eval run` stops:

- text mode: the text before a dialogue turn; an answer is one turn, so `until: ["\\n"]`;
- chat mode: the prompt is already the conversation rendered by the build's chat template with the generation
  prompt, so the task is run without `--apply_chat_template` (which would wrap the rendered text in a second
  template), and `until` is the template's end-of-turn token (`<|im_end|>`, `<|eot_id|>`), which lm-eval's stop
  check finds in the raw generated text.

lm-eval's HF model adds the tokenizer's BOS to a prompt that does not already begin with it, as `eval run` does.
"""

from __future__ import annotations

import re
from pathlib import Path

from malmungchi.contracts.build import BuildPaths
from malmungchi.eval.normalize import NORMALIZER_VERSION
from malmungchi.eval.score import METRICS
from malmungchi.hub.card import quoted

LM_EVAL_FILES = ("utils.py",)  # beside TASK.yaml
MAX_GEN_TOKS = 64  # eval run's --max-new-tokens default

UTILS = '''"""The scoring hook of the lm-eval task written by `malmungchi eval export --format lm-eval`: each generated
answer scored against the gold answer(s) with malmungchi's tiers ({metrics}; normalizer version {version})."""

from malmungchi.eval.normalize import Normalizer

END_MARKERS = {end_markers!r}  # the build's stop token: an answer is cut there, as in `eval run`
NORMALIZER = Normalizer(end_markers=END_MARKERS)


def process_results(doc, results):
    """lm-eval's hook: `results[0]` is the generation; returns one value per metric."""
    golds = doc["answer"] if isinstance(doc["answer"], list) else [doc["answer"]]
    return NORMALIZER.score(results[0], golds).tiers()
'''


def task_name(build_dir: str | Path) -> str:
    """`malmungchi_` and the build folder's name, in the letters lm-eval task names use."""
    return "malmungchi_" + (re.sub(r"[^A-Za-z0-9_]+", "_", Path(build_dir).resolve().name).strip("_") or "build")


def task_files(build_dir: str | Path, manifest: dict, task: str) -> dict[str, str]:
    """File name → text of the task for the build at `build_dir` (its manifest read)."""
    gold = BuildPaths(Path(build_dir)).eval_items.resolve()
    chat = manifest.get("mode") == "chat"
    stop = (manifest.get("tokenizer") or {}).get("stop_token")
    until = [stop] if chat and stop else ["\n"]
    lines = [
        f"# lm-evaluation-harness task for {gold} (malmungchi eval export --format lm-eval).",
        f"# lm_eval --model hf --model_args pretrained=MODEL --tasks {task} --include_path THIS_FOLDER",
        ("# chat build: the prompts are already chat-templated; do not pass --apply_chat_template"
         if chat else "# text build: an answer is one dialogue turn, so generation stops at a line break"),
        f"task: {task}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {quoted(str(gold))}",
        "test_split: test",
        "output_type: generate_until",
        "doc_to_text: prompt",
        "doc_to_target: answer",
        "target_delimiter: \"\"",
        "generation_kwargs:",
        f"  until: [{', '.join(quoted(u) for u in until)}]",
        "  do_sample: false",
        f"  max_gen_toks: {MAX_GEN_TOKS}",
        "process_results: !function utils.process_results",
        "metric_list:",
    ]
    for metric in METRICS:
        lines += [f"  - metric: {metric}", "    aggregation: mean", "    higher_is_better: true"]
    lines += ["metadata:", f"  version: {NORMALIZER_VERSION}"]
    utils = UTILS.format(metrics=", ".join(METRICS), version=NORMALIZER_VERSION,
                         end_markers=(stop,) if stop else ())
    return {f"{task}.yaml": "\n".join(lines) + "\n", "utils.py": utils}
