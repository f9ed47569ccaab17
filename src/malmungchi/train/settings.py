"""The training settings: one record per `[train]` key with its default, the trl field it sets and its flag's help.

`malmungchi.schemas.config.TrainConfig` takes its defaults from here, `malmungchi train run` its flags' help (the
default filled in, so help and code cannot disagree), and `malmungchi.train.runner` the value of every setting
that trl also knows: the `[train]` key or flag when given, else the same field in `[train.args]`, else the default
below. Those keys stay unset (None) in the config so that `[train.args]` may set them instead (but not both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    field: str  # the `[train]` key (a TrainConfig field)
    default: Any  # None: no default here (a required value, or one derived from others: see help)
    trl_name: str | None  # the SFTConfig / TrainingArguments field it sets; None: malmungchi's own
    help: str  # the flag's help; "{default}" is replaced by the default
    flag: str = ""  # the command-line flag, when it is not --FIELD-WITH-DASHES

    @property
    def option(self) -> str:
        return self.flag or "--" + self.field.replace("_", "-")

    @property
    def help_text(self) -> str:
        return self.help.format(default=shown(self.default))


SETTINGS: tuple[Setting, ...] = (
    Setting("model", None, None, "Base model: a folder, or a Hugging Face id already in the local cache."),
    Setting("out", None, None, "The run directory to write."),
    Setting("quant", "auto", None, "Quantize the base (default {default}: 4-bit NF4 with double quantization where "
            "bitsandbytes runs)."),
    Setting("dtype", "auto", None, "Weights/compute dtype (default: bf16 on a GPU that has it, else float32)."),
    Setting("attn_implementation", "sdpa", None, "Attention implementation (default {default}).", flag="--attn"),
    Setting("max_steps", -1, "max_steps", "Optimizer steps (overrides --epochs)."),
    Setting("epochs", 1.0, "num_train_epochs", "Epochs (default {default})."),
    Setting("lr", 2e-4, "learning_rate", "Learning rate (default {default})."),
    Setting("batch_size", 4, "per_device_train_batch_size", "Rows per device per step (default {default})."),
    Setting("grad_accum", 1, "gradient_accumulation_steps", "Gradient accumulation steps."),
    Setting("lora_r", 16, None, "LoRA rank (default {default})."),
    Setting("lora_alpha", None, None, "LoRA alpha (default 2·r)."),
    Setting("lora_dropout", 0.05, None, "LoRA dropout."),
    Setting("lora_targets", "all-linear", None, "The modules LoRA adapts."),
    Setting("train_embeddings", "tokens", None, "How new tokens are trained: tokens (peft trainable_token_indices, "
            "default) or full (modules_to_save: the whole embedding and head)."),
    Setting("seed", 42, "seed", "Random seed (default {default})."),
    Setting("report_to", "none", "report_to", "Trackers (none, tensorboard, wandb, ...; default {default})."),
    Setting("trust_remote_code", False, None, "Allow the model's own code to run."),
    Setting("merge", False, None, "Also write merged/: the adapter merged into the base, reloaded unquantized "
            "(what `malmungchi train merge` does)."),
)

BY_FIELD: dict[str, Setting] = {s.field: s for s in SETTINGS}
TRL_SETTINGS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.trl_name)
TRL_NAMES: frozenset[str] = frozenset(s.trl_name for s in TRL_SETTINGS)


def config_default(field: str) -> Any:
    """The TrainConfig default of `field`: None (unset) for a setting trl also knows, else the table's default."""
    setting = BY_FIELD[field]
    return None if setting.trl_name else setting.default


def trl_value(setting: Setting, cfg) -> Any:
    """A trl-known setting's value in `cfg` (a TrainConfig): its `[train]` key or flag when given, else its
    `[train.args]` entry, else the default; a number from `[train.args]` gets the default's type."""
    own = getattr(cfg, setting.field)
    if own is not None:
        return own
    value = cfg.args.get(setting.trl_name, setting.default)
    return type(setting.default)(value) if isinstance(setting.default, (int, float)) else value


def shown(value: Any) -> str:
    """A default as help text writes it: 1.0 → 1, 0.0002 → 2e-4."""
    if isinstance(value, float):
        plain = f"{value:g}"
        mantissa, _, exponent = f"{value:.12e}".partition("e")
        compact = f"{float(mantissa):g}e{int(exponent)}"
        return compact if len(compact) < len(plain) else plain
    return str(value)
