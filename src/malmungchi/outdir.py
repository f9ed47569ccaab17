"""Where a command may write its output directory, and how it gets there.

Where: never over or around an input, and `--force` only ever replaces an earlier output of the same command
(recognised by the manifest it writes last). Every command that writes a directory (`corpus build --out`,
`corpus export --out`, `train run --out`, `quickstart --out`) asks here before it touches anything, so a slip such
as `--out .` or `--out corpus/` ends in one line, not in a deleted corpus.

How (`corpus build`, `corpus export`, both through `write_in_place`): everything is written into `.NAME.PID.XXXXXXXX.tmp` beside `out`
(`temporary_sibling`, with the mode a plain `mkdir` gives, not mkdtemp's 0700), then `swap_in` renames it to
`out`. Replacing an earlier output takes two renames — the earlier one into `.NAME.PID.XXXXXXXX.old/saved`, the
new one to `out` — and a process killed between them leaves no `out`: the next build or export of `out`, whichever
it is, puts the earlier output back first (`restore_interrupted_swap`; it was at `out` before, so it goes back
whatever wrote it, and that command's own checks then decide whether it may be replaced). Temporaries whose
process is gone are removed before writing (`remove_stale_temporaries`); those of a process still running are left
alone, and so is a `.old` folder still holding a saved output: removing it would delete the only copy. The
checks on `out` are made again just before the swap, so `--force` never replaces what another process put there
while the output was written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Iterable, TypeVar

from malmungchi.atomic import process_alive, umask
from malmungchi.contracts.build import BUILD_MANIFEST, is_build_dir
from malmungchi.contracts.run import is_run_output


T = TypeVar("T")
SAVED_AS = "saved"  # the earlier output's name inside `.NAME.PID.*.old` while --force replaces it, for every writer
# the names an earlier output may have there: `corpus build` of malmungchi 0.1.0 called it `build`
SAVED_NAMES = (SAVED_AS, "build")
REPLACED = "replaced"  # the earlier output's name there once the new one is in place, while it is deleted


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


# --- writing it: a temporary sibling renamed into place -------------------------------------------------------

def _prefix(out: Path) -> str:
    return f".{out.name}.{os.getpid()}."


def temporary_sibling(out: Path) -> Path:
    """A new empty folder `.NAME.PID.XXXXXXXX.tmp` beside `out` (its parent made if need be), with the mode a
    plain `mkdir` would give it: the output is shared like any other folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(out), suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it 0700
    return tmp


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """`temporary_sibling(out)`, removed when the block raises (or is interrupted) before `swap_in` moved it."""
    tmp = temporary_sibling(out)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def swap_in(tmp: Path, out: Path, *, replace: bool) -> bool:
    """Rename the finished `tmp` to `out`. With `replace`, an existing `out` is first renamed into
    `.NAME.PID.XXXXXXXX.old/saved` and that folder is removed once `tmp` is in place (the earlier output renamed
    `replaced` first, so that a kill while it is deleted leaves nothing that looks saved); should the second rename
    fail, the earlier output goes straight back. False (and `tmp` left as it is) when `out` exists and may not be
    replaced: another process wrote it meanwhile."""
    if replace and (out.exists() or out.is_symlink()):
        old = Path(tempfile.mkdtemp(prefix=_prefix(out), suffix=".old", dir=out.parent))
        try:
            os.replace(out, old / SAVED_AS)
        except BaseException:
            old.rmdir()
            raise
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old / SAVED_AS, out)  # the earlier output goes straight back
            old.rmdir()
            raise
        with contextlib.suppress(OSError):
            os.replace(old / SAVED_AS, old / REPLACED)
        shutil.rmtree(old, ignore_errors=True)
        return True
    try:
        os.replace(tmp, out)
    except OSError:
        if out.exists() or out.is_symlink():
            return False
        raise
    return True


def write_in_place(out: Path, write: Callable[[Path], T], *, force: bool, problem: Callable[[], str | None],
                   error: Callable[[str], Exception], ready: Callable[[], None] = lambda: None) -> T:
    """The whole of it, for `corpus build` and `corpus export`: an interrupted swap undone, `problem()` (the
    output's refusal, raised as `error`), `ready()` (the writer's own refusals, after it), stale temporaries
    removed, `write(tmp)` into a staged sibling, `problem()` asked again (another process may have put something
    at `out` meanwhile, which --force must not replace), and the swap. Returns what `write` returned."""
    restore_interrupted_swap(out)
    line = problem()
    if line:
        raise error(line)
    ready()
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    with staged(out) as tmp:
        result = write(tmp)
        line = problem()
        if line:
            raise error(line)
        if not swap_in(tmp, out, replace=force):
            raise error(written_meanwhile(out, force=force))
    return result


def written_meanwhile(out: Path, *, force: bool) -> str:
    """The line for a `swap_in` that found `out` written by another process after the checks passed."""
    if force:
        return f"{out} was written by another process meanwhile; run again"
    return f"{out} was written by another process meanwhile; pass --force to replace it"


def restore_interrupted_swap(out: str | Path) -> Path | None:
    """A `swap_in` killed between its two renames left the earlier output only in `.NAME.PID.*.old/saved` (or
    `.old/build`, where malmungchi 0.1.0's `corpus build` put it): put it back at `out` when its process is gone,
    whichever command wrote it (the half-swapped new one is then removed as a stale temporary). Returns `out` when
    something was restored, else None."""
    out = Path(out)
    if out.exists() or out.is_symlink() or not out.parent.is_dir():
        return None
    for entry in sorted(out.parent.glob(f".{out.name}.*.*.old")):
        saved = _saved_output(entry)
        if saved is not None and _orphaned(entry, out.name):
            os.replace(saved, out)
            shutil.rmtree(entry, ignore_errors=True)
            return out
    return None


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Delete the temporary folders (`.NAME.PID.*.tmp` and `.old`) that killed writers of `out` left behind: those
    whose process is gone. A writer still running keeps its folder, and a `.old` folder still holding a saved
    output is kept: `restore_interrupted_swap` puts that back when `out` is missing, and while `out` is there it is
    the only copy of the earlier output, for its owner to look at."""
    if not out.parent.is_dir():
        return []
    removed = []
    for suffix in ("tmp", "old"):
        for entry in out.parent.glob(f".{out.name}.*.*.{suffix}"):
            if _orphaned(entry, out.name) and (suffix == "tmp" or _saved_output(entry) is None):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _saved_output(old: Path) -> Path | None:
    """The earlier output a `.old` folder holds, or None."""
    for name in SAVED_NAMES:
        saved = old / name
        if saved.exists() or saved.is_symlink():
            return saved
    return None


def _orphaned(entry: Path, name: str) -> bool:
    """True when `entry` is a folder `.NAME.PID.XXXXXXXX.tmp|old` of this `name` (mkdtemp's random part has no
    dot, so `.NAME.5.PID.X.tmp`, another target's, is not one) whose writing process is gone."""
    parts = entry.name[len(name) + 2:].split(".")
    if not entry.name.startswith(f".{name}.") or len(parts) != 3 or not parts[0].isdigit():
        return False
    pid = int(parts[0])
    return entry.is_dir() and pid != os.getpid() and not process_alive(pid)
