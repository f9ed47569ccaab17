"""Loading what `eval run` evaluates: a plain model folder, or a train-stage run folder via its loader.

Only local folders are accepted (`local_files_only`): an eval that quietly downloads a different model than
the one trained is worse than one that refuses.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from malmungchi.contracts.run import RUN_MANIFEST, RunPaths, is_run_dir
from malmungchi.eval.records import EvalInputError

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    path: Path
    kind: str  # "model" | "run"
    manifest: dict | None = None
    # folders and files whose contents identify the model (for the fingerprint), relative to `path`
    identity_paths: list[Path] = field(default_factory=list)
    dtype: str = ""


def pick_device(device: str) -> str:
    import torch

    if device != "auto":
        if device == "cuda" and not torch.cuda.is_available():
            raise EvalInputError("--device cuda: no CUDA device is available; use --device cpu")
        if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise EvalInputError("--device mps: no Apple GPU (MPS) is available; use --device cpu")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32  # half precision on CPU is slow and changes greedy outputs for nothing
    return getattr(torch, dtype)


def load(path: str | Path, *, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load a run folder (through the train stage's loader) or a plain model folder, tokenizer included."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress goes to stderr; theirs would interleave with it
    p = Path(path)
    if not p.exists():
        raise EvalInputError(f"{p}: no such folder; pass a run folder (`malmungchi train run`) or a model folder")
    if not p.is_dir():
        raise EvalInputError(f"{p}: not a folder; pass a run folder or a model folder (with config.json)")
    if is_run_dir(p):
        return _load_run(p, pick_device(device), dtype)
    if (p / "config.json").is_file():
        return _load_model_dir(p, device, dtype)
    if (p / "adapter_config.json").is_file():
        raise EvalInputError(f"{p}: a bare adapter folder; evaluate its run folder (with {RUN_MANIFEST}) "
                             "or a merged model folder instead")
    raise EvalInputError(f"{p}: neither a run folder ({RUN_MANIFEST}) nor a model folder (config.json)")


def _load_model_dir(path: Path, device: str, dtype: str) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise EvalInputError(f"{path}: cannot load a tokenizer from this folder ({_first_line(err)}); "
                             "save one next to the model with tokenizer.save_pretrained()") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise EvalInputError(f"{path}: cannot load the model ({_first_line(err)})") from None
    model.to(dev)
    model.eval()
    return LoadedModel(model, tokenizer, path, "model", None, [path], str(torch_dtype).removeprefix("torch."))


def _load_run(path: Path, device: str, dtype: str) -> LoadedModel:
    paths = RunPaths(path)
    try:
        manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EvalInputError(f"{paths.manifest}: unreadable ({_first_line(err)})") from None
    try:
        loader = importlib.import_module("malmungchi.train.loader")  # the train stage, only for run folders
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("malmungchi"):
            raise EvalInputError(
                f"{path}: a run folder, but this installation has no train-stage loader "
                "(malmungchi.train.loader); evaluate a merged model folder (RUN_DIR/merged) or update malmungchi"
            ) from None
        raise
    mismatch = getattr(loader, "RunMismatchError", None)
    try:
        options = {} if dtype == "auto" else {"dtype": dtype}
        # the base is placed where --device says at load time (a 4-bit base cannot be moved afterwards)
        model, tokenizer, run_manifest = loader.load_for_inference(path, device_map={"": device}, **options)
    except Exception as err:  # noqa: BLE001 - only the loader's own error is turned into a message
        if mismatch is not None and isinstance(err, mismatch):
            raise EvalInputError(*getattr(err, "lines", None) or [f"{path}: {err}"]) from None
        raise
    model.eval()
    identity = [paths.manifest] + [d for d in (paths.adapter, paths.tokenizer, paths.merged) if d.is_dir()]
    loaded_dtype = str(getattr(model, "dtype", "")).removeprefix("torch.")
    return LoadedModel(model, tokenizer, path, "run", run_manifest or manifest, identity, loaded_dtype)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
