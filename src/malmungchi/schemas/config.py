"""Configuration: `malmungchi.toml` or `[tool.malmungchi]` in `pyproject.toml`, nearest one up from the inputs."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, field_validator,
                      model_validator)

from malmungchi.errors import UserError
from malmungchi.schemas.registry import MarkerKind, Registry, default_registry
from malmungchi.train.settings import TRL_SETTINGS, config_default


class ConfigError(UserError):
    """A configuration problem; `lines` holds one clear line per error, all reported at once."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MarkerEntry(_Strict):
    kind: MarkerKind
    description: str = ""
    inside: list[str] = Field(default_factory=lambda: ["BOOK"])


class LintConfig(_Strict):
    select: list[str] = Field(default_factory=lambda: ["ALL"])
    ignore: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list, description="glob patterns of paths to skip")
    require_end_markers: bool = Field(False, description="every block needs its |END_OF_X|> (no start-only "
                                                        "spelling): S001 instead of line-scoped blocks and S009")


# --- stage 3: training ---------------------------------------------------------------------------------------------

# SFTConfig fields that malmungchi sets itself from the build directory and the run directory; `[train.args]` may
# not set them (the message says why).
TRAIN_ARGS_MANAGED = {
    "output_dir": "the run directory is --out / train.out",
    "packing": "the build directory is already packed",
    "padding_free": "packed rows are collated by malmungchi (position_ids, or cu_seq_lens and seq_idx, keep "
                    "documents apart)",
    "dataset_kwargs": "the built rows are used as they are",
    "dataset_text_field": "the built rows are already tokenized",
    "remove_unused_columns": "the collator needs the build's columns",
    "max_length": "rows were cut to length by the build",
    "eval_packing": "the build directory is already packed",
    "resume_from_checkpoint": "use --resume",
    # the trainer would upload every checkpoint with the user's token in the middle of the run
    **{k: "nothing is uploaded during training; push the finished run with "
          "`malmungchi hub push RUN_DIR --repo OWNER/NAME`"
       for k in ("push_to_hub", "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo")},
}

class TrainConfig(_Strict):
    """`[train]`: everything `malmungchi train run` takes; a CLI flag overrides the same key. The defaults, and what
    a key left unset (None) becomes, are the table in `malmungchi.train.settings`."""

    model: str | None = Field(default=config_default("model"),
                              description="base model: a folder or a Hugging Face id in the local cache")
    out: str | None = Field(default=config_default("out"), description="the run directory")
    quant: Literal["auto", "4bit", "8bit", "none"] = config_default("quant")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = config_default("dtype")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2", "flash_attention_3"] | None = \
        config_default("attn_implementation")
    max_steps: PositiveInt | None = config_default("max_steps")
    epochs: PositiveFloat | None = config_default("epochs")
    lr: PositiveFloat | None = config_default("lr")
    batch_size: PositiveInt | None = config_default("batch_size")
    grad_accum: PositiveInt | None = config_default("grad_accum")
    lora_r: PositiveInt = config_default("lora_r")
    lora_alpha: PositiveInt | None = config_default("lora_alpha")
    lora_dropout: float = Field(default=config_default("lora_dropout"), ge=0.0, lt=1.0)
    lora_targets: str | list[str] = config_default("lora_targets")
    train_embeddings: Literal["tokens", "full"] = config_default("train_embeddings")
    seed: int | None = config_default("seed")
    report_to: str | list[str] | None = config_default("report_to")
    trust_remote_code: bool = config_default("trust_remote_code")
    merge: bool = config_default("merge")
    args: dict[str, Any] = Field(default_factory=dict, description="any other SFTConfig / TrainingArguments field")

    def with_options(self, options: dict[str, Any]) -> "TrainConfig":
        """This `[train]` with the command-line options that were given (not None) on top, validated again; a bad
        value is a ConfigError naming the option (all at once). The fields set stay those the file or an option set
        (`model_fields_set`), so a default can still be told from a value asked for."""
        data = self.model_dump(exclude_unset=True)
        data.update({k: v for k, v in options.items() if v is not None})
        try:
            return TrainConfig.model_validate(data)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, "options", TrainConfig, "train.")) from None


