"""`malmungchi config`: the settings every command would use here, resolved (defaults + the config file)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from malmungchi.cli.common import fail, load_config_or_fail


def resolved(config) -> dict:
    """The whole config as plain values, every default filled in (a `[train]` key that trl also knows: unless
    `[train.args]` sets it; lora_alpha 2·r unless set). Written to a file, it loads as the same settings."""
    from malmungchi.train.settings import TRL_SETTINGS, trl_value

    data = config.model_dump(mode="json")
    data["markers"] = {name: {k: v for k, v in entry.items() if v is not None}
                       for name, entry in data.get("markers", {}).items()}
    train = data["train"]
    for setting in TRL_SETTINGS:
        if setting.trl_name not in config.train.args:
            train[setting.field] = trl_value(setting, config.train)
    if train.get("max_steps") == -1:
        train["max_steps"] = None  # trl's "not set": the epochs decide
    if train.get("lora_alpha") is None:
        train["lora_alpha"] = 2 * train["lora_r"]
    return data


def to_toml(data: dict, prefix: str = "") -> str:
    """`data` as TOML: scalars and lists of scalars as `key = value` (JSON spelling, which TOML reads the same for
    these), tables as `[section]`; a None (unset) is written as a comment, TOML having no null."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is None:
            lines.append(f"# {key} = (unset)")
        else:
            lines.append(f"{_key(key)} = {json.dumps(value, ensure_ascii=False)}")
    out = ("\n".join(lines) + "\n") if lines else ""
    for key, value in tables:
        name = f"{prefix}{_key(key)}"
        out += f"\n[{name}]\n{to_toml(value, name + '.')}"
    return out


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


@click.command(name="config")
@click.argument("path", required=False, type=click.Path())
@click.option("--config", "config_path", type=click.Path(), help="This config file instead of the nearest one.")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
def config_command(path, config_path, as_json):
    """Print the resolved settings for PATH (default: here): every [lint], [build], [train] and [markers] value a
    command run on PATH would use — the nearest malmungchi.toml (or pyproject.toml [tool.malmungchi]) over the
    built-in defaults — and the file they came from. Command-line options still override them."""
    if path and not Path(path).exists():
        fail(f"{path}: no such file or folder (give the folder your corpus or build is in)")
    config = load_config_or_fail([path] if path else [], config_path)
    data = resolved(config)
    source = str(config.source) if config.source else None
    if as_json:
        click.echo(json.dumps({"source": source, **data}, ensure_ascii=False, indent=2))
        return
    click.echo(f"# resolved malmungchi settings; from {source or 'the built-in defaults (no config file found)'}")
    click.echo(to_toml(data).lstrip("\n"), nl=False)
