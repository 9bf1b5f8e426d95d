"""The resumable SimpleBits runner: :func:`simplify` trains one joint run per (lambda, seed) cell.

Files under ``out=DIR`` (every one written atomically):

``DIR/simplify.json``                 every finished cell and the per-lambda summary (mean ± std over seeds)
``DIR/originals.json``                the originals retrained the same way (each cell's ``retrain_original``)
``DIR/<cell>/simplifier.safetensors`` the trained simplifier (rebuild with :func:`load_simplifier`)
``DIR/<cell>/classifier.safetensors`` the jointly trained classifier
``DIR/<cell>/simplified.safetensors`` the simplified training set (condensed-set format; bpd in metadata)
``DIR/<cell>/grid.png``               originals above their simplified versions
``DIR/<cell>/result.json``            settings, per-epoch log, bpd (flow and PNG), the three accuracies,
                                      the ``select_within`` checks and the epoch kept,
                                      retraining learning curve, timings
``DIR/<cell>/checkpoint.ckpt``        after every epoch while the cell runs; removed when it finishes

Cells are named ``lam<L>-s<seed>`` (``mse-lam<L>-s<seed>`` for the MSE baseline). A finished cell
whose settings match is skipped; one with other settings is refused unless ``force``.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from ..data import ImageSet
from ..data.condensed import save_condensed
from ..data.imageset import fingerprint, flip_allowed
from ..density import BpdTerm
from ..density.compress import png_bpd
from ..density.bpd import blind_spot_note, blind_spots
from ..density.summary import BITS_DEFINITION
from ..errors import BadInputError, MismatchError
from ..io import atomic_write_json, load_state, save_state, save_tensors
from ..progress import progress_bar
from ..runtime import peak_rss_mb
from ..settings import settings_difference
from ..train import accuracy, check_compatible
from ..train.checkpoint import load_classifier, save_classifier
from .config import SimplifyConfig, config_from_dict, make_simplify_config
from .evaluate import fit, retrain, retrain_seeds
from .figures import comparison_grid, pick_per_class, save_png
from .joint import JointTrainer
from .select import EpochSelector
from ..runtime import resolve_device

__all__ = ["simplify", "SimplifyResult", "load_simplifier", "cell_name", "check_lambdas"]


def cell_name(cfg: SimplifyConfig) -> str:
    prefix = "mse-" if cfg.mode == "mse" else ""
    return f"{prefix}lam{cfg.lambda_sim:g}-s{cfg.seed}"


def check_lambdas(lambdas: Sequence[float]) -> list[float]:
    out = []
    for lam in lambdas:
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam != lam or lam < 0 or lam == float("inf"):
            raise BadInputError(f"lambda-sim must be a finite number >= 0; got {lam!r}")
        out.append(float(lam))
    if not out:
        raise BadInputError("no lambda values given; pass at least one --lambda-sim")
    return out


def _mean_std(vals: list[float]) -> dict[str, float] | None:
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


@dataclass
class SimplifyResult:
    """All cells of a :func:`simplify` call and the per-lambda summary."""

    cells: list[dict[str, Any]]
    out: str | None
    seconds: float
    peak_rss_mb: float
    # cell name -> simplified training set: in the training set's order for cells run now; read back
    # from simplified.safetensors (class-ordered, as every condensed-set file) for finished cells skipped
    simplified: dict[str, ImageSet] = field(default_factory=dict)
    # the units of the bpd figures (simplebits.density.bpd.units): bits per model dimension, and the
    # factor to bits per dimension of the images as given (the cells' *_native figures)
    units: dict[str, Any] | None = None
    # training images the density model codes in 8 bpd or more (its blind spots), and the line saying so
    blind_spots: int = 0
    blind_spot_note: str | None = None

    def summary(self) -> list[dict[str, Any]]:
        """One row per lambda: mean ± std over seeds of bpd and the three accuracies."""
        by: dict[tuple[str, float], list[dict[str, Any]]] = {}
        for c in self.cells:
            by.setdefault((c["mode"], c["lambda_sim"]), []).append(c)
        rows = []
        for (mode, lam), cs in sorted(by.items()):
            rows.append({
                "mode": mode, "lambda_sim": lam, "seeds": [c["seed"] for c in cs],
                "bpd_original": _mean_std([c["bpd_original"] for c in cs]),
                "bpd": _mean_std([c["bpd"] for c in cs]), "png_bpd": _mean_std([c["png_bpd"] for c in cs]),
                # the same bits per dimension of the images as given (None: a cell written before they were recorded)
                "bpd_original_native": _mean_std([c.get("bpd_original_native") for c in cs]),
                "bpd_native": _mean_std([c.get("bpd_native") for c in cs]),
                "png_bpd_original": _mean_std([c.get("png_bpd_original") for c in cs]),  # None: written before
                "joint": _mean_std([c["accuracy"]["joint"] for c in cs]),
                # pooled over joint seeds and retraining seeds (each cell keeps every retraining run)
                "retrain": _mean_std([a for c in cs for a in (c["accuracy"].get("retrain_runs")
                                                               or [c["accuracy"]["retrain"]])]),
                "finetune": _mean_std([c["accuracy"]["finetune"] for c in cs]),
                "retrain_original": _mean_std(next((c["accuracy"].get("retrain_original_runs") for c in cs
                                                    if c["accuracy"].get("retrain_original_runs")), [])),
            })
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"cells": self.cells, "summary": self.summary(), "units": self.units,
                "blind_spots": self.blind_spots, "blind_spot_note": self.blind_spot_note, "out": self.out,
                "seconds": round(self.seconds, 2), "peak_rss_mb": round(self.peak_rss_mb, 1)}


def load_simplifier(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Read a simplifier written by :func:`simplify` (safetensors + JSON; nothing unpickled)."""
    model, info = load_classifier(path, device=device)
    if info.model != "unet-simplifier":
        raise MismatchError(f"{path} holds a {info.model!r} network, not a simplifier")
    return model


