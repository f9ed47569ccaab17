"""`malmungchi corpus ...`: lint, rule (and the build stage's commands)."""

from __future__ import annotations

import difflib
import json
import os
import sys

import click
from rich.markdown import Markdown
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from malmungchi.atomic import remove_orphans
from malmungchi.cli.common import EXCLUDE_HELP, console, fail, load_config_or_fail
from malmungchi.corpus import report
from malmungchi.corpus.fix import apply, fix_file
from malmungchi.corpus.lint import LintRun, lint_paths
from malmungchi.corpus.rules import RULES, unknown_patterns
from malmungchi.corpus.source import describe_os_error
from malmungchi.corpus.table_hint import ColumnCheck
from malmungchi.corpus.walk import discover


@click.group()
def corpus() -> None:
    """Lint, build and describe marker corpora."""


def _codes(values: tuple[str, ...]) -> list[str]:
    return [c.strip().upper() for v in values for c in v.split(",") if c.strip()]


def _check_patterns(patterns: list[str], flag: str) -> None:
    bad = unknown_patterns(patterns)
    if bad:
        lines = []
        for p in bad:
            hint = difflib.get_close_matches(p, list(RULES), n=1)
            lines.append(f"{flag} {p}: no such rule code or prefix" + (f" (did you mean {hint[0]}?)" if hint else "")
                         + "; see `malmungchi corpus rule --all`")
        fail(*lines)


@corpus.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--select", multiple=True, help="Rule codes or prefixes to check (comma-separated; default ALL).")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to skip (comma-separated).")
@click.option("--output-format", type=click.Choice(report.FORMATS), default=None,
              help="How to print diagnostics (default: rich on a terminal, text otherwise).")
@click.option("--statistics", is_flag=True, help="Print a count per rule instead of each diagnostic.")
@click.option("--fix", is_flag=True, help="Apply safe fixes in place (atomically), then report what is left.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix or --diff, also apply unsafe fixes.")
@click.option("--diff", is_flag=True, help="Print the fixes as a unified diff instead of writing them.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when problems are found.")
@click.option("--transcript-style", type=click.Choice(["none", "kspon"]), default=None,
              help="Tables: check speech-transcript tags (kspon: T001–T003); default from [build] transcript_style.")
@click.option("--config", "config_path", type=click.Path(), help="Config file (default: nearest malmungchi.toml "
              "or pyproject.toml [tool.malmungchi] up from the first path).")
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB", help=EXCLUDE_HELP)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: all cores).")
def lint(paths, select, ignore, output_format, statistics, fix, unsafe_fixes, diff, exit_zero, transcript_style,
         config_path, excludes, jobs):
    """Find every defect in marker text (and check .jsonl/.csv/.tsv inputs decode and parse).

    Exit status: 0 clean, 1 problems found, 2 usage or I/O error.
    """
    config = load_config_or_fail(list(paths), config_path)
    registry = config.registry()
    if transcript_style:
        registry = registry.with_transcripts(transcript_style, config.build.transcript_patterns)
    exclude = [*config.lint.exclude, *excludes]
    select_codes = _codes(select) or config.lint.select
    ignore_codes = _codes(ignore) or config.lint.ignore
    _check_patterns(select_codes, "--select")
    _check_patterns(ignore_codes, "--ignore")
    out = console()
    err = console(stderr=True)
    fmt = output_format or ("rich" if out.is_terminal else "text")

    changed_files = 0
    if fix or diff:
        found = discover(list(paths), exclude)
        if fix:  # what an earlier, killed `lint --fix` left half-written
            for folder in sorted({os.path.dirname(f) or "." for f in found.files}):
                for orphan in remove_orphans(folder):
                    err.print(f"removed {orphan}: left by an interrupted `lint --fix`")
        for path in found.files:
            result = fix_file(path, registry, select=select_codes, ignore=ignore_codes, unsafe=unsafe_fixes)
            if result is None or not result.changed:
                continue
            changed_files += 1
            if diff:
                sys.stdout.write(result.diff())
            else:
                try:
                    apply(result)
                except OSError as exc:
                    fail(f"{path}: cannot write the fixed file: {describe_os_error(exc)}")
        if diff:
            if changed_files:
                err.print(f"{changed_files} file{'s' * (changed_files != 1)} would be changed.")
            if found.missing:
                fail(*(f"{missing}: no such file or folder" for missing in found.missing))
            sys.exit(1 if changed_files and not exit_zero else 0)

    b = config.build
    named = any((b.prompt_column, b.answer_column, b.speaker_column, b.text_column))
    run = _run_lint(list(paths), registry, select_codes, ignore_codes, exclude, jobs, err,
                    None if named else ColumnCheck(b.header))
    diagnostics = run.diagnostics
    if statistics:
        _print_statistics(out, fmt, diagnostics)
    elif fmt == "json":
        click.echo(report.as_json(diagnostics))
    elif fmt == "sarif":
        click.echo(report.as_sarif(diagnostics))
    elif fmt == "github":
        for line in report.as_github(diagnostics):
            click.echo(line)
    elif fmt == "text":
        for line in report.text_lines(diagnostics):
            click.echo(line)
    else:
        report.print_rich(out, diagnostics)
    if fmt in ("rich", "text") and (diagnostics or not run.missing):
        if fix and changed_files:
            click.echo(f"Fixed {changed_files} file{'s' * (changed_files != 1)}.")
        if run.files:
            click.echo(report.summary(diagnostics, fixing=fix))
        else:  # not "All checks passed!" on a folder that holds nothing to check (a typo in the path, say)
            left_out = " once the excluded paths are left out" if exclude else ""
            click.echo(f"warning: no corpus files (.txt, .jsonl, .csv, .tsv) in {', '.join(paths)}{left_out}: "
                       "nothing was checked", err=True)
    for line in run.skipped:
        click.echo(line, err=True)
    for missing in run.missing:
        click.echo(f"error: {missing}: no such file or folder", err=True)
    if run.missing:
        sys.exit(2)
    sys.exit(1 if diagnostics and not exit_zero else 0)


