"""`malmungchi hub push`: a run (adapter or merged model) or a build, with a generated card, to the Hugging Face Hub."""

from __future__ import annotations

import click

from malmungchi.cli.common import console


@click.group()
def hub() -> None:
    """Publish runs and builds on the Hugging Face Hub (the only commands that go online)."""


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@hub.command()
@click.argument("source", metavar="RUN_OR_BUILD", type=click.Path())
@click.option("--repo", "repo_id", required=True, help="The Hub repo, OWNER/NAME (created when new).")
@click.option("--private", is_flag=True, help="Create the repo private (an existing repo keeps its visibility).")
@click.option("--merged", is_flag=True, help="Push RUN_DIR/merged (`malmungchi train merge`) instead of the adapter.")
@click.option("--license", "license_", default="unknown", show_default=True,
              help="The card's license (a Hub license id: apache-2.0, cc-by-4.0, other, ...).")
@click.option("--base-model", default=None, help="The base model's Hub id, when the run was trained from a local "
              "folder (written into the card and the pushed adapter_config.json).")
@click.option("--results", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An `eval run`/`eval score` results file for the card's table (repeatable; *.jsonl results in "
              "RUN_DIR are found by themselves).")
@click.option("--dry-run", is_flag=True, help="List the files and sizes and print the card; needs no token.")
def push(source, repo_id, private, merged, license_, base_model, results, dry_run):
    """Push RUN_OR_BUILD: a run as a model repo (adapter or merged model, tokenizer, manifests, card), a build as a
    dataset repo whose card makes `load_dataset` load its training splits. Token: HF_TOKEN or the saved login.

    Exit status: 0 done, 2 usage error, or the Hub refused.
    """
    from pathlib import Path

    from malmungchi.hub.push import plan_push, push as do_push

    upload = plan_push(source, repo_id, merged=merged, license=license_, base_model=base_model,
                       results=tuple(Path(r) for r in results))
    out = console()
    if dry_run:
        out.print(f"{upload.repo_type} repo {upload.repo_id}: {len(upload.files)} files, "
                  f"{_size(upload.total_bytes)} (dry run: nothing sent)")
        for rel, item in upload.files:
            out.print(f"  {_size(upload.size(item)):>12}  {rel}")
        out.print("")
        click.echo(upload.card, nl=False)
        return
    url = do_push(upload, private=private)
    out.print(f"pushed {len(upload.files)} files ({_size(upload.total_bytes)}) to the {upload.repo_type} repo "
              f"{upload.repo_id}: {url}")
