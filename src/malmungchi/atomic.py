"""Atomic file writes: a temporary file in the same folder, fsync, then rename, so a reader (or a crash) never
sees half a file. Every stage writes its outputs through here."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


TMP_PREFIX, TMP_SUFFIX = ".malmungchi-", ".tmp"
OLD_UNNAMED_TMP_AGE = 3600.0  # seconds: temporaries of older versions carry no process id


def write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data`; an existing file keeps its permission bits."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.stat(p).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", suffix=TMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def remove_orphans(folder: str | Path) -> list[Path]:
    """Delete the temporary files (`.malmungchi-PID-*.tmp`) that writers killed in `folder` left behind: those
    whose process is gone (and unnamed ones of older versions after an hour). A writer still running keeps its
    file."""
    import time

    removed = []
    try:
        entries = list(Path(folder).glob(f"{TMP_PREFIX}*{TMP_SUFFIX}"))
    except OSError:
        return removed
    for entry in entries:
        pid = entry.name[len(TMP_PREFIX):].split("-", 1)[0]
        try:
            if pid.isdigit():
                if int(pid) == os.getpid() or process_alive(int(pid)):
                    continue
            elif time.time() - entry.stat().st_mtime < OLD_UNNAMED_TMP_AGE:
                continue
            entry.unlink()
            removed.append(entry)
        except OSError:
            continue
    return removed


def umask() -> int:
    """The process's umask (read without changing it for longer than the call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OverflowError:
        return False
    return True
