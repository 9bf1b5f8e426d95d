"""Read finished :func:`simplify` / :func:`simplify_baselines` directories and draw the paper's
pictures: the accuracy-vs-bpd trade-off (Fig. 5 with S8 baselines), originals above the
simplified images for each lambda (Fig. 3/4), PNG-compressed size beside flow bpd (S6) and the
retraining learning curves per lambda (S7).

Writes into ``out``: ``tradeoff.png``, ``grids.png`` (one block per data set), ``curves.png``,
``tradeoff.md`` (the table) and ``tradeoff.json`` (the same numbers).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import BadInputError, NotFoundError
from ..io import atomic_write_json, atomic_write_text, load_tensors
from .figures import comparison_grid, curves_plot, save_png, tradeoff_plot

__all__ = ["tradeoff", "read_runs"]


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BadInputError(f"{path} is not valid JSON ({e}); re-run the command that writes it") from None


def read_runs(dirs: Sequence[str | os.PathLike]) -> dict[str, dict[str, Any]]:
    """``{dataset: {"simplify": [summary rows], "cells": [...], "baselines": [...], "dirs": [...]}}``."""
    if not dirs:
        raise BadInputError("give at least one directory written by `simplebits simplify` or `simplify-baselines`")
    out: dict[str, dict[str, Any]] = {}
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise NotFoundError(f"{d} is not a directory; give the --out folder of `simplebits simplify`")
        s, b = d / "simplify.json", d / "baselines.json"
        if not s.exists() and not b.exists():
            raise NotFoundError(f"{d} holds neither simplify.json nor baselines.json; is it the --out folder of "
                                "`simplebits simplify` or `simplify-baselines`?")
        if s.exists():
            doc = _read(s)
            entry = out.setdefault(doc["dataset"], {"simplify": [], "cells": [], "baselines": [], "dirs": []})
            entry["cells"] += [dict(c, _dir=str(d)) for c in doc["cells"]]
            if doc.get("units"):
                entry.setdefault("units", doc["units"])
            if doc.get("blind_spot_note"):  # the density model does not fit the data: every bpd here says so
                entry.setdefault("blind_spot_note", doc["blind_spot_note"])
            entry["dirs"].append(str(d))
        if b.exists():
            doc = _read(b)
            entry = out.setdefault(doc["dataset"], {"simplify": [], "cells": [], "baselines": [], "dirs": []})
            entry["baselines"] += doc["points"]
            entry.setdefault("bpd_original", doc.get("bpd_original"))
            entry.setdefault("png_bpd_original", doc.get("png_bpd_original"))
            entry.setdefault("bpd_original_native", doc.get("bpd_original_native"))
            if doc.get("units"):
                entry.setdefault("units", doc["units"])
            if doc.get("blind_spot_note"):
                entry.setdefault("blind_spot_note", doc["blind_spot_note"])
            if doc.get("retrain_original"):  # baselines.json written before it was recorded lack it
                entry.setdefault("retrain_original", doc["retrain_original"])
    from .runner import SimplifyResult

    for entry in out.values():
        entry["simplify"] = SimplifyResult([c for c in entry["cells"] if c["mode"] == "simplebits"], None, 0, 0).summary()
    return out


def _fmt(ms: dict[str, float] | None, pct: bool = True) -> str:
    if not ms:
        return "-"
    k = 100 if pct else 1
    return f"{k * ms['mean']:.2f} ± {k * ms['std']:.2f}" if ms.get("n", 1) > 1 else f"{k * ms['mean']:.2f}"


def tradeoff(dirs: Sequence[str | os.PathLike], *, out: str | os.PathLike) -> dict[str, Any]:
    """Draw the trade-off plot, grids and learning curves of finished runs; returns the numbers."""
    runs = read_runs(dirs)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    series: dict[str, dict[str, list[dict[str, Any]]]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    # flow bpd: per model dimension; native: the same bits per dimension of the images as given (#19)
    md = ["| data | method | setting | flow bpd | native bpd | PNG bpd | joint | retrained | finetuned |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    grid_blocks: list[np.ndarray] = []
    for ds, e in runs.items():
        series[ds] = _series(ds, e, md)
        cs = _retrain_curves(e)
        if cs:
            curves[ds] = cs
        block = _grid_block(e)
        if block is not None:
            grid_blocks.append(block)
    files = _draw(out_dir, series, curves, grid_blocks)
    md.append("")
    md.append("flow bpd: the dequantisation bound per model dimension; native bpd: the same bits per dimension of "
              "the images as given; PNG bpd: of the images as given; accuracies % on the original test images")
    md += [f"{ds}: {e['units']['note']}" for ds, e in runs.items() if (e.get("units") or {}).get("note")]
    md += [f"note: {e['blind_spot_note']}" for e in runs.values() if e.get("blind_spot_note")]
    atomic_write_text(out_dir / "tradeoff.md", "\n".join(md) + "\n")
    files["table"] = str(out_dir / "tradeoff.md")
    doc = {"datasets": {ds: {"originals": e["originals"], "simplify": e["simplify"], "baselines": e["baselines"],
                             "blind_spot_note": e.get("blind_spot_note")} for ds, e in runs.items()},
           "files": files}
    atomic_write_json(out_dir / "tradeoff.json", doc)
    doc["table"] = "\n".join(md)
    return doc


def _native(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _originals(e: dict[str, Any]) -> dict[str, Any]:
    """The originals' figures every simplified point is read against: their bpd (simplify.json or
    baselines.json) and their accuracy under the same retraining (simplify runs record it as each
    cell's ``retrain_original``, baselines.json once for all its points; a simplify run's figure is
    preferred, the one its cells were read against)."""
    rows = e["simplify"]
    bpd = next((r["bpd_original"]["mean"] for r in rows if r.get("bpd_original")), e.get("bpd_original"))
    retrain = next((r["retrain_original"] for r in rows if (r.get("retrain_original") or {}).get("n")),
                   e.get("retrain_original"))
    png = next((r["png_bpd_original"]["mean"] for r in rows if r.get("png_bpd_original")), e.get("png_bpd_original"))
    native = next((r["bpd_original_native"]["mean"] for r in rows if r.get("bpd_original_native")),
                  e.get("bpd_original_native"))
    return {"bpd": bpd, "bpd_native": native, "png_bpd": png, "retrain": retrain}


def _series(ds: str, e: dict[str, Any], md: list[str]) -> dict[str, list[dict[str, Any]]]:
    """One data set's plot lines (the originals as a point, SimpleBits per evaluation, one per
    baseline kind); appends its rows to the markdown table ``md``."""
    lines: dict[str, list[dict[str, Any]]] = {"originals": [], "joint": [], "retrain": [], "finetune": []}
    o = e["originals"] = _originals(e)
    if o["bpd"] is not None:
        png = f"{o['png_bpd']:.2f}" if o["png_bpd"] is not None else "-"
        md.append(f"| {ds} | originals | - | {o['bpd']:.2f} | {_native(o['bpd_native'])} | {png} | - | "
                  f"{_fmt(o['retrain'])} | - |")
        lines["originals"].append({"bpd": o["bpd"], "acc": o["retrain"]["mean"] if o["retrain"] else None,
                                   "acc_std": o["retrain"]["std"] if o["retrain"] else 0.0})
    for row in e["simplify"]:
        for k in ("joint", "retrain", "finetune"):
            if row[k]:
                lines[k].append({"bpd": row["bpd"]["mean"], "acc": row[k]["mean"], "acc_std": row[k]["std"],
                                 "label": f"λ={row['lambda_sim']:g}"})
        md.append(f"| {ds} | SimpleBits | λ={row['lambda_sim']:g} | {_fmt(row['bpd'], False)} | "
                  f"{_fmt(row.get('bpd_native'), False)} | "
                  f"{_fmt(row['png_bpd'], False)} | {_fmt(row['joint'])} | {_fmt(row['retrain'])} | "
                  f"{_fmt(row['finetune'])} |")
    for p in sorted(e["baselines"], key=lambda p: (p["kind"], p["param"])):
        name = {"blur": "Gaussian blur", "jpeg": "JPEG", "mse": "MSE + bpd simplifier"}.get(p["kind"], p["kind"])
        lines.setdefault(name, []).append({"bpd": p["bpd"], "acc": (p["retrain"] or {}).get("mean"),
                                           "acc_std": (p["retrain"] or {}).get("std", 0.0)})
        setting = {"blur": "σ=", "jpeg": "q=", "mse": "λ="}.get(p["kind"], "") + f"{p['param']:g}"
        md.append(f"| {ds} | {name} | {setting} | {p['bpd']:.2f} | {_native(p.get('bpd_native'))} | "
                  f"{p['png_bpd']:.2f} | - | "
                  f"{_fmt(p['retrain'])} | - |")
    return {k: v for k, v in lines.items() if v}


def _first_seed_cells(e: dict[str, Any]) -> list[dict[str, Any]]:
    """The SimpleBits cells of the data set's lowest seed (one per lambda: what the pictures show)."""
    return [c for c in e["cells"] if c["mode"] == "simplebits" and c["seed"] == min(x["seed"] for x in e["cells"])]


