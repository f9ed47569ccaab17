"""Errors of the train stage. Each carries one clear line per problem (the CLI prints them and exits 2)."""

from __future__ import annotations


class TrainError(Exception):
    """A problem the user can fix (bad build directory, missing model, bad option): one line per problem."""

    def __init__(self, *lines: str):
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class RunMismatchError(TrainError):
    """The run directory does not match what is being loaded with it (base model, tokenizer, adapter)."""
