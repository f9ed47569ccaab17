"""The `malmungchi` command line."""

from __future__ import annotations

import click

from malmungchi import __version__
from malmungchi.cli.build import build_command, stats_command
from malmungchi.cli.corpus import corpus
from malmungchi.cli.quickstart import quickstart
from malmungchi.cli.eval import eval_group
from malmungchi.cli.train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="malmungchi")
def main() -> None:
    """Hand-marked Korean book and dialogue text → linted corpus → dataset → QLoRA model → exact-match eval."""


corpus.add_command(build_command)
corpus.add_command(stats_command)
main.add_command(corpus)
main.add_command(train)
main.add_command(eval_group)
main.add_command(quickstart)
