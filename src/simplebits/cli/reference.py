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


def _vocabulary(root: argparse.ArgumentParser) -> list[str]:
    """The shared flags (common.VOCABULARY) with the subcommands that take each and the old spellings
    each subcommand still accepts, read from the parsers themselves."""
    from .common import REMOVED_IN, VOCABULARY, _Deprecated, _Seeds

    takes: dict[str, list[str]] = {}
    old: dict[str, list[str]] = {}
    for path, parser in _walk(root, []):
        if not path or any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue
        name = " ".join(path)
        for a in parser._actions:
            if isinstance(a, _Deprecated):
                old.setdefault(a.new, []).append(f"`{name} {a.option_strings[0]}`")
            elif a.help != argparse.SUPPRESS:
                for flag in a.option_strings:
                    takes.setdefault(flag, []).append(name)
            if isinstance(a, _Seeds) and a.numbers:
                old.setdefault("--seeds", []).append(f"`{name} --seeds 0,1,2`")
    rows = ["| flag | meaning | subcommands | old spellings (until " + REMOVED_IN + ") |", "| --- | --- | --- | --- |"]
    for flag, meaning in VOCABULARY:
        opt = flag.split()[0]
        rows.append(f"| `{flag}` | {meaning} | {', '.join(takes.get(opt, [])) or '-'} | "
                    f"{', '.join(old.get(opt, [])) or '-'} |")
    return ["## Vocabulary", "",
            "Every subcommand spells a shared concept with the same flag. Flags are never abbreviated (`--seed` is "
            "not `--seeds`); an unknown flag is reported against the subcommand's own usage (`simplebits evaluate: "
            "error: unrecognized arguments: ...`, exit status 2). An old spelling still works until simplebits "
            f"{REMOVED_IN}, with one `note: ... is deprecated, use ...` line on stderr; it is not shown in `--help`.",
            "", *rows, ""]


def cli_reference() -> str:
    os.environ["COLUMNS"] = "100"  # stable wrapping, whatever the terminal
    from .main import build_parser

    root = build_parser()
    parts = ["# CLI reference", "",
             "Generated from the argument parsers by `python -m simplebits.cli.reference > docs/cli.md`; "
             "a test checks that it is current.", "", *_vocabulary(root)]
    for path, parser in _walk(root, ["simplebits"]):
        parts += [f"## `{' '.join(path)}`", "", "```", parser.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(cli_reference(), end="")
