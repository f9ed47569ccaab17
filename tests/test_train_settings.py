"""The training settings table is the one place defaults live: the config schema, the flags' help and the runner
all read it, so they cannot disagree."""

import dataclasses

from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.quickstart.pipeline import Settings
from malmungchi.schemas.config import TrainConfig, check_train_args
from malmungchi.train.settings import BY_FIELD, SETTINGS, TRL_SETTINGS, shown, trl_value


def test_every_train_key_has_one_setting():
    assert [s.field for s in SETTINGS] == [f for f in TrainConfig.model_fields if f != "args"]


def test_schema_defaults_come_from_the_table():
    cfg = TrainConfig()
    for s in SETTINGS:
        assert getattr(cfg, s.field) == (None if s.trl_name else s.default), s.field


def test_trl_names_are_sftconfig_fields():
    from trl import SFTConfig

    fields = {f.name for f in dataclasses.fields(SFTConfig)}
    assert {s.trl_name for s in TRL_SETTINGS} <= fields


def test_a_setting_comes_from_the_key_then_train_args_then_the_default():
    lr = BY_FIELD["lr"]
    assert trl_value(lr, TrainConfig(lr=1e-3, args={})) == 1e-3
    assert trl_value(lr, TrainConfig(args={"learning_rate": 5e-4})) == 5e-4
    assert trl_value(lr, TrainConfig()) == 2e-4
    assert trl_value(BY_FIELD["batch_size"], TrainConfig(args={"per_device_train_batch_size": 8.0})) == 8
    assert trl_value(BY_FIELD["max_steps"], TrainConfig()) == -1


def test_a_named_key_and_its_train_args_entry_conflict():
    lines = check_train_args(TrainConfig(lr=1e-3, args={"learning_rate": 5e-4}), "malmungchi.toml")
    assert lines == ["malmungchi.toml: train.args.learning_rate: also set by train.lr; keep one"]


def test_help_shows_the_defaults_of_the_table():
    assert [shown(v) for v in (1.0, 2e-4, 0.05, 3e-3, 4, "none")] == ["1", "2e-4", "0.05", "3e-3", "4", "none"]
    run = main.commands["train"].commands["run"]
    options = {p.name: p for p in run.params if p.name in BY_FIELD}
    assert set(options) == set(BY_FIELD) - {"lora_dropout", "lora_targets"}  # those two are config-only
    for name, option in options.items():
        assert option.help == BY_FIELD[name].help_text and option.opts == [BY_FIELD[name].option], name
    assert options["lr"].help == "Learning rate (default 2e-4)." and options["attn_implementation"].opts == ["--attn"]
    text = CliRunner().invoke(main, ["quickstart", "--help"]).output
    assert f"Training steps (default {Settings.steps})." in text
