"""`malmungchi env`: the machine and the versions, for bug reports and for choosing --quant."""

from __future__ import annotations

import json

import click

from malmungchi.cli.common import console


@click.command("env")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
def env_command(as_json: bool) -> None:
    """Print the CPU (and the flags that change code paths), accelerators, the bitsandbytes 4-bit path and the
    versions of Python and the libraries malmungchi uses."""
    from malmungchi.envinfo import collect, lines

    info = collect()
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, indent=2, sort_keys=True))
        return
    out = console()
    for line in lines(info):
        out.print(line)
