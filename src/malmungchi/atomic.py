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
    """Whether process `pid` is running (someone else's too), asked without signalling it."""
    if os.name == "nt":  # there os.kill(pid, 0) is no probe: it sends Ctrl-C to process group `pid`
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OverflowError:
        return False
    return True


def _windows_process_alive(pid: int) -> bool:
    """OpenProcess + GetExitCodeProcess: a process that exists and has not exited (STILL_ACTIVE); one that may not
    be opened (access denied) exists."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    if not 0 < pid <= 0xFFFFFFFF:
        return False
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