def _retrain_curves(e: dict[str, Any]) -> dict[str, list[float]]:
    """S7: the retraining learning curve of each lambda (first seed), labelled with its bpd."""
    cs: dict[str, list[float]] = {}
    for c in sorted(_first_seed_cells(e), key=lambda c: (c["mode"], c["lambda_sim"], c["seed"])):
        if c["curves"].get("retrain"):
            cs[f"λ={c['lambda_sim']:g} ({c['bpd']:.2f} bpd)"] = c["curves"]["retrain"]
    return cs


def _grid_block(e: dict[str, Any]) -> np.ndarray | None:
    """Fig. 3/4: originals above one row per lambda (first seed's saved examples); None without any."""
    rows, originals = [], None
    for c in sorted(_first_seed_cells(e), key=lambda c: c["lambda_sim"]):
        ex = Path(c["_dir"]) / c["name"] / "examples.safetensors"
        if ex.exists():
            t, _ = load_tensors(ex)
            originals = t["original"] if originals is None else originals
            rows.append(t["simplified"])
    if originals is None:
        return None
    idx = torch.arange(0, originals.shape[0], 2)[:10]
    return comparison_grid(originals, rows, indices=idx)


def _draw(out_dir: Path, series: dict[str, dict[str, list[dict[str, Any]]]], curves: dict[str, dict[str, list[float]]],
          grid_blocks: list[np.ndarray]) -> dict[str, str]:
    """The trade-off plot, the learning curves and the stacked grids, each when there is something to draw."""
    files = {}
    if any(series.values()):
        tradeoff_plot(series, out_dir / "tradeoff.png")
        files["tradeoff"] = str(out_dir / "tradeoff.png")
    if curves:
        curves_plot(curves, out_dir / "curves.png")
        files["curves"] = str(out_dir / "curves.png")
    if grid_blocks:
        width = max(b.shape[1] for b in grid_blocks)
        padded = [np.pad(b, ((0, 8), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in grid_blocks]
        save_png(out_dir / "grids.png", np.concatenate(padded, axis=0))
        files["grids"] = str(out_dir / "grids.png")
    return files
