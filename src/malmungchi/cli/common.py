"""Shared CLI plumbing: one-line errors with exit code 2, consoles, config loading."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.text import Text

from malmungchi.errors import USAGE_ERROR
from malmungchi.schemas.config import Config, load_config


EXCLUDE_HELP = ("Leave out paths matching this glob (a file or folder name, or a path pattern; repeatable; adds to "
                "[lint] exclude), e.g. --exclude list_of_novels.csv")


def console(stderr: bool = False) -> Console:
    """The CLI's console. Markup is off: what is printed holds paths, ids, model output and corpus text, where
    `[v2]` would vanish and `[/INST]` raise rich's MarkupError; colour comes from `styled` and rich Text."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False)


def styled(head: str, style: str, rest: str) -> Text:
    """`head` in `style`, then `rest` as it is (never read as markup): "built" in green, then the path."""
    return Text.assemble((head, style), rest)


def fail(*lines: str, exit_code: int = USAGE_ERROR) -> NoReturn:
    """Print one clear line per problem to stderr and exit (2 unless told: usage or I/O error)."""
    for line in lines:
        click.echo(f"error: {line}", err=True)
    sys.exit(exit_code)


def load_config_or_fail(paths: list[str], explicit: str | None) -> Config:
    """The config for a command on `paths`: `explicit`, else the nearest file up from the first path; a
    ConfigError (every problem at once) goes to the main group, which prints it."""
    start = Path(paths[0]) if paths else Path.cwd()
    return load_config(start, Path(explicit) if explicit else None)
