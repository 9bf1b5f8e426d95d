"""``explain(...)``: choose images, simplify them post hoc, compute the saliency baselines, and
write the results and the Fig. 8 figure."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import ImageSet
from ..errors import BadInputError
from ..errors import CorruptFileError
from ..io import atomic_write_json, load_tensors, save_tensors
from ..train import generator, predict_logits
from ..train.checkpoint import ClassifierInfo, check_classifier_input
from .posthoc import ExplainConfig, PosthocResult, simplify_posthoc
from .saliency import expected_gradients, prediction_difference

__all__ = ["select_images", "ExplainResult", "explain", "load_explained", "FORMAT"]

FORMAT = "simplebits.explained/1"


def select_images(preds: torch.Tensor, labels: torch.Tensor, select: str, n: int | None, *, seed: int = 0) -> torch.Tensor:
    """Indices for ``select`` = ``misclassified`` | ``correct`` | ``"3,17,42"``; ``n`` of them,
    a seeded random choice kept in index order (``None``: all)."""
    if select in ("misclassified", "correct"):
        pool = torch.nonzero((preds != labels) if select == "misclassified" else (preds == labels)).flatten()
        if pool.numel() == 0:
            raise BadInputError(f"the classifier gets {'every' if select == 'misclassified' else 'no'} image right: there "
                                f"are no {select} images to explain; use --select "
                                f"{'correct' if select == 'misclassified' else 'misclassified'} or INDICES")
    else:
        try:
            pool = torch.tensor([int(v) for v in select.split(",") if v.strip()], dtype=torch.long)
        except ValueError:
            raise BadInputError(f"--select takes misclassified, correct or indices like 3,17,42; got {select!r}") from None
        if pool.numel() == 0 or int(pool.min()) < 0 or int(pool.max()) >= labels.numel():
            raise BadInputError(f"--select indices must lie in 0..{labels.numel() - 1}; got {select!r}")
    if n is None:
        return pool
    if n < 1:
        raise BadInputError(f"--n must be >= 1; got {n}")
    if n > pool.numel():
        raise BadInputError(f"--n {n} is larger than the {pool.numel()} {select if select in ('misclassified', 'correct') else 'selected'} "
                            f"images; use --n {pool.numel()} or fewer")
    pick = torch.randperm(pool.numel(), generator=generator(seed, "explain/select"))[:n]
    return pool[pick.sort().values]


@dataclass
class ExplainResult:
    indices: torch.Tensor
    labels: torch.Tensor
    originals: torch.Tensor
    posthoc: PosthocResult
    classes: tuple[str, ...]
    expected_gradients: torch.Tensor | None = None
    prediction_difference: torch.Tensor | None = None
    files: dict[str, str] = field(default_factory=dict)
    data: str | None = None  # the explained data's name (for the blind-spot note's train-flow command)

    def summary(self) -> dict[str, Any]:
        note = self.posthoc.blind_spot_note(self.data or "your-data")
        return {**self.posthoc.summary(), "indices": self.indices.tolist(), "files": self.files,
                "correct_orig": float((self.posthoc.pred_orig == self.labels).float().mean()),
                **({"blind_spot_note": note} if note else {})}


def explain(
    model: nn.Module,
    data: ImageSet,
    *,
    info: ClassifierInfo | None = None,
    select: str = "misclassified",
    n: int | None = 32,
    config: ExplainConfig | None = None,
    references: ImageSet | None = None,
    saliency: bool = True,
    out: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> ExplainResult:
    """Explain ``model``'s predictions on ``n`` images of ``data`` chosen by ``select``.

    ``references`` (training images) feed the saliency baselines; without them (or with
    ``saliency=False``) only the simplified images are made. With ``out`` the results are
    written to ``OUT/explained.safetensors`` (images, predictions, bpd, maps; metadata JSON),
    ``OUT/explain.json`` and ``OUT/figure.png``.
    """
    cfg = (config or ExplainConfig()).validate()
    data.require_unit_range("explain (the simplified images are scored in bits)")
    check_classifier_input(model, info or ClassifierInfo("unknown"), data.images, data.num_classes)
    preds = predict_logits(model, data.images).argmax(1)
    idx = select_images(preds, data.labels, select, n, seed=cfg.seed)
    x, y = data.images[idx], data.labels[idx]
    res = simplify_posthoc(model, x, config=cfg, progress=progress)
    eg = pda = None
    if saliency and references is not None:
        if references.shape != data.shape:
            raise BadInputError(f"reference images are {references.shape}, the data {data.shape}: use the same format")
        eg = expected_gradients(model, x, res.pred_orig, references.images, seed=cfg.seed)
        pda = prediction_difference(model, x, res.pred_orig, references.images, seed=cfg.seed)
    result = ExplainResult(idx, y, x, res, data.classes, eg, pda, data=str(data.meta.get("name") or data.name))
    if out is not None:
        _write(result, Path(out), data, cfg)
    return result


def _write(result: ExplainResult, out: Path, data: ImageSet, cfg: ExplainConfig) -> None:
    from .figure import explanation_figure

    out.mkdir(parents=True, exist_ok=True)
    res = result.posthoc
    tensors = {"simplified": res.images, "originals": result.originals, "labels": result.labels,
               "indices": result.indices, "pred_orig": res.pred_orig, "pred_sim": res.pred_sim,
               "bpd_orig": res.bpd_orig, "bpd_sim": res.bpd_sim}
    if result.expected_gradients is not None:
        tensors["expected_gradients"] = result.expected_gradients
        tensors["prediction_difference"] = result.prediction_difference
    files = {"results": str(out / "explained.safetensors"), "summary": str(out / "explain.json"),
             "figure": str(out / "figure.png")}
    result.files = files
    save_tensors(files["results"], tensors, {"format": FORMAT, "classes": list(data.classes),
                                              "data": data.meta.get("name"), "config": cfg.to_dict(),
                                              "summary": {k: v for k, v in res.summary().items()}})
    explanation_figure(result, files["figure"])
    atomic_write_json(files["summary"], result.summary())


def load_explained(path: str | os.PathLike) -> ExplainResult:
    """Read ``OUT/explained.safetensors`` back (to redraw the figure or build a report)."""
    t, meta = load_tensors(path)
    if meta.get("format") != FORMAT:
        raise CorruptFileError(f"{path} is a simplebits file but not explanation results (format={meta.get('format')!r})")
    cfg = ExplainConfig(**meta["config"]).validate()
    summ = meta.get("summary", {})
    res = PosthocResult(t["simplified"], t["pred_orig"], t["pred_sim"], t["bpd_orig"], t["bpd_sim"], cfg,
                        float(summ.get("seconds", 0.0)), units=summ.get("units"), density=summ.get("density"))
    return ExplainResult(t["indices"], t["labels"], t["originals"], res, tuple(meta["classes"]),
                         t.get("expected_gradients"), t.get("prediction_difference"), data=meta.get("data"))
