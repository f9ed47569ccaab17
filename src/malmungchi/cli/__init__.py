"""The `malmungchi` command line."""

from __future__ import annotations

import click

from malmungchi import __version__
from malmungchi.cli.corpus import corpus


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="malmungchi")
def main() -> None:
    """Hand-marked Korean book and dialogue text → linted corpus → dataset → QLoRA model → exact-match eval."""


main.add_command(corpus)
