"""One trained policy scored on its build's test items: generation (exact match on the policy's answers, and on
content against the canonical answers), marker fidelity, content bits per character, and what training cost."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from malmungchi.contracts.build import BuildPaths
from malmungchi.contracts.run import RunPaths
from malmungchi.eval.canonical import content_scores, fidelity, spellings

STAGE_FILE = "stage.json"  # (experiment.markers) a stage's fingerprint, written last


def evaluate(run_dir: Path, build_dir: Path, folder: Path, *, max_new_tokens: int, limit: int | None) -> dict:
    from malmungchi.eval.bpc import content_bpc, read_content
    from malmungchi.eval.generate import GenerationSettings
    from malmungchi.eval.load import load
    from malmungchi.eval.records import read_gold
    from malmungchi.eval.run import run_eval

    manifest = json.loads(BuildPaths(build_dir).manifest.read_text(encoding="utf-8"))
    gold_path = BuildPaths(build_dir).eval_items
    gold = read_gold(gold_path)
    canonical = _canonical_answers(gold_path)
    loaded = load(run_dir)
    text_mode = manifest["mode"] == "text"
    settings = GenerationSettings(max_new_tokens=max_new_tokens, stop_strings=("\n",) if text_mode else ())
    outcome = run_eval(loaded, gold, folder / "generations.jsonl", settings, gold_source=gold_path, limit=limit)
    pairs = spellings(manifest["markers"])
    items = {}
    for sc in outcome.scored:
        key = str(sc.gold.id)
        answer = canonical.get(key, sc.gold.answers[0])
        c = content_scores(sc.prediction, answer, pairs, outcome.normalizer)
        items[key] = {"em_normalized": sc.score.em_normalized, "char_f1": sc.score.char_f1, **c}
    fid = fidelity(items.values())
    for it in items.values():
        it["pred_markers"], it["gold_markers"] = dict(it["pred_markers"]), dict(it["gold_markers"])
    bpc = content_bpc(loaded.model, read_content(build_dir)).as_dict()
    metrics = json.loads(RunPaths(run_dir).metrics.read_text(encoding="utf-8"))
    stage = json.loads((run_dir / STAGE_FILE).read_text(encoding="utf-8"))
    test_ids = sorted(items)
    return {
        "summary": outcome.summary.as_dict(),
        "items": items,
        "fidelity": fid,
        "bpc": bpc,
        "test_ids_sha256": hashlib.sha256("\n".join(test_ids).encode()).hexdigest(),
        "cost": {"train_tokens_per_epoch": manifest["splits"]["train"]["tokens"],
                 "trained_tokens": metrics.get("real_tokens"), "tokens_per_s": metrics.get("tokens_per_s"),
                 "train_seconds": metrics.get("train_seconds"), "wall_s": stage.get("wall_s"),
                 "peak_memory_mb": stage.get("peak_memory_mb"), "steps": metrics.get("steps")},
        "loss_curve": [(p["step"], p["loss"]) for p in metrics.get("loss_curve", [])],
        "eval_loss": metrics.get("eval_loss"),
    }


def _canonical_answers(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            if "answer_canonical" in obj:
                out[str(obj["id"])] = obj["answer_canonical"]
    return out