def _check_data(train: ImageSet, test: ImageSet | None) -> None:
    train.require_unit_range("SimpleBits (the simplifier and the density model)")
    if train.num_classes < 2 or len(set(train.labels.tolist())) < 2:
        raise BadInputError(
            f"{train.name!r} has one class: a classifier learns nothing from it, so nothing tells the simplifier "
            "what to keep; use a data set with at least two classes"
        )
    if test is not None:
        check_compatible(train, test)


def _sample_for_log(n: int, seed: int, k: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[: min(k, n)]


def retrain_originals(train: ImageSet, test: ImageSet, cfg: SimplifyConfig, *, out_dir: Path | None = None,
                      device: str | torch.device = "cpu", progress: bool | None = None,
                      seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """The originals' figure under the same evaluation (b): ``cfg.retrain_seeds`` fresh classifiers
    trained on ``train`` itself (the seeds cell ``cfg.seed`` uses; ``seeds`` names others, e.g. the
    retraining seeds of the blur and JPEG baselines), tested on ``test``. Every simplified accuracy
    is read against it. Cached in ``out_dir/originals.json`` keyed by the data and the retraining
    settings (seeds included): the latest entry at the top level, the others in ``"others"``
    (:data:`ORIGINALS_KEPT` in all), so runs from other first seeds in one directory each find
    theirs instead of retraining."""
    default = retrain_seeds(cfg.seed, cfg.retrain_seeds)
    seeds = default if seeds is None else [int(s) for s in seeds]
    if not seeds:
        raise BadInputError("retrain_originals: seeds is an empty list")
    key_cfg = {k: v for k, v in cfg.to_dict().items()
               if k in ("classifier", "classifier_options", "lr_clf", "wd_clf", "batch_size", "retrain_epochs",
                        "retrain_seeds", "seed")}
    if seeds != default:  # other seeds than a cell's: named as they are (a cell's key stays what it was)
        key_cfg = {k: v for k, v in key_cfg.items() if k not in ("retrain_seeds", "seed")} | {"seeds": seeds}
    key = json.loads(json.dumps({"train": fingerprint(train), "test": fingerprint(test), "settings": key_cfg}))
    path = out_dir / "originals.json" if out_dir is not None else None
    entries = originals_entries(path) if path is not None else []
    for e in entries:
        if e.get("key") == key:
            return e
    runs = [retrain(train, test, cfg=cfg, seed=s, device=device, progress=progress)["accuracy"] for s in seeds]
    doc = {"key": key, "retrain": statistics.fmean(runs), "retrain_runs": runs}
    if path is not None:
        atomic_write_json(path, {**doc, "others": entries[: ORIGINALS_KEPT - 1]})
    return doc


#: how many retrainings of the originals (different first seeds or settings) one originals.json keeps
ORIGINALS_KEPT = 16


def originals_entries(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every retraining of the originals cached in ``path`` (an ``originals.json``), latest first:
    dicts with ``key``, ``retrain`` and ``retrain_runs``; [] when the file is missing or unreadable
    (a cache: it is recomputed). Files written before ``"others"`` existed hold one entry."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return []
    if not isinstance(doc, dict):
        return []
    out = [{k: doc[k] for k in ("key", "retrain", "retrain_runs") if k in doc}]
    out += [e for e in doc.get("others", []) if isinstance(e, dict)]
    return [e for e in out if "key" in e and "retrain_runs" in e]


_CELL_FILES = (("result", "result.json"), ("checkpoint", "checkpoint.ckpt"), ("simplifier", "simplifier.safetensors"),
               ("classifier", "classifier.safetensors"), ("set", "simplified.safetensors"), ("grid", "grid.png"),
               ("examples", "examples.safetensors"))


def _run_cell(train: ImageSet, test: ImageSet | None, cfg: SimplifyConfig, *, cell_dir: Path | None,
              resume: bool, force: bool, device: torch.device, progress: bool | None,
              orig_bpd: torch.Tensor, density: BpdTerm) -> tuple[dict[str, Any], ImageSet]:
    """One (lambda, seed) cell: read back when it finished with the same settings, else trained
    (from its checkpoint with ``resume``), evaluated and, with a ``cell_dir``, written."""
    paths = {k: cell_dir / v for k, v in _CELL_FILES} if cell_dir is not None else None
    if paths is not None:
        finished = _finished_cell(paths, cfg, force=force, orig_bpd=orig_bpd, density=density)
        if finished is not None:
            return finished
    trainer = JointTrainer(cfg, channels=train.channels, image_hw=tuple(train.shape[1:]),
                           num_classes=train.num_classes, flip=flip_allowed(train), device=device)
    selector = EpochSelector(train, cfg, density, device=device) if cfg.select_within is not None else None
    start, log, elapsed = _resume_point(trainer, paths, cfg, resume=resume, force=force, selector=selector)
    n_steps = -(-len(train) // min(cfg.batch_size, len(train)))
    joint_seconds = _train_cell(trainer, train, cfg, paths, start=start, log=log, elapsed=elapsed, n_steps=n_steps,
                                density=density, progress=progress, selector=selector)
    if selector is not None:  # the best checked epoch, not the last (select.py)
        selector.apply(trainer)
    sim_images = trainer.simplify_images(train.images)
    simplified = ImageSet(sim_images, train.labels.clone(), train.classes,
                          {**train.meta, "name": f"{train.name}:simplified-{cell_name(cfg)}",
                           "simplified": cell_name(cfg), "source_dataset": train.name})
    bpd_each = density.score(sim_images)
    png = png_bpd(sim_images).float()
    t_eval = time.perf_counter()
    acc, curves = _evaluate_cell(trainer, simplified, test, cfg, device=device, progress=progress)
    eval_seconds = time.perf_counter() - t_eval
    joint_log = [r for r in log if not r.get("warmup")]  # warm-up steps are plain classifier steps
    joint_step_s = sum(r["seconds"] for r in joint_log) / max(1, len(joint_log) * n_steps)
    result = {
        "name": cell_name(cfg), "mode": cfg.mode, "lambda_sim": cfg.lambda_sim, "seed": cfg.seed,
        "dataset": train.name, "test": test.name if test is not None else None, "n_train": len(train),
        "bpd_original": float(orig_bpd.mean()), "bpd": float(bpd_each.mean()), "bpd_std": float(bpd_each.std()),
        "png_bpd": float(png.mean()), "density": density.spec, "weights": density.weights,
        "bits": BITS_DEFINITION, "accuracy": acc, "curves": curves, "log": log,
        "skipped_steps": sum(r["skipped_steps"] for r in log),
        "seconds": {"joint": round(joint_seconds, 2), "per_step": round(joint_step_s, 4),
                    "evaluation": round(eval_seconds, 2)},
        "config": cfg.to_dict(), "digest": cfg.digest(),
    }
    if selector is not None:
        result["select"] = selector.summary()
    if paths is not None:
        _write_cell(paths, trainer, train, cfg, simplified, result, density=density)
    return result, simplified


def _finished_cell(paths: dict[str, Path], cfg: SimplifyConfig, *, force: bool, orig_bpd: torch.Tensor,
                   density: BpdTerm) -> tuple[dict[str, Any], ImageSet] | None:
    """The result and simplified set of a cell finished with the same settings (re-scored, not
    retrained, when it was made under an older bpd definition or other weights of its density
    model: a newer shipped model, a flow file trained again); ``None`` when it must run. A
    finished cell with other settings is refused unless ``force``."""
    if not paths["result"].exists():
        return None
    done = json.loads(paths["result"].read_text())
    same = done.get("digest") == cfg.digest() and done.get("config", {}).get("epochs") == cfg.epochs
    if same and not force and paths["set"].exists():
        from ..data.condensed import load_condensed

        made = load_condensed(paths["set"])
        # made under an older bpd definition or other weights: re-score, keep the rest
        if done.get("bits") != BITS_DEFINITION or done.get("weights") != density.weights:
            each = density.score(made.images)
            done.update(bpd_original=float(orig_bpd.mean()), bpd=float(each.mean()), bpd_std=float(each.std()),
                        png_bpd=float(png_bpd(made.images).mean()), bits=BITS_DEFINITION, weights=density.weights)
            atomic_write_json(paths["result"], done)
        return done, made
    # the same settings but the simplified set was deleted: run the cell again
    if not same and not force:
        raise MismatchError(
            f"{paths['result'].parent} holds a finished run with other settings; pass --force to replace it or "
            "choose another --out"
        )
    return None


def _resume_point(trainer: JointTrainer, paths: dict[str, Path] | None, cfg: SimplifyConfig, *, resume: bool,
                  force: bool, selector: EpochSelector | None = None) -> tuple[int, list[dict[str, Any]], float]:
    """(first epoch, log so far, seconds so far): from the cell's checkpoint, loaded into
    ``trainer`` (and ``selector``), when there is one to continue; an interrupted run is never
    silently restarted."""
    if paths is None or not paths["checkpoint"].exists() or force:
        return 0, [], 0.0
    if not resume:
        raise BadInputError(f"{paths['checkpoint']} holds an interrupted run; pass --resume to continue it, "
                             "or --force to start over")
    st = load_state(paths["checkpoint"], kind="simplify-checkpoint")
    saved = config_from_dict(st["config"])
    if saved.digest() != cfg.digest():
        diff = settings_difference(saved.to_dict(), cfg.to_dict(), ignore=("epochs", "retrain_epochs", "finetune_epochs"))
        raise MismatchError(f"{paths['checkpoint']} was made with other settings {diff} (saved, now); "
                            "use the same settings to resume, or --force to start over")
    trainer.load(st["trainer"])
    if selector is not None:
        selector.load(st.get("select", {}))
    return int(st["epoch"]), list(st["log"]), float(st["seconds"])


def _train_cell(trainer: JointTrainer, train: ImageSet, cfg: SimplifyConfig, paths: dict[str, Path] | None, *,
                start: int, log: list[dict[str, Any]], elapsed: float, n_steps: int, density: BpdTerm,
                progress: bool | None, selector: EpochSelector | None = None) -> float:
    """The joint epochs from ``start``, each logged (with the bpd of a fixed probe of simplified
    images) into ``log`` and checkpointed; returns the joint training's seconds in all (the
    ``select_within`` checks are logged but not counted: they are evaluation)."""
    probe = _sample_for_log(len(train), cfg.seed)
    bar = progress_bar(cfg.epochs * n_steps, desc=cell_name(cfg), enabled=progress)
    bar.update(start * n_steps)
    # the simplifier learns from the first epoch after the warm-up (the warm-up trains the classifier alone)
    first_joint = min(cfg.warmup_epochs, cfg.epochs) if trainer.classifier is not None else 0
    for e in range(start, cfg.epochs):
        if selector is not None and e == first_joint and not selector.checks:
            selector.check(trainer, e - 1)  # the reference, and the fallback: the state before any joint step
        t0 = time.perf_counter()
        rec = trainer.epoch(train.images, train.labels, epoch=e, on_step=lambda: bar.update(1))
        sim = trainer.simplify_images(train.images[probe])
        rec["bpd_probe"] = float(density.score(sim).mean())
        rec["w"] = float(getattr(trainer.simplifier, "w", torch.tensor(float("nan"))).detach())
        elapsed += time.perf_counter() - t0
        if selector is not None and e >= first_joint:
            chk = selector.check(trainer, e)
            rec.update(select_bpd=chk["bpd"], select_accuracy=chk["accuracy"], select_qualifies=chk["qualifies"])
            if cfg.backtrack is not None and not chk["qualifies"]:  # back to the best state, smaller steps
                rec.update(selector.backtrack(trainer, cfg.backtrack) or {})
        log.append(rec)
        bar.set_postfix(bpd=f"{rec['bpd_probe']:.3f}", skipped=rec["skipped_steps"],
                        **({"held_out_acc": f"{rec['select_accuracy']:.3f}"} if "select_accuracy" in rec else {}))
        if paths is not None:
            st = {"config": cfg.to_dict(), "epoch": e + 1, "trainer": trainer.state(), "log": log, "seconds": elapsed}
            if selector is not None:
                st["select"] = selector.state()
            save_state(paths["checkpoint"], st, kind="simplify-checkpoint")
    bar.close()
    return elapsed


def _evaluate_cell(trainer: JointTrainer, simplified: ImageSet, test: ImageSet | None, cfg: SimplifyConfig, *,
                   device: torch.device, progress: bool | None) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """The three accuracies on the original test set (paper §4): the joint classifier, fresh
    classifiers retrained on the simplified set (``retrain_seeds`` of them) and the joint classifier
    finetuned on it; with their learning curves. Nothing without a test set."""
    acc: dict[str, Any] = {"joint": None, "retrain": None, "finetune": None}
    curves: dict[str, list[float]] = {}
    if test is None:
        return acc, curves
    if trainer.classifier is not None:
        acc["joint"] = accuracy(trainer.classifier, test)
    runs = [retrain(simplified, test, cfg=cfg, seed=s, device=device, progress=progress)
            for s in retrain_seeds(cfg.seed, cfg.retrain_seeds)]
    acc["retrain"] = statistics.fmean(r["accuracy"] for r in runs)
    acc["retrain_runs"] = [r["accuracy"] for r in runs]
    curves["retrain"] = [statistics.fmean(v) for v in zip(*(r["curve"] for r in runs))]
    if trainer.classifier is not None and cfg.finetune_epochs > 0:
        tuned = copy.deepcopy(trainer.classifier)
        r = fit(tuned, simplified, test, cfg=cfg, epochs=cfg.finetune_epochs, seed=cfg.seed,
                progress=progress, desc="finetune")
        acc["finetune"], curves["finetune"] = r["accuracy"], r["curve"]
    return acc, curves


def _write_cell(paths: dict[str, Path], trainer: JointTrainer, train: ImageSet, cfg: SimplifyConfig,
                simplified: ImageSet, result: dict[str, Any], *, density: BpdTerm) -> None:
    """The cell's files (module docstring); ``result.json`` last, then the checkpoint goes."""
    paths["result"].parent.mkdir(parents=True, exist_ok=True)
    c, h, w = train.shape
    save_classifier(paths["simplifier"], trainer.simplifier, name="unet-simplifier", channels=c, image_size=h,
                    classes=train.classes, options=dict(cfg.simplifier_options),
                    extra={"kind": "simplifier", "lambda_sim": cfg.lambda_sim, "image_hw": [h, w]})
    if trainer.classifier is not None:
        save_classifier(paths["classifier"], trainer.classifier, name=cfg.classifier, channels=c, image_size=h,
                        classes=train.classes, options=dict(cfg.classifier_options),
                        extra={"trained": "jointly with the simplifier", "lambda_sim": cfg.lambda_sim})
    save_condensed(paths["set"], simplified, method="simplebits" if cfg.mode == "simplebits" else "mse-bpd",
                   source=train.name, settings=cfg.to_dict(), seed=cfg.seed, bpd=result["bpd"],
                   extra={"png_bpd": result["png_bpd"], "bpd_original": result["bpd_original"],
                          "density": density.spec, "lambda_sim": cfg.lambda_sim})
    sim_images = simplified.images
    pick = pick_per_class(train.labels, train.num_classes, per_class=2)
    save_tensors(paths["examples"], {"original": train.images[pick].contiguous(), "simplified": sim_images[pick],
                                     "labels": train.labels[pick]},
                 {"kind": "simplify-examples", "lambda_sim": cfg.lambda_sim, "classes": list(train.classes)})
    save_png(paths["grid"], comparison_grid(train.images, [sim_images], labels=train.labels,
                                            num_classes=train.num_classes))
    result["files"] = {k: str(v) for k, v in paths.items() if k != "checkpoint"
                       and (k != "classifier" or trainer.classifier is not None)}
    atomic_write_json(paths["result"], result)
    paths["checkpoint"].unlink(missing_ok=True)


def simplify(
    train: ImageSet,
    test: ImageSet | None = None,
    *,
    lambdas: Sequence[float] = (1.0,),
    seeds: Sequence[int] = (0,),
    config: SimplifyConfig | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    force: bool = False,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    **overrides: Any,
) -> SimplifyResult:
    """Train SimpleBits simplifiers on ``train``, one per (lambda, seed), and evaluate each.

    Parameters
    ----------
    train : training images in [0, 1] with at least two classes.
    test : original test images for the three evaluations (joint, retrained, finetuned);
        ``None`` skips evaluation.
    lambdas : bpd weights (paper grid 0 .. 2.0); several give the trade-off sweep.
    seeds : one joint run per seed and lambda; summaries are mean ± std over seeds.
    config : a :class:`SimplifyConfig` (from :func:`make_simplify_config`); or leave it out and
        pass ``preset=`` and any setting as keyword arguments. Its ``lambda_sim`` and ``seed``
        are replaced by each cell's.
    out : directory for the files listed in the module docstring; ``None`` keeps all in memory.
    resume : continue interrupted cells from their checkpoints (finished cells are always skipped).
    force : replace cells made with other settings instead of refusing.
    """
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    config, cfgs = _cell_configs(config, overrides, lambdas, seeds)
    _check_data(train, test)
    dev = torch.device(device)
    density = BpdTerm(config.density, shape=train.shape, device=dev)  # mismatch fails before training
    out_dir = _prepare_out(out)
    t0 = time.perf_counter()
    orig_bpd = density.score(train.images)
    png_original = float(png_bpd(train.images).mean())  # the originals' PNG figure beside each cell's (0.3 s / 4k images)
    units = density.units(train.shape)
    blind = blind_spots(orig_bpd, units["native_per_model"])  # a model that does not fit the data: say so
    result = SimplifyResult(cells=[], out=str(out_dir) if out_dir else None, seconds=0.0, peak_rss_mb=0.0, units=units,
                            blind_spots=blind,
                            blind_spot_note=blind_spot_note(blind, len(train), density.spec, train.name))
    summary_path = out_dir / "simplify.json" if out_dir is not None else None
    previous = _previous_cells(summary_path)
    originals = None
    if test is not None:
        originals = retrain_originals(train, test, replace(config, seed=cfgs[0].seed), out_dir=out_dir, device=dev,
                                      progress=progress)
    for cfg in cfgs:
        cell, simplified = _run_cell(train, test, cfg, cell_dir=out_dir / cell_name(cfg) if out_dir else None,
                                     resume=resume, force=force, device=dev, progress=progress,
                                     orig_bpd=orig_bpd, density=density)
        cell["png_bpd_original"] = png_original
        # both units of every flow figure (#19): the same total bits per dimension of the images as given
        cell["units"] = units
        cell["blind_spots_original"] = blind
        cell["bpd_native"] = cell["bpd"] * units["native_per_model"]
        cell["bpd_original_native"] = cell["bpd_original"] * units["native_per_model"]
        if originals is not None:  # the figure every simplified accuracy is read against
            cell["accuracy"]["retrain_original"] = originals["retrain"]
            cell["accuracy"]["retrain_original_runs"] = originals["retrain_runs"]
        result.cells.append(cell)
        result.simplified[cell["name"]] = simplified
        if summary_path is not None:
            _write_summary(summary_path, train, test, previous, result.cells, result)
    result.seconds = time.perf_counter() - t0
    result.peak_rss_mb = peak_rss_mb()
    return result


def _cell_configs(config: SimplifyConfig | None, overrides: dict[str, Any], lambdas: Sequence[float],
                  seeds: Sequence[int]) -> tuple[SimplifyConfig, list[SimplifyConfig]]:
    """The run's config (given, or made from keyword settings) and one validated config per
    (lambda, seed) cell, lambda-major."""
    if config is None:
        config = make_simplify_config(**overrides)
    elif overrides:
        raise BadInputError("pass either a config or keyword settings, not both")
    lams = check_lambdas(list(lambdas))
    seed_list = [int(s) for s in seeds]
    if not seed_list:
        raise BadInputError("seeds: empty list")
    return config, [replace(config, lambda_sim=lam, seed=s).validate() for lam in lams for s in seed_list]


def _prepare_out(out: str | os.PathLike | None) -> Path | None:
    """The output directory, made (``None``: everything stays in memory); a file there is refused."""
    if out is None:
        return None
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"--out {out_dir} is a file; give a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _previous_cells(summary_path: Path | None) -> list[dict[str, Any]]:
    """Cells an earlier call recorded in ``simplify.json`` (kept in it beside this call's); an
    unreadable summary counts as none, since every cell's own result.json is the record."""
    if summary_path is None or not summary_path.exists():
        return []
    try:
        return json.loads(summary_path.read_text()).get("cells", [])
    except (OSError, json.JSONDecodeError):
        return []


def _write_summary(summary_path: Path, train: ImageSet, test: ImageSet | None, previous: list[dict[str, Any]],
                   cells: list[dict[str, Any]], result: SimplifyResult) -> None:
    """``simplify.json``: this call's cells so far, earlier cells of other names, the per-lambda summary and
    (from ``result``) the density model's blind spots on the originals, which `simplebits tradeoff` repeats."""
    names = {c["name"] for c in cells}
    keep = [c for c in previous if c.get("name") not in names]
    doc = {"dataset": train.name, "test": test.name if test is not None else None,
           "units": next((c["units"] for c in cells if c.get("units")), None),
           "blind_spots": result.blind_spots, "blind_spot_note": result.blind_spot_note,
           "cells": keep + cells, "summary": SimplifyResult(keep + cells, None, 0, 0).summary()}
    atomic_write_json(summary_path, doc)
