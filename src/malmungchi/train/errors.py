"""Errors of the train stage. Each carries one clear line per problem (the CLI prints them and exits 2)."""

from __future__ import annotations

from malmungchi.errors import UserError


class TrainError(UserError):
    """A problem the user can fix (bad build directory, missing model, bad option): one line per problem."""


class RunMismatchError(TrainError):
    """The run directory does not match what is being loaded with it (base model, tokenizer, adapter)."""