def sft_config_fields() -> list[str]:
    """The field names of the installed trl's SFTConfig (which include every TrainingArguments field)."""
    import dataclasses

    from trl import SFTConfig

    return [f.name for f in dataclasses.fields(SFTConfig) if f.init]


def check_train_args(train: TrainConfig, source: str, prefix: str = "") -> list[str]:
    """One line per bad `[train.args]` key: unknown to the installed trl (with a did-you-mean), managed by
    malmungchi, or also set by a named `[train]` key."""
    if not train.args:
        return []
    fields = sft_config_fields()
    # a named [train] key that is set and the [train.args] entry for the same trl field conflict
    named = {s.trl_name: s.field for s in TRL_SETTINGS if getattr(train, s.field) is not None}
    lines = []
    for key in train.args:
        where = f"{source}: {prefix}train.args.{key}"
        if key in TRAIN_ARGS_MANAGED:
            lines.append(f"{where}: set by malmungchi ({TRAIN_ARGS_MANAGED[key]})")
        elif key in named:
            lines.append(f"{where}: also set by train.{named[key]}; keep one")
        elif key not in fields:
            hint = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
            more = f" (did you mean {hint[0]!r}?)" if hint else ""
            lines.append(f"{where}: not a field of trl's SFTConfig{more}")
    return lines


POLICY_NAMES = ("special", "text", "strip", "drop")


def check_policy(value: str) -> str:
    """A marker policy: special | text | strip | drop | replace:"…" (quotes optional)."""
    v = value.strip()
    if v in POLICY_NAMES:
        return v
    if v.startswith("replace:"):
        body = v[len("replace:"):]
        if len(body) >= 2 and body[0] == body[-1] and body[0] in "\"'":
            body = body[1:-1]
        elif body[:1] in ("\"", "'") or body[-1:] in ("\"", "'"):
            quote = body[0] if body[:1] in ("\"", "'") else body[-1]
            raise ValueError(f"policy {value!r}: the replacement text's {quote} quote is not closed; write "
                             f"replace:{quote}…{quote} or leave the quotes out")
        return "replace:" + body
    hint = difflib.get_close_matches(v, [*POLICY_NAMES, "replace:"], n=1)
    more = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ValueError(f"unknown policy {value!r}{more}; use special, text, strip, drop or replace:\"…\"")


