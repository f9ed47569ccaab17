"""`malmungchi hub push RUN_OR_BUILD --repo OWNER/NAME`: what goes up (`plan_push`) and sending it (`push`).

A run goes up as a model repo: its adapter folder (adapter weights, adapter_config.json, the tokenizer saved beside
it), or with `merged` its `merged/` model folder, plus `run_manifest.json`, `metrics.json`, the build's manifest as
`build_manifest.json` (where the build is still there) and a generated card. A build goes up as a dataset repo:
every file of the build directory, its card regenerated with the license given. Everything is one commit
(`HfApi.create_commit`), after `create_repo(exist_ok=True)`.

The base model the card and the pushed adapter_config.json name is the one the run manifest records
(`card.recorded_base`: a Hub id, or a Hub-cache folder's id and commit), or `--base-model` (a Hub id) for a run
trained from any other local folder, whose path never goes into the card.

No path of the machine goes up: the pushed `run_manifest.json` is a copy (the file on disk stays as it is) in which
the fields that hold paths (`RUN_MANIFEST_PATHS`), when absolute local paths (`/…`, `~/…`, `C:\\…`, `\\…`), are
rewritten (`portable_path`) — relative to the run directory when they lie inside it (`checkpoints/checkpoint-40`),
from `models--…` on when they lie in the Hub cache (the id and commit stay readable), else to their last part (the
build folder's or the base model folder's name; the build's content hash and the base's config hash identify
them). Relative paths and every other value are kept — marker descriptions and other text of the user's may well
start with `/` — and a manifest with no absolute path there goes up byte for byte. The same goes for the build
manifest's tokenizer paths (`BUILD_MANIFEST_PATHS`: in `build_manifest.json`, and in a build's `manifest.json`) and
for adapter_config.json's `base_model_name_or_path` when the base has no Hub id.

The token is `HF_TOKEN` or the saved login (`huggingface_hub.get_token`); it is passed to `HfApi` and written
nowhere. The endpoint is `HF_ENDPOINT` read at push time (huggingface_hub reads it once, at import). Telemetry
stays off, as everywhere in malmungchi.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterator

from malmungchi.contracts.build import BUILD_MANIFEST, BuildPaths, is_build_dir
from malmungchi.contracts.run import RunPaths, is_run_dir
from malmungchi.errors import UserError
from malmungchi.hub import card as cards, names

DEFAULT_ENDPOINT = "https://huggingface.co"
# Where the manifests hold paths of the machine, as key paths: only these are rewritten; every other string is a
# setting, a name or text of the user's (titles, reasons, marker descriptions), which may well start with `/`.
BUILD_MANIFEST_PATHS = (("config", "tokenizer"), ("tokenizer", "source"))  # prep.write: the tokenizer, as given
RUN_MANIFEST_PATHS = (  # train.runner.run_manifest: the build, the base as given and resolved, the resumed checkpoint
    ("build", "path"), ("base_model", "name_or_path"), ("base_model", "resolved"), ("resumed_from",),
    # and the [train.args] (recorded as given) that transformers reads as paths
    *(("hyperparameters", "args", key) for key in ("logging_dir", "deepspeed", "fsdp_config", "accelerator_config")),
)


class HubError(UserError):
    """A push that cannot be made or was refused: one line naming the repo or the file and what to do."""


@dataclass
class Upload:
    """What one push sends: (path in the repo, bytes or a local file) in repo order, and the card among them."""

    repo_id: str
    repo_type: str  # "model" | "dataset"
    source: Path
    files: list[tuple[str, bytes | Path]] = field(default_factory=list)

    def size(self, item: bytes | Path) -> int:
        return len(item) if isinstance(item, bytes) else item.stat().st_size

    @property
    def card(self) -> str:
        for path, item in self.files:
            if path == cards.CARD_NAME:
                return item.decode("utf-8") if isinstance(item, bytes) else item.read_text(encoding="utf-8")
        return ""

    @property
    def total_bytes(self) -> int:
        return sum(self.size(item) for _, item in self.files)


def check_repo_id(repo_id: str) -> str:
    """OWNER/NAME as the Hub accepts it, else a HubError line."""
    if not names.is_repo_id(repo_id):
        raise HubError(f"--repo {repo_id!r}: not a Hub repo name; use OWNER/NAME (letters, digits, '-', '_', '.'; "
                       "no '--' or '..', at most 96 characters each)")
    return repo_id


def _folder_files(root: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """The plain files under `root` (hidden ones and temporaries left out), as (path in repo, file), sorted."""
    out = []
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root)
        if f.is_file() and not any(part.startswith(".") for part in rel.parts):
            out.append((prefix + rel.as_posix(), f))
    return out


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HubError(f"{path}: cannot read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from None
    if not isinstance(data, dict):
        raise HubError(f"{path}: not the JSON object malmungchi and peft write; write it again (`train run`, "
                       "`corpus build`) or restore it")
    return data


def _is_local_path(text: str) -> bool:
    """True for an absolute path of this machine or another one: POSIX, `~/`, and on Windows a drive (`C:\\…`), a
    share (`\\\\server\\…`), a path rooted without a drive (`\\Users\\…`) or `~\\`."""
    return "\n" not in text and text.strip("/\\") != "" and (
        PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()
        or text.startswith(("~/", "\\", "~\\")))


def relative_inside(path: str, base: str, ospath=os.path) -> str | None:
    """`path` relative to `base`, spelled with `/`, when it is `base` or lies inside it, else None. Compared as the
    platform (`ospath`: `os.path`, or `ntpath`/`posixpath`) compares paths: case-insensitively on Windows,
    exactly on POSIX."""
    path, base = ospath.normpath(path), ospath.normpath(base)
    folded, folded_base = ospath.normcase(path), ospath.normcase(base)
    if folded != folded_base and not folded.startswith(folded_base.rstrip(ospath.sep) + ospath.sep):
        return None
    return ospath.relpath(path, base).replace(ospath.sep, "/")


def portable_path(text: str, root: Path) -> str:
    """`text` as the pushed manifest spells it (module docstring): an absolute path relative to `root` when inside
    it, from `models--` on inside the Hub cache, else its last part; anything else unchanged."""
    if not _is_local_path(text):
        return text
    for base in (root.absolute(), root.resolve()):
        inside = relative_inside(os.path.expanduser(text), str(base))
        if inside is not None:
            return inside
    return names.cache_part(text) or names.last_part(text)


def _with_portable_paths(data: dict, fields: tuple[tuple[str, ...], ...], root: Path) -> dict:
    """A copy of `data` with the string at each key path of `fields` (where there is one) spelled by
    `portable_path`."""
    portable = json.loads(json.dumps(data))
    for *parents, key in fields:
        holder = portable
        for name in parents:
            holder = holder.get(name) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and isinstance(holder.get(key), str):
            holder[key] = portable_path(holder[key], root)
    return portable


def _as_pushed(path: Path, data: dict, portable: dict) -> bytes | Path:
    """The file itself when `portable` is the `data` read from it, else `portable` in the layout malmungchi writes
    (indent 2, keys in the file's order, UTF-8)."""
    if portable == data:
        return path
    return (json.dumps(portable, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _portable_run_manifest(data: dict, path: Path, root: Path) -> bytes | Path:
    """The run manifest with its path fields rewritten (`RUN_MANIFEST_PATHS`), those alone."""
    return _as_pushed(path, data, _with_portable_paths(data, RUN_MANIFEST_PATHS, root))


def _portable_build_manifest(data: dict, path: Path) -> bytes | Path:
    """A build manifest with its path fields rewritten (`BUILD_MANIFEST_PATHS`), those alone: titles, reasons and
    prompts in it are the corpus's own text."""
    return _as_pushed(path, data, _with_portable_paths(data, BUILD_MANIFEST_PATHS, path.parent))


def plan_push(source: str | Path, repo_id: str, *, merged: bool = False, license: str = cards.DEFAULT_LICENSE,
              base_model: str | None = None, results: list[Path] | tuple[Path, ...] = ()) -> Upload:
    """The files and card of a push of the run or build at `source`, read from disk; nothing is sent."""
    src = Path(source)
    check_repo_id(repo_id)
    if not src.is_dir():
        raise HubError(f"{src}: no such folder; pass a run directory (`train run --out`) or a build directory")
    if is_run_dir(src):
        return _plan_run(src, repo_id, merged=merged, license=license, base_model=base_model, results=results)
    if is_build_dir(src):
        if merged or results or base_model:
            raise HubError(f"{src}: a build directory; --merged, --results and --base-model are for runs")
        return _plan_build(src, repo_id, license=license)
    raise HubError(f"{src}: neither a run directory (run_manifest.json) nor a build directory ({BUILD_MANIFEST})")


def _plan_build(src: Path, repo_id: str, *, license: str) -> Upload:
    paths = BuildPaths(src)
    manifest = _read_json(paths.manifest)
    upload = Upload(repo_id, "dataset", src)
    upload.files = [(rel, _portable_build_manifest(manifest, f) if rel == BUILD_MANIFEST else f)
                    for rel, f in _folder_files(src) if rel != cards.CARD_NAME]
    upload.files.append((cards.CARD_NAME, cards.dataset_card(manifest, license=license).encode("utf-8")))
    return upload


def _plan_run(src: Path, repo_id: str, *, merged: bool, license: str, base_model: str | None,
              results) -> Upload:
    paths = RunPaths(src)
    manifest = _read_json(paths.manifest)
    build_manifest = None
    build = cards.section(manifest, "build")
    build_path = Path(build["path"] if isinstance(build.get("path"), str) else "")
    if build_path.name and BuildPaths(build_path).manifest.is_file():
        candidate = _read_json(BuildPaths(build_path).manifest)
        if candidate.get("content_hash") == build.get("content_hash"):
            build_manifest = candidate
    upload = Upload(repo_id, "model", src)
    folder = paths.merged if merged else paths.adapter
    if not folder.is_dir():
        raise HubError(f"{folder}: missing" + (" (write it with `malmungchi train merge "
                                               f"{src} --out {paths.merged}`)" if merged else ""))
    base = _base_model(manifest, base_model)
    for rel, f in _folder_files(folder):
        if rel == cards.CARD_NAME:  # peft's template card; ours replaces it
            continue
        upload.files.append((rel, _adapter_config(f, base, src) if rel == "adapter_config.json" else f))
    upload.files.append(("run_manifest.json", _portable_run_manifest(manifest, paths.manifest, src)))
    if paths.metrics.is_file():
        upload.files.append(("metrics.json", paths.metrics))
    plot = paths.loss_plot.name if paths.loss_plot.is_file() else None
    if plot:
        upload.files.append((plot, paths.loss_plot))
    if build_manifest is not None:
        upload.files.append(("build_manifest.json", _portable_build_manifest(build_manifest,
                                                                             BuildPaths(build_path).manifest)))
    text = cards.model_card(manifest, build_manifest, repo_id=repo_id, merged=merged, license=license,
                            base=base, results=_results(src, results), loss_plot=plot)
    upload.files.append((cards.CARD_NAME, text.encode("utf-8")))
    return upload


def _adapter_config(path: Path, base: cards.BaseModel, src: Path) -> bytes | Path:
    """The adapter_config.json that goes up: the base's Hub id (and its commit as the `revision` peft loads the base
    at; a revision the file holds for another model is dropped), since the recorded base is often a local folder;
    for a base without one, the folder's name, not its path. Written as peft writes it, the file itself when
    nothing changes."""
    config = _read_json(path)
    recorded = config.get("base_model_name_or_path")
    pushed = dict(config)
    if base.hub_id:
        pushed["base_model_name_or_path"] = base.hub_id
        if recorded != base.hub_id or base.revision:  # the file's revision is that of the model it names
            pushed["revision"] = base.revision
    elif isinstance(recorded, str):
        pushed["base_model_name_or_path"] = portable_path(recorded, src)
    if pushed == config:
        return path
    return json.dumps(pushed, indent=2, sort_keys=True).encode("utf-8")  # PeftConfig.save_pretrained's layout


def _results(src: Path, given) -> list[cards.EvalSummary]:
    """The summaries of the `--results` files, then of the results files written into the run folder (`*.jsonl`
    that are not results are skipped there), each file once however many paths reach it."""
    summaries, seen = [], set()
    for path, explicit in [(Path(p), True) for p in given] + [(p, False) for p in sorted(src.glob("*.jsonl"))]:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        summary = cards.read_results(path)
        if summary is None and explicit:
            raise HubError(f"--results {path}: not an `eval run`/`eval score` results file (one JSON line per item "
                           f"with {', '.join(cards.METRICS)})")
        if summary is not None:
            summaries.append(summary)
    return summaries


def _base_model(manifest: dict, given: str | None) -> cards.BaseModel:
    """The base model the card and adapter_config.json name: `--base-model` when given (a Hub id; the recorded
    revision only when it is the recorded id), else the one the run manifest records."""
    recorded = cards.recorded_base(manifest)
    if given is None:
        return recorded
    if not names.is_repo_id(given, legacy=True):
        raise HubError(f"--base-model {given!r}: not a Hub model id; give the id the base model has on the Hub, "
                       "OWNER/NAME (a local folder cannot be named in the card)")
    return cards.BaseModel(given, recorded.revision if given == recorded.hub_id else None, recorded.folder)


# --- sending --------------------------------------------------------------------------------------------------------

def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def find_token() -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or log in once with `hf auth login` (a token with "
                       "write access)")
    return token


@contextlib.contextmanager
def _online(url: str) -> Iterator[None]:
    """huggingface_hub's flags read at import (offline mode, endpoint) set for this push, and put back after;
    telemetry off for good, as `train run` leaves it."""
    from huggingface_hub import constants

    from malmungchi.train.runner import no_hub_telemetry

    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        raise HubError("HF_HUB_OFFLINE is set: unset it for `malmungchi hub push` (the one command that goes online)")
    no_hub_telemetry()
    saved = constants.HF_HUB_OFFLINE, constants.ENDPOINT
    constants.HF_HUB_OFFLINE, constants.ENDPOINT = False, url
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, constants.ENDPOINT = saved


def push(upload: Upload, *, private: bool = False, token: str | None = None,
         message: str | None = None) -> str:
    """Create the repo (if new) and commit every file in one commit; the commit's URL."""
    from httpx2 import TransportError  # huggingface_hub's HTTP client
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    token = token or find_token()
    url = endpoint()
    api = HfApi(endpoint=url, token=token, library_name="malmungchi")
    what = f"{upload.repo_type} repo {upload.repo_id}"
    ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=item if isinstance(item, bytes) else str(item))
           for rel, item in upload.files]
    with _online(url):
        try:
            api.create_repo(upload.repo_id, repo_type=upload.repo_type, private=private, exist_ok=True)
            info = api.create_commit(upload.repo_id, operations=ops, repo_type=upload.repo_type,
                                     commit_message=message or f"malmungchi hub push {upload.source.resolve().name}")
        except HfHubHTTPError as err:
            raise HubError(_refused_line(err, url, what)) from None
        except (OSError, TransportError) as err:  # connection refused, DNS, TLS, timeouts
            raise HubError(f"cannot reach {url} to push the {what}: {_first(err)}") from None
        except ValueError as err:  # huggingface_hub's own validation (repo id, README metadata)
            raise HubError(f"{what}: {_first(err)}") from None
    return str(getattr(info, "commit_url", "") or f"{url}/{upload.repo_id}")


def _first(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _refused_line(err, url: str, what: str) -> str:
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status in (401, 403):
        return (f"{url} refused the token for the {what} (HTTP {status}): check that HF_TOKEN (or the saved login) "
                "is valid and has write access to that namespace")
    if status == 404:
        return f"{url}: the {what} was not found (HTTP 404) and could not be created"
    return f"{url} refused the push to the {what} (HTTP {status}): {_first(err)}"
