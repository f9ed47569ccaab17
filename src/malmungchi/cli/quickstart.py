"""`malmungchi quickstart`: the whole pipeline on the bundled sample."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from malmungchi.cli.common import console
from malmungchi.quickstart.pipeline import Settings


@click.command()
@click.option("--out", type=click.Path(file_okay=False), default="malmungchi-quickstart", show_default=True,
              help="Folder for everything the quick start writes (replaced if a previous quick start made it).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help=f"Training steps (default {Settings.steps}).")
@click.option("--force", is_flag=True, help="Replace --out even when a previous run left it half-written.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON on stdout (the stages' output goes to stderr).")
def quickstart(out, steps, force, as_json):
    """Lint → build → train → eval on the bundled sample corpus: offline, on the CPU, in a few minutes.

    Uses a tokenizer trained from the sample and a tiny model created from a config, so it downloads nothing.
    It demonstrates that the pipeline learns (exact match on memorised pairs before vs. after training); it
    does not make a useful model.
    """
    from malmungchi.quickstart.pipeline import check_learned, print_summary, run

    settings = Settings(out=Path(out))
    if steps:
        settings.steps = steps
    con = console(stderr=as_json)
    try:
        res = run(settings, con, force=force, err=console(stderr=True))
        if as_json:
            click.echo(json.dumps({"out": str(settings.out), "steps": settings.steps, **asdict(res)},
                                  ensure_ascii=False, indent=2))
        else:
            print_summary(res, settings, con)
        check_learned(res)
    except KeyboardInterrupt:
        click.echo(f"interrupted; {out} holds what was done so far", err=True)
        sys.exit(130)