class SplitRatios(_Strict):
    train: float = Field(0.9, ge=0, le=1)
    validation: float = Field(0.05, ge=0, le=1)
    test: float = Field(0.05, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "SplitRatios":
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must add up to 1 (they add up to {total:g})")
        return self


class BuildConfig(_Strict):
    """`[build]`: how `corpus build` renders, splits, chunks and packs. Every field has a CLI flag."""

    tokenizer: str | None = None
    mode: Literal["text", "chat"] = "text"
    max_length: int = Field(2048, ge=16)
    default_policy: str = "special"
    policies: dict[str, str] = Field(default_factory=dict, description="marker name → policy")
    speakers: Literal["name", "token", "drop"] = "name"
    assistant_speakers: list[str] = Field(default_factory=list)
    system_prompt: str | None = None
    narration_context: Literal["system", "user", "none"] = "system"
    splits: SplitRatios = Field(default_factory=SplitRatios)
    seed: int = 0
    split_unit: Literal["auto", "document", "chunk"] = "auto"
    min_split_sequences: int = Field(8, ge=0, description="warn when a split has fewer sequences")
    long_documents: Literal["split", "drop"] = "split"
    dedup: bool = True
    pack: bool = True
    eval_context: int = Field(512, ge=0)
    allow_errors: bool = False
    prompt_column: str | None = None
    answer_column: str | None = None
    speaker_column: str | None = None
    text_column: str | None = None
    header: bool | None = None
    transcript_style: Literal["none", "kspon"] = Field("none", description="speech-transcript conventions of "
                                                        "tables (kspon: overlap, backchannel, dual, noise tags)")
    transcript_patterns: dict[str, Literal["none", "kspon"]] = Field(default_factory=dict, description="glob → "
                                                                     "transcript style, per file")
    dual_transcription: Literal["written", "spoken"] = "written"
    group_by: str | None = Field(None, description="a .jsonl field or table column naming the group (book) of each "
                                                   "row; rows of one group share a split")

    @field_validator("default_policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        return check_policy(v)

    @field_validator("policies")
    @classmethod
    def _policies(cls, v: dict[str, str]) -> dict[str, str]:
        return {k.strip().upper(): check_policy(p) for k, p in v.items()}


class Config(_Strict):
    """The whole `[tool.malmungchi]` table. Later stages add their own sections."""

    markers: dict[str, MarkerEntry] = Field(default_factory=dict)
    lint: LintConfig = Field(default_factory=LintConfig)
    build: BuildConfig = Field(default_factory=BuildConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: dict[str, Any] = Field(default_factory=dict)

    # where the config came from (None: built-in defaults)
    source: Path | None = Field(default=None, exclude=True)

    def registry(self) -> Registry:
        return default_registry().strict(self.lint.require_end_markers).with_extras(
            {k: v.model_dump() for k, v in self.markers.items()}).with_transcripts(
            self.build.transcript_style, self.build.transcript_patterns)


def _model_fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names valid at `loc` (for a "did you mean" on an unknown key)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        current = args[-1] if args and getattr(ann, "__origin__", None) is dict else ann
        if getattr(current, "__origin__", None) is dict:
            current = current.__args__[-1]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def format_validation_error(err: ValidationError, source: str, model: type[BaseModel], prefix: str = "") -> list[str]:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        dotted = prefix + ".".join(str(p) for p in loc)
        if e["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), _model_fields_at(model, loc), n=1, cutoff=0.6)
            more = f" (did you mean {hint[0]!r}?)" if hint else ""
            lines.append(f"{source}: unknown key {dotted!r}{more}")
        else:
            lines.append(f"{source}: {dotted}: {e['msg']}")
    return lines


def find_config_file(start: Path) -> tuple[Path, dict] | None:
    """Walk up from `start` to the nearest malmungchi.toml or pyproject.toml with [tool.malmungchi]."""
    try:
        here = start.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13): the linter reports it
        here = start.absolute()
    if here.is_file() or not here.exists():
        here = here.parent
    for folder in (here, *here.parents):
        own = folder / "malmungchi.toml"
        if own.is_file():
            return own, _read_toml(own)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("malmungchi")
            if table is not None:
                return pyproject, table
    return None


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None


def load_config(start: Path | None = None, explicit: Path | None = None) -> Config:
    """Load the config from `explicit`, or the nearest file up from `start`, or return the defaults."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError([f"{explicit}: config file not found"])
        data = _read_toml(explicit)
        if explicit.name == "pyproject.toml":
            data = data.get("tool", {}).get("malmungchi", {})
        found: tuple[Path, dict] | None = (explicit, data)
    else:
        found = find_config_file(start or Path.cwd())
    if found is None:
        return Config()
    path, data = found
    prefix = "tool.malmungchi." if path.name == "pyproject.toml" else ""
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        lines = format_validation_error(err, str(path), Config, prefix)
        train = data.get("train") if isinstance(data, dict) else None
        if isinstance(train, dict) and isinstance(train.get("args"), dict):
            try:  # report unknown [train.args] keys together with the other errors
                lines += check_train_args(TrainConfig.model_construct(args=train["args"]), str(path), prefix)
            except Exception:  # noqa: BLE001 - trl not importable: the other errors still stand
                pass
        raise ConfigError(lines) from None
    args_lines = check_train_args(config.train, str(path), prefix)
    if args_lines:
        raise ConfigError(args_lines)
    try:
        config.registry()
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path), Config, prefix + "markers.")) from None
    return config.model_copy(update={"source": path})
