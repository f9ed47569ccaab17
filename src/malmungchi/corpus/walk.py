"""Find the corpus files under the paths a user gives, without following symlink loops."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

from malmungchi.corpus.diagnostics import Diagnostic
from malmungchi.corpus.source import describe_os_error
from malmungchi.outdir import own_output_kind

MARKER_SUFFIXES = (".txt",)
DATA_SUFFIXES = (".jsonl", ".csv", ".tsv")
SUFFIXES = MARKER_SUFFIXES + DATA_SUFFIXES


@dataclass
class Discovery:
    files: list[str] = field(default_factory=list)
    problems: list[Diagnostic] = field(default_factory=list)  # F007 for unreadable folders and loops
    missing: list[str] = field(default_factory=list)  # paths given that do not exist
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why): not corpus text, never read

    def skipped_lines(self) -> list[str]:
        return [f"skipped {path}: {why}" for path, why in self.skipped]


# files that sit beside corpus data but are not text (lint and build both skip them, and say so)
ANNOTATION_SUFFIXES = {".coref.jsonl": "a KoCoNovel coreference/speaker annotation file, not text"}


def _annotation(name: str) -> str | None:
    lower = name.lower()
    return next((why for suffix, why in ANNOTATION_SUFFIXES.items() if lower.endswith(suffix)), None)


def _excluded(path: str, exclude: list[str]) -> bool:
    norm = path.replace(os.sep, "/")
    return any(fnmatch.fnmatch(norm, pat) or fnmatch.fnmatch(os.path.basename(norm), pat) for pat in exclude)


def discover(paths: list[str], exclude: list[str] | None = None) -> Discovery:
    """Files given directly are taken whatever their suffix; folders are searched for corpus suffixes."""
    exclude = exclude or []
    found = Discovery()
    seen: set[str] = set()

    def add(path: str) -> None:
        if path not in seen and not _excluded(path, exclude):
            seen.add(path)
            found.files.append(path)

    for given in paths:
        if os.path.isdir(given):
            _walk(given, add, found, exclude)
        elif os.path.lexists(given):
            add(given)  # a file, or a broken/looping symlink: reading it reports why
        else:
            found.missing.append(given)
    return found


def _walk(root: str, add, found: Discovery, exclude: list[str]) -> None:
    visited: dict[tuple[int, int], str] = {}

    def onerror(exc: OSError) -> None:
        found.problems.append(Diagnostic("F007", f"cannot read folder: {describe_os_error(exc)}",
                                         exc.filename or root))

    for folder, dirs, files in os.walk(root, followlinks=True, onerror=onerror):
        try:
            st = os.stat(folder)
        except OSError as exc:
            found.problems.append(Diagnostic("F007", f"cannot read folder: {describe_os_error(exc)}", folder))
            dirs[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            found.problems.append(Diagnostic("F007", f"folder already visited as {visited[key]} (a symlink loop or a second link); skipped", folder))
            dirs[:] = []
            continue
        visited[key] = folder
        kind = own_output_kind(folder)
        if kind:
            found.skipped.append((folder, f"a malmungchi {kind} (outputs are never read as input)"))
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _excluded(os.path.join(folder, d), exclude))
        for name in sorted(files):
            if name.lower().endswith(SUFFIXES) and not name.startswith("."):
                why = _annotation(name)
                if why:
                    found.skipped.append((os.path.join(folder, name), why))
                else:
                    add(os.path.join(folder, name))
