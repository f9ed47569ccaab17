"""Where a command may write its output directory: never over or around an input, and `--force` only ever
replaces an earlier output of the same command (recognised by the manifest it writes last).

Every command that writes a directory (`corpus build --out`, `train run --out`, `quickstart --out`) asks here
before it touches anything, so a slip such as `--out .` or `--out corpus/` ends in one line, not in a deleted
corpus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from malmungchi.contracts.build import BUILD_MANIFEST, is_build_dir
from malmungchi.contracts.run import is_run_output


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def overlap_problem(out: str | Path, inputs: Iterable[str | Path], *, flag: str = "--out") -> str | None:
    """A line when `out` is an input, holds one, or lies inside one; else None."""
    target = _resolved(out)
    for given in inputs:
        src = _resolved(given)
        if src == target:
            return f"{flag} {out} is the input {given}: choose an output folder outside your inputs"
        if target in src.parents:
            return f"{flag} {out} contains the input {given}: choose an output folder outside your inputs"
        if src in target.parents:
            return f"{flag} {out} is inside the input {given}: choose an output folder outside your inputs"
    return None


def own_output_kind(path: str | Path) -> str | None:
    """What malmungchi output `path` is ("build directory", "run directory"), or None.
    Input walking skips these, so a build written inside its corpus folder is never read back as input."""
    p = Path(path)
    if is_build_dir(p):
        return "build directory"
    if is_run_output(p):
        return "run directory"
    return None


def build_out_problem(out: str | Path, inputs: Iterable[str | Path], *, force: bool) -> str | None:
    """Why `corpus build` may not write `out`, or None. A new folder may go anywhere (input walking skips build
    directories). An existing one needs force, and force replaces only an earlier build that is no input, holds
    none and lies inside none."""
    out_p = Path(out)
    if not out_p.exists() and not out_p.is_symlink():
        return None
    if not force:
        return f"{out} already exists; pass --force to replace it"
    problem = overlap_problem(out_p, inputs)
    if problem:
        return problem
    if not out_p.is_dir():
        return f"--out {out} is a file, not an earlier build: --force only replaces a build directory"
    if any(out_p.iterdir()) and not is_build_dir(out_p):
        return (f"--out {out} is not a build directory (no malmungchi {BUILD_MANIFEST}): --force only replaces an "
                "earlier build; choose another --out or move that folder away yourself")
    return None
