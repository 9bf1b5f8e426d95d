"""User-facing exception types.

Library code raises these; only the CLI turns them into a one-line message and exit code 2.
Every message says what is wrong and, where it can, how to fix it.
"""

from __future__ import annotations

__all__ = [
    "SimplebitsError",
    "BadInputError",
    "NotFoundError",
    "CorruptFileError",
    "MismatchError",
    "UnknownNameError",
    "DivergedError",
]


class SimplebitsError(Exception):
    """Base class of every error simplebits raises on purpose (bad input, missing file...)."""

    exit_code = 2


class BadInputError(SimplebitsError, ValueError):
    """An argument or data value is invalid (wrong shape, range, NaN, label, IPC...)."""


class NotFoundError(SimplebitsError, FileNotFoundError):
    """A file, folder or data set that was asked for does not exist."""


class CorruptFileError(BadInputError):
    """A file exists but cannot be read as the format it claims to be (truncated, wrong type)."""


class MismatchError(BadInputError):
    """Two things that must agree do not (channels, image size, label space, settings)."""


class UnknownNameError(BadInputError):
    """A name looked up in a registry does not exist; the message lists the valid names."""

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...]):
        self.kind, self.name, self.valid = kind, name, list(valid)
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(sorted(self.valid))}")


class DivergedError(SimplebitsError):
    """An optimisation produced NaN/inf; the message names the iteration and the last good
    checkpoint, which is kept."""
