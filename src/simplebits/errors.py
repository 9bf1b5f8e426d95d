"""User-facing exception types.

Library code raises these; only the CLI turns them into a one-line message and exit code 2.
Every message says what is wrong and, where it can, how to fix it.
"""

from __future__ import annotations

import os as _os
from contextlib import contextmanager as _contextmanager

__all__ = [
    "SimplebitsError",
    "BadInputError",
    "NotFoundError",
    "CorruptFileError",
    "MismatchError",
    "UnknownNameError",
    "DivergedError",
    "reading",
    "check_input_size",
    "max_input_bytes",
    "max_image_pixels",
    "check_expansion",
    "max_expansion",
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


# --- The one boundary between readers of user files and the rest of the package -------------


#: Decoded bytes one file may make (arrays, text, pixels) before it is refused, 2 GiB by default;
#: ``SIMPLEBITS_MAX_INPUT_BYTES`` raises it for the rare giant data set. Readers check a file's
#: declared sizes against this cap and against the file's own length *before* they allocate.
DEFAULT_MAX_INPUT_BYTES = 2 * 1024**3
#: Pixels one image may declare (width x height), 32 Mpx by default (8K UHD fits; a float32 RGB copy
#: of the largest image stays under 400 MB); ``SIMPLEBITS_MAX_IMAGE_PIXELS``.
DEFAULT_MAX_IMAGE_PIXELS = 32 * 1024**2


def _env_int(name: str, default: int) -> int:
    raw = _os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise BadInputError(f"{name}={raw!r} is not a number; set it to a byte/pixel count such as 4e9") from None
    if value <= 0:
        raise BadInputError(f"{name}={raw!r} must be positive")
    return value


def max_input_bytes() -> int:
    """The cap on decoded bytes per input file (``SIMPLEBITS_MAX_INPUT_BYTES``, default 2 GiB)."""
    return _env_int("SIMPLEBITS_MAX_INPUT_BYTES", DEFAULT_MAX_INPUT_BYTES)


def max_image_pixels() -> int:
    """The cap on pixels per image file (``SIMPLEBITS_MAX_IMAGE_PIXELS``, default 32 Mpx)."""
    return _env_int("SIMPLEBITS_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS)


#: Decoded bytes per compressed byte a file may unpack to (beyond a 64 MiB allowance), 100 by default;
#: ``SIMPLEBITS_MAX_EXPANSION``. Real image data compresses 1.5-10x; a file that asks for more is a
#: lying header or a compression bomb (a 1 MB gzip of zeros unpacks to 1 GB, 4 GB as float32 images).
DEFAULT_MAX_EXPANSION = 100
_EXPANSION_ALLOWANCE = 64 * 1024**2


def max_expansion() -> int:
    """The cap on decoded bytes per compressed byte (``SIMPLEBITS_MAX_EXPANSION``, default 100)."""
    return _env_int("SIMPLEBITS_MAX_EXPANSION", DEFAULT_MAX_EXPANSION)


def check_expansion(declared: int, packed: int, where: object, what: str = "data") -> None:
    """Refuse, before decompressing, a compressed part that declares more than ``max_expansion()`` x
    its packed size (+ 64 MiB): a lying header or a compression bomb; then the input cap."""
    ratio = max_expansion()
    if declared > ratio * max(int(packed), 0) + _EXPANSION_ALLOWANCE:
        raise CorruptFileError(
            f"{where}: {what} declares {declared:,} bytes packed into {packed:,}, more than {ratio}x its compressed "
            "size (a corrupt header or a compression bomb; for genuinely so compressible data set "
            "SIMPLEBITS_MAX_EXPANSION higher)"
        )
    check_input_size(declared, where, what)


def check_input_size(nbytes: int, where: object, what: str = "data") -> None:
    """Refuse, before allocating, a file whose header asks for more than the input cap."""
    cap = max_input_bytes()
    if nbytes > cap:
        raise CorruptFileError(
            f"{where}: its header declares {nbytes:,} bytes of {what}, more than the {cap:,}-byte limit "
            "(a corrupt header, or a giant data set: set SIMPLEBITS_MAX_INPUT_BYTES to allow it)"
        )


@_contextmanager
def reading(where: object, what: str = "file"):
    """Map *every* failure while reading a user's file to one :class:`CorruptFileError` naming it.

    Our own errors pass through unchanged; MemoryError, RecursionError and whatever torch, numpy,
    zipfile, json, PIL, scipy or tomllib raise on a damaged file become one line
    ``FILE: cannot read WHAT (Type: first line of the message)``. KeyboardInterrupt passes.
    """
    try:
        yield
    except SimplebitsError:
        raise
    except Exception as e:  # noqa: BLE001 - the point: no reader failure escapes as a traceback
        msg = (str(e).strip().splitlines() or [""])[0][:200]
        detail = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
        raise CorruptFileError(f"{where}: cannot read {what}, truncated or corrupt ({detail})") from None
