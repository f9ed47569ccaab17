"""The one user-facing error type: lines of text and an exit code.

Library code raises `UserError` (or a subclass that names the stage, so callers can catch narrowly); the CLI
catches it in one place (`malmungchi.cli`'s group), prints `error: LINE` per line to stderr and exits with
`exit_code`. Nothing is printed where the error is raised, so the library can be used without the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable

USAGE_ERROR = 2  # usage or I/O problem; 1 is reserved for "findings" (lint) and an empty build


class UserError(Exception):
    """A problem the user can fix, one clear line per problem (each naming the file or option and what to do).

    `UserError("line")`, `UserError("a", "b")` and `UserError(["a", "b"])` all work."""

    exit_code: int = USAGE_ERROR

    def __init__(self, *lines: str | Iterable[str], exit_code: int | None = None):
        flat: list[str] = []
        for line in lines:
            if isinstance(line, str):
                flat.append(line)
            else:
                flat.extend(line)
        super().__init__("\n".join(flat))
        self.lines = flat
        if exit_code is not None:
            self.exit_code = exit_code