def _run_lint(paths, registry, select, ignore, exclude, jobs, err, columns=None) -> LintRun:
    if not err.is_terminal:
        return lint_paths(paths, registry, select=select, ignore=ignore, exclude=exclude, jobs=jobs, columns=columns)
    bar = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
           TimeRemainingColumn())
    with Progress(*bar, console=err, transient=True) as progress:
        task = progress.add_task("linting", total=None)
        return lint_paths(paths, registry, select=select, ignore=ignore, exclude=exclude, jobs=jobs,
                          progress=lambda n: progress.advance(task, n), columns=columns)


def _print_statistics(out, fmt: str, diagnostics) -> None:
    rows = report.statistics_rows(diagnostics)
    if fmt == "json":
        click.echo(json.dumps([{"count": n, "code": c, "name": name, "severity": s, "fixable": bool(f)}
                                      for n, c, name, s, f in rows], indent=2))
    elif fmt == "rich":
        out.print(report.statistics_table(diagnostics))
    else:
        for n, code, name, sev, fix in rows:
            click.echo(f"{n:>6}  {code}  {fix:3}  {name} ({sev})")


@corpus.command()
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every rule.")
@click.option("--output-format", type=click.Choice(["rich", "text", "json"]), default="rich")
def rule(code, show_all, output_format):
    """Explain a rule code (e.g. `malmungchi corpus rule U001`), or list every rule with --all."""
    if show_all or code is None:
        rules = list(RULES.values())
    else:
        key = code.strip().upper()
        if key not in RULES:
            hint = difflib.get_close_matches(key, list(RULES), n=1)
            fail(f"no rule {code!r}" + (f" (did you mean {hint[0]}?)" if hint else "") +
                 "; `malmungchi corpus rule --all` lists them")
        rules = [RULES[key]]
    if output_format == "json":
        click.echo(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity.value,
                                       "summary": r.summary, "fix": r.fix.value if r.fix else None, "doc": r.doc}
                                      for r in rules], ensure_ascii=False, indent=2))
        return
    out = console()
    if len(rules) > 1:
        from malmungchi.tables import Fitted

        cols = ["code", "name", "severity", "fix", "summary"]
        out.print(Fitted(None, cols, [[r.code, r.name, r.severity.value, r.fix.value if r.fix else "", r.summary]
                                      for r in rules], left=tuple(cols)))
        return
    r = rules[0]
    fix = f"fix: {r.fix.value}" if r.fix else "no automatic fix"
    text = f"# {r.code} {r.name}\n\n*{r.severity.value}, {fix}*\n\n**{r.summary}**\n\n{r.doc}\n"
    if output_format == "text":
        click.echo(text)
    else:
        out.print(Markdown(text))
