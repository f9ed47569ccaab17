"""Loading a trained run for inference (what `malmungchi eval` calls).

`load_for_inference(RUN_DIR)` rebuilds the base model exactly as training saw it (same rows, the new rows
initialised the same way), attaches the adapter and returns `(model, tokenizer, run_manifest)`. Anything that
does not match raises `RunMismatchError` naming what differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from malmungchi.contracts.build import NewToken
from malmungchi.contracts.run import RunPaths
from malmungchi.train import modeling
from malmungchi.train.checkpoints import check_adapter
from malmungchi.train.errors import RunMismatchError, TrainError

__all__ = ["load_for_inference", "RunMismatchError"]


def _read_manifest(run: Path) -> dict[str, Any]:
    path = RunPaths(run).manifest
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunMismatchError(f"{path}: missing (is {run} a run directory? run `malmungchi train run`)") from None
    except (OSError, ValueError) as exc:
        raise RunMismatchError(f"{path}: cannot read: {exc}") from None


def load_for_inference(run_dir: str | Path, *, base_model: str | None = None, quant: str | None = None,
                       dtype: str | None = None, device_map: Any = None, merged: bool = False):
    """Rebuild the run's base model, attach its adapter (or load `merged/` with merged=True).

    base_model: another path/id for the same base model (default: the one recorded in the manifest).
    quant: "4bit" | "8bit" | "none" (default: the quantization the run trained with).
    dtype: "float32" | "bfloat16" | "float16" | "auto" (default: the run's dtype).
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from malmungchi.quiet import quiet_library_warnings

    quiet_library_warnings()  # peft's adapter load asks transformers a deprecated property
    run = Path(run_dir)
    if not run.is_dir():
        raise RunMismatchError(f"{run}: no such run directory")
    paths = RunPaths(run)
    manifest = _read_manifest(run)
    tokenizer = AutoTokenizer.from_pretrained(str(paths.tokenizer))
    vocab = manifest["vocab"]
    if len(tokenizer) != vocab["vocab_after"]:
        raise RunMismatchError(f"{paths.tokenizer}: {len(tokenizer)} tokens, the run was trained with "
                               f"{vocab['vocab_after']}")
    torch_dtype = modeling.resolve_dtype(dtype or manifest.get("dtype", "auto"))
    if merged:
        if not paths.merged.is_dir():
            raise RunMismatchError(f"{paths.merged}: missing (train with --merge)")
        model = AutoModelForCausalLM.from_pretrained(str(paths.merged), dtype=torch_dtype, local_files_only=True,
                                                     device_map=device_map)
        model.eval()
        return model, tokenizer, manifest

    base = manifest["base_model"]
    name = base_model or base.get("resolved") or base["name_or_path"]
    if base_model is None and base.get("resolved") and not Path(base["resolved"]).is_dir():
        name = base["name_or_path"]
    trust = bool(base.get("trust_remote_code", False))
    try:
        config = modeling.load_model_config(name, trust)
    except TrainError as err:
        raise RunMismatchError(*err.lines) from None
    fp = modeling.model_fingerprint(name, config)
    if fp["config_sha256"] != base["config_sha256"]:
        raise RunMismatchError(f"base model {name}: its config differs from the one the run was trained on "
                               f"({base['name_or_path']})")
    if base.get("weight_files") and fp["weight_files"] and fp["weight_files"] != base["weight_files"]:
        raise RunMismatchError(f"base model {name}: its weight files differ from the ones the run was trained on "
                               f"({base['weight_files']} vs {fp['weight_files']})")
    check_adapter(paths.adapter)  # before the base model is loaded: a broken adapter is found in a second
    q = quant or manifest.get("quantization", "none")
    if q != "none" and modeling.bitsandbytes_problem():
        q = "none"
    try:
        model = modeling.load_base_model(name, quant=q, dtype=torch_dtype,
                                         attn_implementation=manifest.get("attn_implementation"),
                                         trust_remote_code=trust,
                                         device_map=device_map if device_map is not None
                                         else modeling.default_device_map(q))
    except TrainError as err:
        raise RunMismatchError(*err.lines) from None
    problem = modeling.quantized_shape_problem(model)
    if problem:
        raise RunMismatchError(f"base model {name}: {problem}; this run cannot be loaded in 4 bits, retrain it "
                               "with --quant none")
    rows = model.get_input_embeddings().weight.shape[0]
    if rows != vocab["rows_before"]:
        raise RunMismatchError(f"base model {name}: {rows} embedding rows, the run's base had {vocab['rows_before']}")
    tied = modeling.is_tied(model)
    if tied != vocab["tied"]:
        raise RunMismatchError(f"base model {name}: output head {'tied' if tied else 'untied'}, the run's was "
                               f"{'tied' if vocab['tied'] else 'untied'}")
    plan = modeling.VocabPlan(**vocab)
    inits = manifest["init"]["tokens"]
    new_tokens = [NewToken(token=i["token"], id=i["id"], description=i.get("description", "")) for i in inits]
    redone = modeling.resize_and_init(model, plan, new_tokens, tokenizer)
    for before, now in zip(inits, redone):
        if before["method"] != now.method or before["from_ids"] != now.from_ids:
            raise RunMismatchError(f"new token {before['token']}: initialised from {now.from_ids or 'all rows'} now, "
                                   f"from {before['from_ids'] or 'all rows'} in training (tokenizer differs?)")
        head = before.get("head") or []
        close = all(abs(a - b) <= 1e-4 + 1e-2 * abs(b) for a, b in zip(now.head, head))
        if not close or abs(now.norm - before.get("norm", now.norm)) > 1e-2 * max(1e-3, before.get("norm", 0)):
            raise RunMismatchError(f"new token {before['token']}: its initial row differs from training "
                                   f"(norm {now.norm:.4f} vs {before.get('norm', 0):.4f}): base weights differ?")
    model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    adapter = paths.adapter
    try:
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise RunMismatchError(f"{adapter}: does not fit the rebuilt base model: {str(exc).splitlines()[0]}") from None
    model.eval()
    return model, tokenizer, manifest
