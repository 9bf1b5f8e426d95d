"""Generate docs/cli.md from the parsers: ``python -m simplebits.cli.reference > docs/cli.md``."""

from __future__ import annotations

import argparse
import os


def _walk(parser: argparse.ArgumentParser, path: list[str]):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + [name])


def cli_reference() -> str:
    os.environ["COLUMNS"] = "100"  # stable wrapping, whatever the terminal
    from .main import build_parser

    parts = ["# CLI reference", "",
             "Generated from the argument parsers by `python -m simplebits.cli.reference > docs/cli.md`; "
             "a test checks that it is current.", ""]
    for path, parser in _walk(build_parser(), ["simplebits"]):
        parts += [f"## `{' '.join(path)}`", "", "```", parser.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(cli_reference(), end="")
