"""Entry point of the `simplebits` command. Parses, calls the API, prints, exits.

User errors (every :class:`simplebits.errors.SimplebitsError`) print one line on stderr and
exit with status 2; no traceback. ``SIMPLEBITS_DEBUG=1`` re-raises them for debugging.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import SimplebitsError
from . import bpd, condense, continual, convert, data, demo, evaluate, explain, prune, run, simplify, train_flow

COMMANDS = [data, evaluate, convert, bpd, train_flow, simplify, condense, prune, continual, explain, run, demo]


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (what is wrong and where to look), exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = _Parser(
        prog="simplebits",
        description="Make training data smaller and simpler, and see what a classifier needs from its inputs.",
    )
    p.add_argument("--version", action="version", version=f"simplebits {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in COMMANDS:
        mod.register(sub)
    return p




def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 with a usage line on bad flags
    try:
        return int(args.func(args) or 0)
    except SimplebitsError as e:
        if os.environ.get("SIMPLEBITS_DEBUG"):
            raise
        print(f"simplebits {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("simplebits: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
