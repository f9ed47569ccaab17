"""Cards (`README.md` with YAML front matter) for what malmungchi writes: a build's dataset card and a run's model
card. Pure functions of the manifests (and results files), no clock, no paths of the machine: the same inputs give
the same bytes, so a rebuild stays byte-identical (`corpus build` writes the dataset card into every build).

The dataset card's `configs:` entry is what makes `datasets.load_dataset(BUILD_DIR)` (or the pushed repo) load the
three training splits; without it `datasets` infers the splits from file names and loads `eval/test.jsonl` alone,
as a "test" split.

YAML is written by hand, every string as a JSON string (a valid YAML double-quoted scalar), so no YAML library
decides the layout and the bytes cannot drift with its version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malmungchi.contracts.build import BUILD_CARD, SPLITS
from malmungchi.hub import names

CARD_NAME = BUILD_CARD  # a pushed repo's card has the same name
DEFAULT_LICENSE = "unknown"  # a value the Hub accepts; `hub push --license` states the real one
METRICS = ("em_strict", "em_normalized", "em_lenient", "char_f1")


def quoted(value: Any) -> str:
    """`value` as JSON text, non-ASCII kept: for a string a YAML double-quoted scalar (also a Python string literal,
    as the usage snippets use it). Every hand-written YAML file of malmungchi quotes through here."""
    return json.dumps(value, ensure_ascii=False)


def section(manifest: Any, key: str) -> dict[str, Any]:
    """`manifest[key]` when that is a JSON object, else {} (missing, null, or a hand-edited file's odd value): a
    card says what the manifest holds and leaves out what it does not."""
    value = manifest.get(key) if isinstance(manifest, dict) else None
    return value if isinstance(value, dict) else {}


def front_matter(fields: Sequence[tuple[str, Any]]) -> str:
    """YAML front matter for a card: scalars, lists of scalars, and the `configs` list of mappings."""
    lines = ["---"]
    for key, value in fields:
        if value is None:
            continue
        if key == "configs":
            lines.append("configs:")
            for config in value:
                lines.append(f"- config_name: {quoted(config['config_name'])}")
                lines.append("  data_files:")
                for entry in config["data_files"]:
                    lines.append(f"  - split: {quoted(entry['split'])}")
                    lines.append(f"    path: {quoted(entry['path'])}")
        elif isinstance(value, (list, tuple)):
            lines.append(f"{key}:")
            lines.extend(f"- {quoted(v)}" for v in value)
        else:
            lines.append(f"{key}: {quoted(value)}")
    lines.append("---")
    return "\n".join(lines) + "\n"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out


def marker_rows(markers: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(marker, policy, token, id) per marker of a build manifest, in name order."""
    rows = []
    for name in sorted(markers or {}):
        m = section(markers, name)
        rows.append((f"`|{name}|>`", m.get("policy", ""), f"`{m['token']}`" if m.get("token") else "—",
                     str(m["id"]) if m.get("id") is not None else "—"))
    return rows


# --- the build's dataset card ---------------------------------------------------------------------------------------

def dataset_card(manifest: dict[str, Any], *, license: str = DEFAULT_LICENSE, pretty_name: str | None = None) -> str:
    """The dataset card of a build, from its manifest."""
    splits = section(manifest, "splits")
    tok = section(manifest, "tokenizer")
    fields = [
        ("language", ["ko"]),
        ("license", license),
        ("pretty_name", pretty_name),
        ("tags", ["malmungchi", "korean", "tokenized", "packed"]),
        ("configs", [{"config_name": "default",
                      "data_files": [{"split": s, "path": f"data/{s}.parquet"} for s in SPLITS]}]),
    ]
    body = [
        f"# {pretty_name or 'malmungchi build'}",
        "",
        "Tokenized, packed training rows made by [malmungchi](https://github.com/malmungchi/malmungchi) "
        f"`corpus build` (schema {manifest.get('schema_version')}, malmungchi {manifest.get('malmungchi_version')}, "
        f"{manifest.get('mode', 'text')} mode) from hand-marked Korean text. Content hash "
        f"`{manifest.get('content_hash')}`.",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        "ds = load_dataset(\"BUILD_DIR_OR_REPO\")  # train, validation, test: packed rows",
        "```",
        "",
        "Each row is `input_ids` (no padding), `assistant_masks` (1 where the loss applies), `position_ids` "
        "(restarting at 0 at each packed sequence), `seq_lengths` and `doc_ids`. Decode with the tokenizer in "
        "`tokenizer/`. `eval/test.jsonl` holds the exact-match items of the test split.",
        "",
        "## Splits",
        "",
        *_table(["split", "rows", "sequences", "tokens", "documents"],
                [(s, *(section(splits, s).get(k, 0) for k in ("rows", "sequences", "tokens", "documents")))
                 for s in SPLITS]),
        "",
        "## Markers",
        "",
        f"Tokenizer `{tok.get('class', '')}`: {tok.get('vocab_before')} → {tok.get('vocab_after')} tokens.",
        "",
        *_table(["marker", "policy", "token", "id"], marker_rows(section(manifest, "markers"))),
        "",
    ]
    return front_matter(fields) + "\n" + "\n".join(body)


# --- a run's model card ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalSummary:
    name: str  # the results file's name
    items: int
    means: dict[str, float]


def read_results(path: Path) -> EvalSummary | None:
    """The means of an `eval run`/`eval score` results file, or None when `path` is not one (judge verdicts,
    something else)."""
    sums = dict.fromkeys(METRICS, 0.0)
    n = 0
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or not all(k in row for k in METRICS):
                    return None
                for k in METRICS:
                    sums[k] += float(row[k] or 0)
                n += 1
    except (OSError, ValueError, TypeError):
        return None
    if not n:
        return None
    return EvalSummary(path.name, n, {k: sums[k] / n for k in METRICS})


@dataclass(frozen=True)
class BaseModel:
    """A run's base model as a card names it: its Hub id (None for a local folder nobody else can load), the
    commit it was trained on where the run recorded one, and a local folder's name (never its path)."""

    hub_id: str | None
    revision: str | None = None
    folder: str | None = None


def recorded_base(run_manifest: dict[str, Any]) -> BaseModel:
    """The base model the run was trained on, from its manifest alone (not from what exists where the push runs).

    `train run` records `name_or_path` as given and `resolved`, the folder's absolute path when that was a local
    folder, None when it was a Hub id (loaded from the cache). A folder of the Hub cache
    (`models--OWNER--NAME/snapshots/COMMIT`) is that id at that commit; any other folder has no Hub id, however
    its name looks."""
    base = section(run_manifest, "base_model")
    name, resolved = base.get("name_or_path"), base.get("resolved")
    if isinstance(resolved, str) and resolved:
        cached = names.snapshot(resolved)
        if cached:
            return BaseModel(*cached)
        return BaseModel(None, folder=names.last_part(resolved))
    if "resolved" in base and names.is_repo_id(name, legacy=True):
        return BaseModel(name)
    return BaseModel(None, folder=names.last_part(name) if isinstance(name, str) and name else None)


def model_card(run_manifest: dict[str, Any], build_manifest: dict[str, Any] | None, *, repo_id: str,
               merged: bool, license: str = DEFAULT_LICENSE, base: BaseModel | None = None,
               results: Sequence[EvalSummary] = (), loss_plot: str | None = None) -> str:
    """The model card of a run's adapter (or, with merged=True, of its merged model); `base` defaults to the
    manifest's `recorded_base`; `loss_plot`: the repo path of the run's loss plot, shown under Training."""
    base = base or recorded_base(run_manifest)
    quant = run_manifest.get("quantization", "none")
    hp = section(run_manifest, "hyperparameters")
    lora = section(run_manifest, "lora")
    vocab = section(run_manifest, "vocab")
    added = run_manifest.get("added_ids")
    added = added if isinstance(added, list) else []
    tags = ["malmungchi", "korean"] + (["lora", "qlora" if quant != "none" else "peft"] if not merged else ["merged"])
    fields = [
        ("base_model", base.hub_id),
        ("library_name", "transformers" if merged else "peft"),
        ("license", license),
        ("language", ["ko"]),
        ("pipeline_tag", "text-generation"),
        ("tags", tags),
    ]
    what = ("The LoRA adapter (and the new marker tokens' rows)" if not merged
            else "The merged model (LoRA and the new marker tokens' rows folded into the base weights)")
    if base.hub_id:
        base_line = f"base `{base.hub_id}`" + (f" (revision `{base.revision}`)" if base.revision else "")
    elif base.folder:
        base_line = f"base `{base.folder}` (a local folder; name its Hub id with `hub push --base-model`)"
    else:
        base_line = "base model not recorded (name its Hub id with `hub push --base-model`)"
    if merged:
        snippet = ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                   f"tok = AutoTokenizer.from_pretrained({quoted(repo_id)})",
                   f"model = AutoModelForCausalLM.from_pretrained({quoted(repo_id)})"]
    else:
        snippet = ["from peft import AutoPeftModelForCausalLM",
                   "from transformers import AutoTokenizer", "",
                   f"tok = AutoTokenizer.from_pretrained({quoted(repo_id)})",
                   f"model = AutoPeftModelForCausalLM.from_pretrained({quoted(repo_id)})  "
                   "# loads the base, resizes it to the tokenizer, attaches the adapter"]
    snippet += ["", "ids = tok(\"옛날 옛적에\", return_tensors=\"pt\").input_ids",
                "out = model.generate(ids, max_new_tokens=40)",
                "print(tok.decode(out[0][ids.shape[1]:], skip_special_tokens=True))  # marker tokens are kept"]
    hyper = [("steps", hp.get("steps")), ("epochs", hp.get("epochs")), ("max_steps", hp.get("max_steps")),
             ("learning rate", hp.get("learning_rate")), ("batch size", hp.get("batch_size")),
             ("gradient accumulation", hp.get("grad_accum")), ("processes", hp.get("world_size")),
             ("LoRA r", lora.get("r")), ("LoRA alpha", lora.get("lora_alpha")),
             ("LoRA dropout", lora.get("lora_dropout")), ("LoRA targets", _list(lora.get("target_modules"))),
             ("new tokens trained by", section(run_manifest, "train_embeddings").get("how")),
             ("quantization", quant), ("dtype", run_manifest.get("dtype")), ("seed", run_manifest.get("seed"))]
    hyper += [(f"args.{k}", quoted(v)) for k, v in sorted(section(hp, "args").items())]
    markers = section(build_manifest, "markers")
    body = [
        f"# {repo_id}",
        "",
        f"{what} of a [malmungchi](https://github.com/malmungchi/malmungchi) run: {base_line}, trained "
        f"{hp.get('steps')} steps on the build `{str(section(run_manifest, 'build').get('content_hash', ''))[:12]}`"
        + (" with 4-bit NF4 QLoRA" if quant == "4bit" else "") + ".",
        "",
        "```python",
        *snippet,
        "```",
        "",
        "## Vocabulary",
        "",
        f"{vocab.get('vocab_before')} → {vocab.get('vocab_after')} tokens, {vocab.get('rows_before')} → "
        f"{vocab.get('rows_after')} embedding rows; added ids: "
        f"{', '.join(str(i) for i in added) or 'none'}.",
        "",
        *(_table(["marker", "policy", "token", "id"], marker_rows(markers)) if markers else ["(no build manifest)"]),
        "",
        "## Training",
        "",
        *([f"![training and validation loss by step]({loss_plot})", ""] if loss_plot else []),
        *_table(["setting", "value"], [(k, v) for k, v in hyper if v is not None]),
        "",
    ]
    if results:
        body += ["## Evaluation", "", *_table(["results", "items", *METRICS],
                                               [(r.name, r.items, *(f"{r.means[k]:.4f}" for k in METRICS))
                                                for r in results]), ""]
    if merged and quant != "none":
        body += ["Merged into the full-precision base weights; the adapter was trained on their 4-bit NF4 copies, "
                 "so outputs differ from the adapter's by the base's quantization error.", ""]
    return front_matter(fields) + "\n" + "\n".join(body)


def _list(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return value
