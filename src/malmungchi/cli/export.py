"""`malmungchi corpus export`: the build `corpus build` would make (the same options, config file and split),
written for another trainer: LLaMA-Factory, axolotl, trl or a loop of your own (`malmungchi.prep.export`).

Exit status: 0 written, 1 refused because inputs have lint errors (shown), 2 usage, config or I/O error (a format
that does not apply to the build's mode is one line).
"""

from __future__ import annotations

import json

import click

from malmungchi.cli.build import _options, _plan, _restore
from malmungchi.cli.common import console, fail, styled
from malmungchi.contracts.build import SPLITS
from malmungchi.prep.export import FORMATS


@click.command("export")
@_options
@click.option("--format", "fmt", required=True, type=click.Choice(list(FORMATS)),
              help="; ".join(f"{name}: {f.doc} ({'/'.join(f.modes)} mode)" for name, f in FORMATS.items()) + ".")
@click.option("--out", "-o", "out", required=True, type=click.Path(), help="Folder to write (one file per split).")
@click.option("--split", type=click.Choice([*SPLITS, "all"]), default="all", show_default=True,
              help="The split to write; all: one file per split.")
@click.option("--force", is_flag=True, help="Replace an earlier export in --out.")
def export_command(fmt, out, split, force, **kw):
    """Build in memory (as `corpus build` would: same documents, same splits) and write FORMAT instead of packed
    Parquet rows: messages, sharegpt or alpaca (chat mode), axolotl segments or tokenized rows (both modes)."""
    from pathlib import Path

    from malmungchi.prep.export import export, out_problem  # ExportError: main group

    _restore(out)
    problem = out_problem(Path(out), kw["inputs"], force=force)  # before the corpus is read
    if problem:
        fail(problem)
    cfg, p = _plan(kw)
    try:
        summary = export(p, out, fmt, split, force=force)
    except OSError as exc:
        fail(f"{out}: cannot write: {exc.strerror or exc}")
    if kw["as_json"]:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2, sort_keys=True))
        return
    c = console()
    for name, s in summary["splits"].items():
        c.print(f"{name:<10} {s['records']:>7} records  {s['documents']:>6} documents  {s['tokens']:>9} tokens  "
                f"→ {out}/{s['file']}")
    for note, n in summary["notes"].items():
        c.print(f"note: {n} {note}")
    if summary.get("not_lossless"):
        c.print(styled("warning", "yellow", f": {summary['not_lossless']} sequence(s) do not tokenize back to the "
                       "build's ids from their segments (a token spans a loss boundary); axolotl trains those "
                       "slightly differently"))
    beside = [f for f in summary["files"] if f not in {s["file"] for s in summary["splits"].values()}]
    c.print(styled("exported", "green", f" {out} ({fmt}; beside the splits: {', '.join(beside)})"))
