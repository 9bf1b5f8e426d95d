"""`simplebits data list` and `simplebits data show NAME`."""

from __future__ import annotations

import argparse

from ..data import list_sources
from .common import add_data_root, add_import_options, add_json, emit, load_input, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list the data sources and inspect one",
                       description="List the registered data sources, or show one data set or condensed-set file.")
    dsub = p.add_subparsers(dest="data_cmd", metavar="{list,show}", required=True)
    pl = dsub.add_parser("list", help="list the registered data sources",
                         description="List every registered data source with its splits.")
    add_json(pl)
    pl.set_defaults(func=run_list)
    ps = dsub.add_parser("show", help="counts per class, shape and where the files were found",
                         description="Load NAME (a data set spec such as fashion-mnist:test, npz:PATH, "
                                     "image-folder:PATH, or a condensed-set file) and describe it.")
    ps.add_argument("name", metavar="NAME")
    ps.add_argument("--split", default="train", help="split when NAME names none (default train)")
    add_data_root(ps)
    add_import_options(ps)
    add_json(ps)
    ps.set_defaults(func=run_show)


def run_list(args: argparse.Namespace) -> int:
    infos = list_sources()
    rows = [[i.name + (":PATH" if i.takes_path else ""), ",".join(i.splits) if not i.takes_path else "-",
             "yes" if i.builtin else "", i.description] for i in infos]
    obj = [{"name": i.name, "splits": list(i.splits), "takes_path": i.takes_path, "builtin": i.builtin,
            "description": i.description} for i in infos]
    emit(args, obj, table(["name", "splits", "bundled", "description"], rows))
    return 0


def run_show(args: argparse.Namespace) -> int:
    ds = load_input(args.name, args, split=args.split)
    d = ds.describe()
    d["meta"] = {k: v for k, v in ds.meta.items() if k not in ("condensed",)} | (
        {"condensed": ds.meta["condensed"]} if "condensed" in ds.meta else {})
    lines = [
        f"name:      {d['name']}",
        f"images:    {d['n']}  shape (C,H,W) = {tuple(d['shape'])}",
        f"classes:   {d['num_classes']}",
        f"found at:  {ds.meta.get('found_at') or ds.meta.get('imported_from') or ds.meta.get('name')}",
    ]
    frac = ds.out_of_range_fraction()
    if frac > 0.0:
        lo, hi = ds.value_range()
        d["range"] = {"kind": "unbounded", "min": lo, "max": hi, "out_of_range_fraction": frac}
        lines.append(f"range:     unbounded [{lo:.3g}, {hi:.3g}], {100 * frac:.2f}% of values outside [0, 1] "
                     "(kept as the tool made them; PNGs and bpd use the clamped view)")
    if ds.meta.get("factor", 1) > 1:
        lines.append(f"factor:    {ds.meta['factor']} (each stored image decodes into {ds.meta['factor'] ** 2})")
    lines.append(table(["class", "name", "images"], [[i, c, n] for i, (c, n) in enumerate(zip(ds.classes, ds.counts()))]))
    emit(args, d, "\n".join(lines))
    return 0
