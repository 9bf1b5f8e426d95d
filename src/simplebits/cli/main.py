"""Entry point of the `simplebits` command. Parses, calls the API, prints, exits.

User errors (every :class:`simplebits.errors.SimplebitsError`) print one line on stderr and
exit with status 2; no traceback. ``SIMPLEBITS_DEBUG=1`` re-raises them for debugging. Warnings
the package itself raises (``UserWarning`` from simplebits' code: a dropped alpha channel, a
compile that fell back to eager) print as one ``simplebits CMD: note: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from ..errors import SimplebitsError
from . import bpd, condense, continual, convert, data, demo, evaluate, explain, prune, run, simplify, sweep, train_flow

#: the commands that split their work across torchrun ranks (docs/scale-out.md)
DISTRIBUTED = ("condense", "evaluate")

COMMANDS = [data, evaluate, convert, bpd, train_flow, simplify, condense, prune, continual, explain, run, sweep, demo]


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (what is wrong and where to look), exit status 2; no
    abbreviated flags (``--seed`` is never read as ``--seeds``), on this parser and on every
    subcommand's (argparse builds those with this class); an unknown flag is reported against the
    subcommand it was given to."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self._chosen(ns).error(f"unrecognized arguments: {' '.join(extras)}")
        return ns

    def _chosen(self, ns: argparse.Namespace) -> argparse.ArgumentParser:
        """The innermost subcommand's parser that ``ns`` was parsed with (``simplebits data show``)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                sub = action.choices.get(getattr(ns, action.dest, None) or "")
                if isinstance(sub, _Parser):
                    return sub._chosen(ns)
        return self


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
    ranks = int(os.environ.get("WORLD_SIZE", "1") or 1)
    who = f" [rank {os.environ.get('RANK', '?')}/{ranks}]" if ranks > 1 else ""
    try:
        if ranks > 1 and args.command not in DISTRIBUTED:
            if os.environ.get("RANK", "0") != "0":
                # rank 0 refuses, once, with exit 2; the others leave quietly: a rank that failed first
                # would have torchrun stop rank 0 before it could say why
                return 0
            print(f"simplebits {args.command}: error: started by torchrun with {ranks} processes, but only "
                  f"{' and '.join(DISTRIBUTED)} split their work across ranks; run {args.command} as one "
                  "process (for grids of runs use `simplebits sweep`)", file=sys.stderr)
            return 2
        with warnings.catch_warnings():  # restores the previous display on the way out
            warnings.showwarning = _note_printer(args.command, warnings.showwarning)
            return int(args.func(args) or 0)
    except SimplebitsError as e:
        if os.environ.get("SIMPLEBITS_DEBUG"):
            raise
        print(f"simplebits {args.command}{who}: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `simplebits ... --json | head`: the reader left; no traceback, as `cat` does
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        except OSError:
            pass
        return 141  # 128 + SIGPIPE, what the shell reports for a program stopped by a closed pipe
    except KeyboardInterrupt:
        print(f"simplebits {args.command}: {interrupted_message(args, sys.argv[1:] if argv is None else argv)}",
              file=sys.stderr)
        return 130
    finally:
        if ranks > 1:
            _leave_process_group()


def _note_printer(command: str, fallback):
    """``warnings.showwarning`` that prints simplebits' own user warnings as one note line (a
    library's warnings keep Python's format: they are about that library, with its file and line)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def show(message, category, filename, lineno, file=None, line=None):
        ours = os.path.abspath(str(filename)).startswith(package + os.sep)
        if ours and issubclass(category, UserWarning):
            print(f"simplebits {command}: note: {message}", file=sys.stderr if file is None else file)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


def interrupted_message(args: argparse.Namespace, argv: list[str]) -> str:
    """What Ctrl-C left behind and, for commands that resume, the command that continues."""
    import shlex
    from pathlib import Path

    out = getattr(args, "out", None) or getattr(args, "per_image", None)
    again = " ".join(shlex.quote(a) for a in ["simplebits", *argv] + ([] if "--resume" in argv else ["--resume"]))
    if hasattr(args, "resume") and out:
        ckpt = Path(f"{out}.ckpt")
        if ckpt.exists():
            return f"interrupted; progress up to the last checkpoint is saved in {ckpt}; continue with: {again}"
        if Path(out).is_dir() and any(Path(out).iterdir()):
            return f"interrupted; the finished parts in {out} are kept; continue with: {again}"
        return ("interrupted before the first checkpoint, so there is nothing to resume; files are written "
                "atomically: no partial output was left")
    return "interrupted; files are written atomically: no partial output was left"


def _leave_process_group() -> None:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - leaving is best effort at exit
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
