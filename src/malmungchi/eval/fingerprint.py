"""The `eval run` fingerprint: a hash of everything that decides what the model generates.

A results line is reused on a rerun only when its fingerprint matches, so it must change whenever the
outputs could: the model (config, weights, adapter), the tokenizer files (vocabulary, chat template), the
generation settings and the normalizer version. It must *not* change when nothing relevant did: paths are
recorded relative to the model folder (moving a folder keeps its results), the batch size is left out
(greedy outputs do not depend on it) and so is the results file itself even when it lives inside the folder.

Weights up to `HASH_LIMIT` bytes are hashed; bigger files are identified by size and modification time, which
keeps a rerun over a 16 GB checkpoint instant at the cost of redoing the work after a mere copy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from malmungchi.eval.generate import GenerationSettings
from malmungchi.eval.normalize import NORMALIZER_VERSION

HASH_LIMIT = 256 * 1024 * 1024
# what a model or tokenizer folder holds that can change outputs (not results, logs or checkpoints)
MODEL_SUFFIXES = {".json", ".safetensors", ".bin", ".pt", ".pth", ".model", ".txt", ".jinja", ".tiktoken", ".gguf",
                  ".py"}
_VOLATILE_CONFIG_KEYS = {"_name_or_path", "transformers_version"}


def file_identity(path: Path) -> str:
    st = path.stat()
    if st.st_size > HASH_LIMIT:
        return f"size={st.st_size};mtime_ns={st.st_mtime_ns}"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256=" + h.hexdigest()


def files_identity(roots: Iterable[Path], base: Path, exclude: Iterable[Path] = ()) -> dict[str, str]:
    """Relative path → identity for the model files under `roots` (a folder: its files, recursively for
    run-folder subfolders; a file: itself)."""
    skip = {p.resolve() for p in exclude}
    out: dict[str, str] = {}
    for root in roots:
        if root.is_file():
            candidates = [root]
        elif root == base:  # a plain model folder: its own files only, not whatever sits in subfolders
            candidates = sorted(p for p in root.iterdir() if p.is_file())
        else:
            candidates = sorted(p for p in root.rglob("*") if p.is_file())
        for p in candidates:
            if p.name.startswith(".") or p.suffix not in MODEL_SUFFIXES or p.resolve() in skip:
                continue
            out[p.relative_to(base).as_posix()] = file_identity(p)
    return out


def model_config_identity(model) -> dict:
    config = getattr(model, "config", None)
    if config is None:
        return {}
    data = config.to_dict()
    return {k: v for k, v in sorted(data.items()) if k not in _VOLATILE_CONFIG_KEYS}


def fingerprint(*, files: dict[str, str], config: dict, dtype: str, settings: GenerationSettings,
                stop_ids: Sequence[int]) -> str:
    payload = {
        "normalizer": NORMALIZER_VERSION,
        "files": files,
        "config": config,
        "dtype": dtype,
        "generation": settings.identity(),
        "stop_ids": sorted(stop_ids),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# what a server's `/models` entry may hold that identifies the weights behind a name ("created" is a timestamp of
# the server's start, not of the model)
_SERVED_MODEL_KEYS = ("id", "root", "parent", "max_model_len", "owned_by")


def served_fingerprint(*, model: str, model_info: dict, settings: GenerationSettings, request: dict) -> str:
    """The fingerprint of `eval run --backend openai`: the served model's name and what the server says about it,
    the sampling settings and the fixed request fields (e.g. `skip_special_tokens`). The base URL is left out
    (the same model served on another port keeps its results); each item's request is hashed on its own line
    (`input_sha`), so adding gold items redoes only those."""
    payload = {
        "normalizer": NORMALIZER_VERSION,
        "backend": "openai",
        "model": model,
        "server_model": {k: model_info[k] for k in _SERVED_MODEL_KEYS if k in model_info},
        "generation": settings.identity(),
        "request": request,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def with_sample(fingerprint: str, sample) -> str:
    """The fingerprint of a run on a `--sample` (an `eval.sample.Sample`): the backend's fingerprint and the sample
    drawn (size, seed, stratify field, hash of its ids), so a results file says which sample it holds and a rerun
    with another sample into the same file starts it afresh. Without a sample, the backend's fingerprint as is."""
    if sample is None:
        return fingerprint
    blob = json.dumps({"run": fingerprint, "sample": sample.identity()}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
