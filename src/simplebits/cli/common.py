"""Helpers shared by the subcommands: output, input resolution. No logic of its own."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..data import ImageSet
from ..data.condensed import NORMALIZATIONS
from ..data.inputs import is_path_like, load_images

__all__ = ["add_json", "add_data_root", "add_import_options", "add_force", "check_out", "emit", "int_list",
           "looks_like_file", "load_input", "table", "OUT_KINDS"]


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of text")


def add_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", metavar="DIR", default=None,
                   help="folder holding the data set's files (default: per source; $SIMPLEBITS_DATA/<name>)")


def add_import_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reading condensed sets made by other tools")
    g.add_argument("--format", default="auto", choices=["auto", "simplebits", "dc", "mtt", "idc", "kip"],
                   help="tool that wrote the file (auto: from the file name and contents)")
    g.add_argument("--normalization", default=None, choices=sorted(NORMALIZATIONS),
                   help="mean/std the tool normalised with (default: inferred from the file's name and contents, "
                        "e.g. res_DC_FashionMNIST_*.pt -> fashion-mnist; asked for when it cannot be told)")
    g.add_argument("--factor", type=int, default=1, help="multi-formation factor of IDC/DREAM files (default 1)")
    g.add_argument("--labels", default=None, metavar="FILE", help="MTT labels file (default: labels_best.pt beside)")
    g.add_argument("--experiment", type=int, default=0, help="experiment index in a DC res_*.pt file (default 0)")
    g.add_argument("--clamp", action="store_true",
                   help="clamp the denormalised values to [0, 1] (default: keep them as the tool trained on them; "
                        "DC/DSA/DM never clamp)")


def emit(args: argparse.Namespace, obj: Any, text: str) -> None:
    """Print the result (as JSON with --json); under torchrun only rank 0 prints."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and int(os.environ.get("RANK", "0") or 0) != 0:
        return
    if getattr(args, "json", False):
        json.dump(obj, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


def int_list(text: str, option: str, *, minimum: int | None = None, example: str = "1,2,5") -> list[int]:
    """``"1,2,5"`` -> ``[1, 2, 5]``; a clear error naming ``option`` otherwise."""
    from ..errors import BadInputError

    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise BadInputError(f"{option} takes integers separated by commas (e.g. {example}), got {text!r}") from None
    if not vals or (minimum is not None and any(v < minimum for v in vals)):
        raise BadInputError(f"{option} takes integers >= {minimum} separated by commas, got {text!r}"
                            if minimum is not None else f"{option} is empty")
    return vals


def looks_like_file(arg: str) -> bool:
    return is_path_like(arg)


def load_input(arg: str, args: argparse.Namespace, *, split: str = "train", size=None) -> ImageSet:
    """A data set spec, a condensed-set file (ours or another tool's), an .npz, images or a folder."""
    return load_images(
        arg, split=split, root=getattr(args, "data_root", None), size=size,
        format=getattr(args, "format", "auto"), normalization=getattr(args, "normalization", None),
        factor=getattr(args, "factor", 1), labels_path=getattr(args, "labels", None),
        experiment=getattr(args, "experiment", 0), clamp=getattr(args, "clamp", False),
    )


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cols = [[str(h)] + [str(r[i]) for r in rows] for i, h in enumerate(headers)]
    widths = [max(len(c) for c in col) for col in cols]
    line = lambda vals: "  ".join(str(v).ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


# --- One rule for every command that writes --out -------------------------------------------

#: what each kind of output file is, to tell a file this kind of command wrote from anything else
OUT_KINDS = {
    "condensed": "simplebits.condensed/1",
    "classifier": "simplebits.classifier/1",
    "flow": "simplebits.flow/1",
}
_NAME_MAX = 255


def add_force(p: argparse.ArgumentParser, what: str = "--out") -> None:
    p.add_argument("--force", action="store_true",
                   help=f"replace an existing {what} that is not a file this command writes (default: refuse)")


def _written_by_us(path: Path, kind: str, csv_header: str | None) -> bool:
    """True when ``path`` is a file of the kind this command writes (so replacing it is a rerun)."""
    if kind in ("csv", "html"):  # recognised by how the file starts
        start = csv_header if kind == "csv" else "<!DOCTYPE html>"
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return start is not None and fh.read(len(start)) == start
        except OSError:
            return False
    if kind.startswith("json:"):  # a JSON object holding the given keys (our results files)
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.loads(fh.read(64 * 1024**2))
        except (OSError, ValueError, RecursionError):
            return False
        return isinstance(doc, dict) and all(k in doc for k in kind[5:].split(","))
    from ..errors import SimplebitsError
    from ..io import read_metadata

    try:
        meta = read_metadata(path)
    except SimplebitsError:
        return False
    return isinstance(meta, dict) and meta.get("format") == OUT_KINDS[kind]


def _probe_writable(folder: Path, option: str) -> None:
    """Create and remove a file in ``folder`` (the only test that /proc, read-only mounts and
    permissions all answer truthfully)."""
    import tempfile

    from ..errors import BadInputError

    try:
        fd, tmp = tempfile.mkstemp(prefix=".simplebits-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise BadInputError(f"{option} {folder}: cannot write in this folder ({e.strerror or e}); "
                            "choose a writable place") from None


def check_out(path: str | os.PathLike, *, kind: str, force: bool = False, option: str = "--out",
              folder: bool = False, csv_header: str | None = None, resume: bool = False) -> Path:
    """Check an output path before any work: one line (exit 2) instead of a traceback at the end.

    - the name fits the file system (each part at most 255 bytes) and is not a folder (or, with
      ``folder=True``, not a file);
    - its folder exists or can be made, and a file can be written there;
    - an existing file is replaced only when it is a file of ``kind`` (this kind of command wrote
      it; ``csv`` files are recognised by the start of their header line, ``html`` by
      ``<!DOCTYPE html>``, ``json:KEY,KEY`` by a JSON object holding those keys) or with ``--force``; an existing
      ``folder`` output must be empty or hold this command's files (``kind`` names the file in it
      that marks them). ``resume`` skips the replacement rule (the command continues the file).
    """
    from ..errors import BadInputError

    p = Path(path)
    if str(path).strip() == "":
        raise BadInputError(f"{option} is empty; give a file name")
    for part in p.parts:
        if len(os.fsencode(part)) > _NAME_MAX:
            raise BadInputError(f"{option}: the name {part[:40]!r}... is {len(os.fsencode(part))} bytes, over the "
                                f"file system's {_NAME_MAX}; choose a shorter name")
    if folder:
        if p.exists() and not p.is_dir():
            raise BadInputError(f"{option} {p} is a file, but this command writes a folder; choose another path")
    elif p.is_dir():
        raise BadInputError(f"{option} {p} is a folder; give a file name (e.g. {p / ('out' + p.suffix)})")
    parent = p if folder else p.parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(f"{option} {p}: {existing} is a file, not a folder; choose another path")
    _probe_writable(existing, option)
    from ..io import remove_stale_temps

    if folder:  # temp files that killed writes left: removed before this run starts
        remove_stale_temps(p, recursive=True)
    else:
        remove_stale_temps(p.parent, stem=p.name)
    if resume or force:
        return p
    if folder:
        if p.is_dir() and any(p.iterdir()) and not (p / kind).exists():
            raise BadInputError(f"{option} {p} is a folder holding other files; choose an empty or new folder, "
                                "or pass --force to write into it")
    elif p.exists() and not _written_by_us(p, kind, csv_header):
        what = (f"a {kind} file" if kind in OUT_KINDS else "the CSV this command writes" if kind == "csv"
                else "an HTML report" if kind == "html" else "a results file this command writes")
        raise BadInputError(f"{option} {p} exists and is not {what}; choose another name or pass --force "
                            "to replace it")
    return p
