"""Helpers shared by the subcommands: output, input resolution. No logic of its own."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..data import ImageSet
from ..data.condensed import NORMALIZATIONS
from ..data.inputs import is_path_like, load_images

__all__ = ["add_json", "add_data_root", "add_import_options", "emit", "int_list", "looks_like_file", "load_input", "table"]


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
