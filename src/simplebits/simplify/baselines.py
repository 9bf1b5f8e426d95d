"""Simplification baselines (paper S8): Gaussian blur (sigma sweep), JPEG (quality sweep) and a
simplifier trained on MSE-to-input + lambda * bpd. Each is scored with the same density model
and judged the way SimpleBits is: a fresh classifier retrained on the transformed training set,
tested on the original test images (:func:`~simplebits.simplify.evaluate.retrain`).

Files under ``out=DIR``: ``DIR/baselines.json`` (one entry per point, rewritten atomically after
each, so an interrupted sweep keeps its finished points and ``resume`` skips them),
``DIR/baselines.png`` (originals above one row per blur sigma and JPEG quality),
``DIR/originals.json`` (the originals retrained the same way, the figure every point is read
against) and for the MSE simplifier the cells of :func:`~simplebits.simplify.runner.simplify`
(``DIR/mse-lam<L>-s<seed>/``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from ..data import ImageSet, fingerprint
from ..density import BpdTerm
from ..density.bpd import blind_spot_note, blind_spots
from ..density.compress import jpeg_roundtrip, png_bpd
from ..errors import BadInputError
from ..io import atomic_write_json
from .config import SimplifyConfig, make_simplify_config
from .evaluate import retrain
from .figures import comparison_grid, save_png
from .joint import quantize
from .runner import SimplifyResult, _check_data, _mean_std, retrain_originals, simplify
from ..runtime import resolve_device

__all__ = ["gaussian_blur", "jpeg", "simplify_baselines", "DEFAULT_SIGMAS", "DEFAULT_QUALITIES", "DEFAULT_MSE_LAMBDAS"]

DEFAULT_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0)
DEFAULT_QUALITIES = (5, 10, 25, 50, 90)
DEFAULT_MSE_LAMBDAS = (0.001, 0.003, 0.01, 0.03)  # MSE is ~1e-2 per pixel, bpd ~1-4: these span the range


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), kernel radius ``ceil(3 sigma)``, reflect padding."""
    if not (isinstance(sigma, (int, float)) and sigma > 0 and math.isfinite(sigma)):
        raise BadInputError(f"blur sigma must be a positive number; got {sigma!r}")
    r = max(1, int(math.ceil(3 * sigma)))
    r = min(r, images.shape[-1] - 1, images.shape[-2] - 1)  # reflect padding needs r < size
    t = torch.arange(-r, r + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = images.shape[1]
    x = F.pad(images, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return quantize(x)


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG encode at ``quality`` (1-95) and decode."""
    return jpeg_roundtrip(images, quality)


def _load(path: Path) -> dict[str, Any]:
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
    return {}


def simplify_baselines(
    train: ImageSet,
    test: ImageSet,
    *,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    qualities: Sequence[int] = DEFAULT_QUALITIES,
    mse_lambdas: Sequence[float] = DEFAULT_MSE_LAMBDAS,
    seeds: Sequence[int] = (0,),
    mse_seeds: Sequence[int] | None = None,
    config: SimplifyConfig | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = True,
    force: bool = False,
    device: str | torch.device = "auto",
    progress: bool | None = None,
) -> dict[str, Any]:
    """Evaluate the S8 baselines on ``train``/``test``; returns ``{"dataset", "test"`` (the sets'
    names), ``"points": [...], "units", "bpd_original", "bpd_original_native", "png_bpd_original",
    "retrain_original", "retrain_original_runs", "seconds"}``. ``bpd`` figures are per model
    dimension; ``*_native`` the same bits per dimension of the images as given (``units``:
    :func:`simplebits.density.bpd.units`).

    Every point is read against the originals: their bpd, their PNG figure and their accuracy under
    the same retraining (``retrain_original``: a fresh classifier per seed of ``seeds`` trained on
    ``train`` itself, as the blur and JPEG points are on theirs; cached in ``out/originals.json``,
    which a ``simplify`` run with the same settings and seed shares).

    ``seeds`` are the retraining seeds of the blur and JPEG points and the joint-training seeds
    of the MSE simplifier (``mse_seeds`` overrides the latter; each MSE run is then retrained
    ``config.retrain_seeds`` times).

    Each point: ``{"kind": "blur"|"jpeg"|"mse", "param": sigma/quality/lambda, "bpd", "png_bpd",
    "retrain": {"mean", "std", "n"}, "accuracies": [...per seed], "curves": [...]}``. ``config``
    supplies the retraining settings (epochs, batch, optimiser) and the MSE simplifier's size;
    use the same config as the SimpleBits run being compared.
    """
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    cfg = config or make_simplify_config()
    _check_baseline_inputs(train, test, sigmas, qualities)
    dev = torch.device(device)
    density = BpdTerm(cfg.density, shape=train.shape, device=dev)
    out_dir = Path(out) if out is not None else None
    doc_path = out_dir / "baselines.json" if out_dir else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    done = _done_points(doc_path, cfg, train, resume=resume, force=force)
    t0 = time.perf_counter()
    orig_each = density.score(train.images)
    bpd_orig = float(orig_each.mean())
    originals = retrain_originals(train, test, cfg, seeds=list(seeds), out_dir=out_dir, device=dev, progress=progress)
    units = density.units(train.shape)
    figures = {"units": units, "bpd_original": bpd_orig, "bpd_original_native": bpd_orig * units["native_per_model"],
               "png_bpd_original": float(png_bpd(train.images).mean()),
               "retrain_original": _mean_std(originals["retrain_runs"]),
               "retrain_original_runs": list(originals["retrain_runs"]),
               "blind_spots": blind_spots(orig_each, units["native_per_model"])}
    figures["blind_spot_note"] = blind_spot_note(figures["blind_spots"], len(train), density.spec, train.name)
    write = functools.partial(_write_doc, doc_path, train, test, cfg, figures, done)
    points, rows_for_grid = _transform_points(train, test, cfg, sigmas, qualities, seeds, done=done, write=write,
                                              density=density, device=dev, progress=progress)
    if mse_lambdas:
        res = simplify(train, test, lambdas=list(mse_lambdas), seeds=list(seeds if mse_seeds is None else mse_seeds),
                       config=replace(cfg, mode="mse"), out=out_dir,
                       resume=True, force=force, device=dev, progress=progress)
        for p in _mse_points(res):
            done[("mse", p["param"])] = p
            points.append(p)
        write()
    for p in points:  # both units of every flow figure (points written before they were recorded included)
        p["bpd_native"] = p["bpd"] * units["native_per_model"]
    if out_dir is not None and rows_for_grid:
        save_png(out_dir / "baselines.png", comparison_grid(train.images, rows_for_grid, labels=train.labels,
                                                            num_classes=train.num_classes))
    write()
    return {"dataset": train.name, "test": test.name, "points": points, **figures,
            "seconds": round(time.perf_counter() - t0, 2)}


def _write_doc(doc_path: Path | None, train: ImageSet, test: ImageSet, cfg: SimplifyConfig,
               figures: dict[str, Any], done: dict[tuple[str, Any], dict[str, Any]]) -> None:
    """``baselines.json`` with the originals' figures and every point finished so far (rewritten
    after each, so an interrupted sweep keeps them); nothing without an output directory."""
    if doc_path is not None:
        atomic_write_json(doc_path, {"dataset": train.name, "fingerprint": fingerprint(train), "test": test.name,
                                     "digest": cfg.digest(), "config": cfg.to_dict(), **figures,
                                     "points": list(done.values())})


def _check_baseline_inputs(train: ImageSet, test: ImageSet, sigmas: Sequence[float], qualities: Sequence[int]) -> None:
    """The data and every blur / JPEG setting, checked before any work."""
    _check_data(train, test)
    for s in sigmas:
        gaussian_blur(train.images[:1], float(s))  # validate before any work
    for q in qualities:
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 95:
            raise BadInputError(f"JPEG quality must be an integer in 1..95; got {q!r}")


def _done_points(doc_path: Path | None, cfg: SimplifyConfig, train: ImageSet, *, resume: bool,
                 force: bool) -> dict[tuple[str, Any], dict[str, Any]]:
    """Points an interrupted or earlier sweep finished, by (kind, param), to skip when resuming;
    a file made with other settings or data is refused unless ``force`` (then it is replaced)."""
    doc = _load(doc_path) if doc_path is not None and resume and not force else {}
    # the same images and labels, by content (a file's name depends on how its path was written); files
    # written before the fingerprint was recorded are matched by name
    same_data = (doc.get("fingerprint") == fingerprint(train) if "fingerprint" in doc
                 else doc.get("dataset") == train.name)
    if doc and (doc.get("digest") != cfg.digest() or not same_data):
        if not force:
            raise BadInputError(f"{doc_path} holds baselines made with other settings or data; pass --force "
                                "to replace them or choose another --out")
        doc = {}
    return {(p["kind"], p["param"]): p for p in doc.get("points", [])}


def _transform_points(train: ImageSet, test: ImageSet, cfg: SimplifyConfig, sigmas: Sequence[float],
                      qualities: Sequence[int], seeds: Sequence[int], *, done: dict[tuple[str, Any], dict[str, Any]],
                      write: Callable[[], None], density: BpdTerm, device: torch.device,
                      progress: bool | None) -> tuple[list[dict[str, Any]], list[torch.Tensor]]:
    """The blur and JPEG points, each retrained per seed unless ``done`` holds it, recorded in
    ``done`` and written as it finishes; returns them and the transformed sets (for the grid)."""
    points: list[dict[str, Any]] = []
    rows_for_grid: list[torch.Tensor] = []
    transforms = [("blur", float(s), lambda x, s=float(s): gaussian_blur(x, s)) for s in sigmas]
    transforms += [("jpeg", int(q), lambda x, q=int(q): jpeg(x, q)) for q in qualities]
    for kind, param, fn in transforms:
        images = fn(train.images)
        rows_for_grid.append(images)
        if (kind, param) in done:
            points.append(done[(kind, param)])
            continue
        ds = ImageSet(images, train.labels, train.classes, {**train.meta, "name": f"{train.name}:{kind}{param:g}"})
        runs = [retrain(ds, test, cfg=cfg, seed=s, device=device, progress=progress) for s in seeds]
        p = {"kind": kind, "param": param, "bpd": float(density.score(images).mean()),
             "png_bpd": float(png_bpd(images).mean()),
             "retrain": _mean_std([r["accuracy"] for r in runs]), "accuracies": [r["accuracy"] for r in runs],
             "curves": [r["curve"] for r in runs], "seeds": list(seeds)}
        done[(kind, param)] = p
        points.append(p)
        write()
    return points, rows_for_grid


def _mse_points(res: SimplifyResult) -> list[dict[str, Any]]:
    """One point per lambda of the MSE simplifier's :func:`simplify` result (mean over its seeds)."""
    points = []
    for row in res.summary():
        cells = [c for c in res.cells if c["lambda_sim"] == row["lambda_sim"]]
        points.append({"kind": "mse", "param": row["lambda_sim"], "bpd": row["bpd"]["mean"],
                       "png_bpd": row["png_bpd"]["mean"], "retrain": row["retrain"],
                       "accuracies": [c["accuracy"]["retrain"] for c in cells],
                       "curves": [c["curves"].get("retrain") for c in cells], "seeds": row["seeds"]})
    return points
