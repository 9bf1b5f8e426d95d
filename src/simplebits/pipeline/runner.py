"""`simplebits.run(config)`: data -> measure -> condense -> prune -> simplify -> explain -> continual -> report.

Layout of ``OUT`` (every file written atomically, temp file + rename):

``OUT/pipeline.json``         the config, its hash, package version, state (running / done), stage timings
``OUT/config.toml``           the config as TOML, every key written
``OUT/<stage>/stage.json``    a finished stage: its content key, figures, files, seconds
``OUT/<stage>/*.item.json``   finished pieces of a stage (one condensed set, one evaluation...), keyed
``OUT/figures.json``          every stage's figures (no timings): what two runs of one config must agree on
``OUT/report.html``           the report (:mod:`simplebits.pipeline.report`)

A stage's *key* hashes its own settings, the data's fingerprint, the evaluation settings, the
seed and the keys of the stages it reads; a stage whose ``stage.json`` holds the same key is
skipped, and inside an unfinished stage every finished piece with the same key is reused. So a
run killed at any moment (SIGKILL included) and started again with ``--resume`` recomputes only
what was not finished; seeded CPU work repeats exactly, so the figures equal an uninterrupted
run's (tested). A finished result is never replaced by a partial one: stage files are written
only when complete, and ``report.html`` / ``figures.json`` only at the end.

An output directory that holds another config's results is refused unless ``force``: then the
stages whose keys changed are recomputed and the others kept.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from ..data import ImageSet, fingerprint, load_dataset, real_subset
from ..density.summary import BITS_DEFINITION
from ..errors import BadInputError, MismatchError, NotFoundError
from ..io import atomic_write_json, atomic_write_text
from ..runtime import peak_rss_mb, precision_name, resolve_device, resolve_precision
from ..train.seeding import derive_seed
from .config import (PipelineConfig, condense_config, config_hash, continual_config, dynamics_config, explain_config,
                     load_config, section_dict, simplify_config)

__all__ = ["PipelineResult", "run", "STAGES"]

STAGES = ("data", "baseline", "condense", "prune", "simplify", "explain", "continual")
#: The stages with bpd figures: each records the density model's name and weights digest in its
#: ``stage.json`` and runs again (its finished pieces reused) when the weights behind the name
#: changed: a newer shipped model, a flow file that train-flow wrote again. Their bpd and storage
#: pieces are keyed by the digest, so only those are recomputed.
DENSITY_STAGES = ("data", "baseline", "condense", "prune", "simplify", "explain")
FORMAT = "simplebits-pipeline/1"
#: Version of the storage-bits figures (density.storage_bits); part of their cache keys.
STORAGE_FORMAT = "storage/1"


def _version() -> str:
    from .. import __version__

    return __version__


@dataclass
class PipelineResult:
    """What :func:`run` made: the figures of every stage run, the files, the report."""

    out: str
    config: PipelineConfig
    figures: dict[str, Any]
    files: dict[str, Any]
    seconds: dict[str, float]
    skipped: list[str]
    report: str | None
    peak_rss_mb: float
    dataset: str

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "dataset": self.dataset, "report": self.report, "figures": self.figures,
                "files": self.files, "seconds": self.seconds, "skipped": self.skipped,
                "peak_rss_mb": round(self.peak_rss_mb, 1), "config": self.config.to_dict()}

    def summary(self) -> str:
        """A few lines for the terminal: the headline figures of each stage."""
        f = self.figures
        lines = [f"simplebits run: {self.dataset} -> {self.out}"]
        if "data" in f and f["data"].get("bpd"):
            b = f["data"]["bpd"]
            lines.append(f"  data: {f['data']['n_train']} train / {f['data']['n_test']} test images, "
                         f"{b['mean']:.3f} ± {b['std']:.3f} bits per model dimension under {b['model']}"
                         + (f" ({b['native_mean']:.3f} per image dimension)" if b.get("native_mean") is not None
                            and abs(b["native_mean"] - b["mean"]) > 1e-9 else "")
                         + f", PNG {b['png_mean']:.3f}")
        for row in f.get("baseline", {}).get("rows", []):
            lines.append(f"  random real ipc {row['ipc']}: {_pct(row['accuracy'])}")
        for row in f.get("condense", {}).get("sets", []):
            start = f", its start {_pct(row['start'])}" if row.get("start") else ""
            lines.append(f"  {row['label']}: {_pct(row['accuracy'])} (random real {_pct(row['baseline'])}{start})"
                         + (f", bpd {row['bpd']:.3f}" if row.get("bpd") is not None else "")
                         + ("  BELOW ITS START" if row.get("below_start") else ""))
        for row in f.get("prune", {}).get("rows", []):
            lines.append(f"  prune ipc {row['ipc_from']} -> {row['ipc_to']} by {row['rule']}: {_pct(row['accuracy'])} "
                         f"(random real {_pct(row['baseline'])})")
        for row in f.get("simplify", {}).get("rows", []):
            o = f["simplify"]["original"]
            native = (f" ({row['bpd_native']['mean']:.3f} per image dimension, originals {o['bpd_native']:.3f})"
                      if row.get("bpd_native") and o.get("bpd_native") is not None
                      and abs(o["bpd_native"] - o["bpd"]) > 1e-9 else "")
            lines.append(f"  SimpleBits lambda {row['lambda_sim']:g}: bpd {row['bpd']['mean']:.3f} "
                         f"(originals {o['bpd']:.3f}){native}, retrained {_pct(row['retrain'])} "
                         f"(originals {_pct(f['simplify']['original']['retrain'])})")
        if "explain" in f:
            e = f["explain"]
            lines.append(f"  explain: {e['n']} {e['select']} images, bpd {e['bpd_orig']:.3f} -> {e['bpd_sim']:.3f}, "
                         f"prediction kept {100 * e['prediction_kept']:.0f}%")
        if "continual" in f:
            for s in f["continual"]["settings"]:
                lines.append(f"  continual {s['label']}: final mean accuracy {100 * s['final_mean']:.2f} "
                             f"± {100 * s['final_std']:.2f}")
        total = sum(self.seconds.values())
        lines.append(f"  report: {self.report}  ({total:.0f}s, peak RSS {self.peak_rss_mb:.0f} MB"
                     + (f"; skipped finished stages: {', '.join(self.skipped)}" if self.skipped else "") + ")")
        return "\n".join(lines)


def _pct(acc: dict[str, Any] | None) -> str:
    if not acc:
        return "-"
    return f"{100 * acc['mean']:.2f} ± {100 * acc['std']:.2f}"


def _acc(report) -> dict[str, Any]:
    """The figures of an EvalReport that a report shows (no timings)."""
    return {"mean": report.mean, "std": report.std, "accuracies": list(report.accuracies), "seeds": list(report.seeds),
            "protocol": report.protocol, "model": report.model, "n_train": report.n_train}


class Context:
    """What every stage sees: the config, the data, the output folder, finished-piece caching."""

    def __init__(self, cfg: PipelineConfig, out: Path, *, device: str, resume: bool, progress: bool | None,
                 log: Callable[[str], None]):
        self.cfg, self.out, self.device, self.resume, self.progress, self.log = cfg, out, device, resume, progress, log
        self.train: ImageSet
        self.test: ImageSet
        self.dataset = ""
        self.data_key = ""
        self.stage_keys: dict[str, str] = {}
        self.figures: dict[str, Any] = {}
        self.memo: dict[Any, list[float]] = {}  # evaluations shared between the sets' scores
        self._density_id: dict[str, str] | None = None
        self._stage, self._pieces, self._done, self._computed, self._t0 = "", 0, 0, 0, 0.0

    def begin_stage(self, stage: str, pieces: int) -> None:
        """Start counting ``stage``'s pieces (for its progress lines and ETA)."""
        self._stage, self._pieces, self._done, self._computed, self._t0 = stage, pieces, 0, 0, time.perf_counter()

    def piece_done(self, what: str, *, computed: bool = True) -> None:
        """One piece of the current stage finished: log ``k/n``, the time so far and an ETA (the mean
        time of the pieces computed in this run, times the pieces left; reused pieces cost nothing)."""
        self._done += 1
        self._computed += int(computed)
        if not self._pieces:
            return
        elapsed = time.perf_counter() - self._t0
        left = self._pieces - self._done
        line = f"  {self._stage} {self._done}/{self._pieces}: {what} ({'done' if computed else 'reused'}), " \
               f"{_duration(elapsed)} so far"
        if left > 0 and self._computed:
            line += f", about {_duration(elapsed / self._computed * left)} left"
        self.log(line)

    @property
    def protocol(self):
        """The evaluation protocol, with ``evaluate.max_steps``, ``network`` and ``precision`` applied."""
        from ..train import get_protocol

        p = get_protocol(self.cfg.evaluate.protocol)
        if self.cfg.evaluate.network:
            p = p.with_overrides(model=self.cfg.evaluate.network)
        if self.cfg.evaluate.precision:  # auto resolved here: the stage keys name the arithmetic computed
            p = p.with_overrides(precision=precision_name(self.cfg.evaluate.precision, self.device))
        return p.with_overrides(max_steps=self.cfg.evaluate.max_steps) if self.cfg.evaluate.max_steps else p

    @property
    def density_id(self) -> dict[str, str]:
        """The density model every bpd figure of the run is computed under: its name and a digest of
        its weights (:func:`~simplebits.density.flow_identity`), so that figures cached under other
        weights of the same name (a newer shipped model, a flow file trained again) are recomputed
        (:data:`DENSITY_STAGES`)."""
        if self._density_id is None:
            from ..density import flow_identity

            self._density_id = flow_identity(self.cfg.density.model or None, self.train.shape[0])
        return self._density_id

    @property
    def seeds(self) -> list[int]:
        return list(range(self.cfg.seed, self.cfg.seed + self.cfg.evaluate.seeds))

    def cached(self, rel: str, key: Any, fn: Callable[[], Any], *, piece: bool = True) -> Any:
        """``fn()``'s JSON value, stored at ``OUT/rel`` under ``key``; reused when the key matches.
        ``piece``: count it as one of the stage's pieces (progress line); False for seconds-long figures."""
        path = self.out / rel
        k = config_hash(key)
        name = rel.split("/", 1)[-1].replace(".item.json", "")
        what = f"{name.removesuffix('.eval.json')} evaluated" if name.endswith(".eval.json") else name
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
                if doc.get("key") == k:
                    if piece:
                        self.piece_done(what, computed=False)
                    return doc["value"]
            except (ValueError, KeyError):
                pass  # a file from elsewhere: recompute and replace it
        value = fn()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"key": k, "value": value})
        if piece:
            self.piece_done(what)
        return value

    def eval_key(self) -> dict[str, Any]:
        return {"data": self.data_key, "protocol": self.protocol.to_dict(), "seeds": self.seeds, "device": self.device}

    def evaluate(self, rel: str, ds: ImageSet, key: Any) -> dict[str, Any]:
        from ..train import evaluate

        return self.cached(rel, {"eval": self.eval_key(), "set": key}, lambda: _acc(evaluate(
            ds, self.test, protocol=self.protocol, seeds=self.seeds, device=self.device,
            progress=self.progress)))

    def storage(self, rel: str, ds: ImageSet, key: Any) -> dict[str, Any]:
        """What ``ds`` costs to store in bits (PNG images + hard labels; flow code length beside), cached."""
        from ..density import storage_bits

        return self.cached(rel, {"set": key, "storage": STORAGE_FORMAT, "bits": BITS_DEFINITION,
                                 "density": self.density_id},
                           lambda: storage_bits(ds, model=self.cfg.density.model or None, device=self.device),
                           piece=False)

    def scores(self, rel: str, ds: ImageSet, key: Any) -> dict[str, Any] | None:
        """DD-Ranking's scores of ``ds`` when ``evaluate.scores`` is on (None otherwise), cached."""
        ev = self.cfg.evaluate
        if not ev.scores:
            return None
        from ..train import ranking_scores

        settings = {"labels": ev.score_labels, "temperature": ev.temperature, "eval": self.eval_key()}
        return self.cached(rel, {"set": key, "scores": settings}, lambda: ranking_scores(
            ds, self.train, self.test, protocol=self.protocol, labels=ev.score_labels, temperature=ev.temperature,
            seeds=self.seeds, device=self.device, progress=self.progress, memo=self.memo,
            cache=self.out / "cache").to_dict())  # whole-data networks kept with the run: OUT/cache/full-data

    def baseline(self, ipc: int) -> dict[str, Any] | None:
        return self.figures.get("baseline", {}).get("by_ipc", {}).get(str(ipc))


# ---------------------------------------------------------------------------------------------- stages


def stage_data(ctx: Context) -> dict[str, Any]:
    from ..condense.figures import grid_image, save_png
    from ..density import set_bits

    cfg, train, test = ctx.cfg, ctx.train, ctx.test
    d = ctx.out / "data"
    figures: dict[str, Any] = {
        "dataset": ctx.dataset, "n_train": len(train), "n_test": len(test), "num_classes": train.num_classes,
        "classes": list(train.classes), "shape": list(train.shape), "counts_train": train.counts(),
        "counts_test": test.counts(), "fingerprint": ctx.data_key, "bpd": None, "test_size": ctx.cfg.data.test_size,
    }
    files = {}
    sample = real_subset(train, min(10, min(train.counts())), seed=cfg.seed)
    save_png(d / "samples.png", grid_image(sample, max_per_class=10, scale=2))
    files["samples"] = "data/samples.png"
    n = min(cfg.data.bpd_images, len(test))
    if n > 0:
        idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(derive_seed(cfg.seed, "data/bpd")))[:n]
        b = set_bits(test.images[idx.sort().values], model=cfg.density.model, values=True, progress=ctx.progress)
        if b["bpd"] is not None:  # the flow's bound per model dimension, native units and PNG on the images as given
            figures["bpd"] = {"model": b["model"], "n": n, "mean": b["bpd"], "std": b["bpd_std"],
                              "native_mean": b["bpd_native"], "png_mean": b["png_bpd"], "png_std": b["png_std"],
                              "unit": b["unit"], "dequantize": b["dequantize"], "draws": b["draws"],
                              "note": b.get("note"), "values": b["values"], "native_values": b["native_values"],
                              "png_values": b["png_values"]}
    return {"figures": figures, "files": files}


def baseline_ipcs(cfg: PipelineConfig) -> list[int]:
    ipcs = set(cfg.evaluate.baseline_ipc)
    if cfg.condense.enabled:
        ipcs.update(cfg.condense.ipc)
    if cfg.prune.enabled:
        ipcs.update(cfg.prune.targets)
    return sorted(ipcs)


def stage_baseline(ctx: Context) -> dict[str, Any]:
    from ..train import evaluate_real_subset

    rows = []
    for ipc in baseline_ipcs(ctx.cfg):
        ctx.log(f"random real ipc {ipc}: {len(ctx.seeds)} seeds under {ctx.protocol.name}")
        acc = ctx.cached(f"baseline/ipc{ipc}.item.json", {"eval": ctx.eval_key(), "ipc": ipc}, lambda ipc=ipc: _acc(
            evaluate_real_subset(ctx.train, ctx.test, ipc=ipc, protocol=ctx.protocol, seeds=ctx.seeds,
                                 device=ctx.device, progress=ctx.progress)))
        # the bits of the subset the first seed trains on (every seed's subset has the same size)
        first = real_subset(ctx.train, ipc, seed=derive_seed(ctx.seeds[0], "subset"))
        storage = ctx.storage(f"baseline/ipc{ipc}-storage.item.json", first,
                              {"data": ctx.data_key, "ipc": ipc, "seed": ctx.seeds[0]})
        rows.append({"ipc": ipc, "accuracy": acc, "storage": storage})
    return {"figures": {"rows": rows, "by_ipc": {str(r["ipc"]): r["accuracy"] for r in rows}}, "files": {}}


def condensed_path(ctx: Context, ipc: int, lam: float) -> Path:
    return ctx.out / "condense" / f"ipc{ipc}-lam{lam:g}.safetensors"


def stage_condense(ctx: Context) -> dict[str, Any]:
    from ..condense import condense, fit_network, output_paths, start_warning, starting_set
    from ..condense.config import compiles
    from ..data.condensed import load_condensed
    from ..density import set_bits

    c = ctx.cfg.condense
    sets, files = [], {}
    for ipc in c.ipc:
        start_acc = None
        for j, lam in enumerate(c.lambda_sim):
            cc = condense_config(c, ipc=ipc, lam=lam, seed=ctx.cfg.seed)
            cc = fit_network(cc, tuple(ctx.train.shape[1:]))  # the network actually matched with is in the key
            if j == 0:  # the images every lambda's run starts from (the same seeded draw): evaluated once
                start = starting_set(ctx.train, cc)
                start_key = {"data": ctx.data_key, "start": {k: cc.to_dict()[k] for k in
                                                             ("ipc", "factor", "init", "param", "seed")}}
                start_acc = (ctx.evaluate(f"condense/ipc{ipc}-start.eval.json", start, start_key)
                             if start is not None else None)
            path = condensed_path(ctx, ipc, lam)
            label = f"{c.method} ipc{ipc}" + (f" lambda {lam:g}" if lam > 0 else "")
            settings = cc.to_dict()
            if settings.get("precision") == "auto":  # the key names the arithmetic computed on this device
                settings["precision"] = precision_name("auto", ctx.device)
            key = {"data": ctx.data_key, "condense": settings, "device": ctx.device}

            def make(cc=cc, path=path, label=label) -> dict[str, Any]:
                ctx.log(f"condensing {label} ({cc.iterations} iterations"
                        + (", compiling the real-batch network first" if compiles(cc) else "") + ")")
                ckpt = output_paths(path)["checkpoint"]
                r = condense(ctx.train, cc, out=path, resume=ckpt.exists(), device=ctx.device, progress=ctx.progress)
                if r.blind_spot_note:
                    ctx.log(f"note: {r.blind_spot_note}")
                return {"seconds": r.seconds, "blind_spot_note": r.blind_spot_note}

            made_set = ctx.cached(f"condense/ipc{ipc}-lam{lam:g}.item.json", key, make)
            images = load_condensed(path).with_meta(name=label)
            # every set's bits by the one definition (also for lambda 0), under the run's density model
            made = ctx.cached(f"condense/ipc{ipc}-lam{lam:g}-bits.item.json", {**key, "bits": BITS_DEFINITION, "density": ctx.density_id},
                              lambda images=images: set_bits(images.images, model=ctx.cfg.density.model))
            acc = ctx.evaluate(f"condense/ipc{ipc}-lam{lam:g}.eval.json", images, key)
            storage = ctx.storage(f"condense/ipc{ipc}-lam{lam:g}-storage.item.json", images, key)
            scores = ctx.scores(f"condense/ipc{ipc}-lam{lam:g}-scores.item.json", images, key)
            rel = path.relative_to(ctx.out)
            warning = start_warning(label, acc["mean"], start_acc["mean"], cc.init) if start_acc is not None else None
            below = warning is not None
            if warning:
                ctx.log(warning)
            sets.append({"label": label, "method": c.method, "ipc": ipc, "lambda_sim": lam, "bpd": made["bpd"],
                         "bpd_native": made["bpd_native"], "png_bpd": made["png_bpd"], "accuracy": acc, "baseline": ctx.baseline(ipc),
                         "start": start_acc, "below_start": below, "file": str(rel), "grid": f"{rel}.png",
                         "storage": storage, "scores": scores, "blind_spot_note": made_set.get("blind_spot_note")})
            files[label] = {"set": str(rel), "grid": f"{rel}.png"}
    return {"figures": {"sets": sets}, "files": files}


def stage_prune(ctx: Context) -> dict[str, Any]:
    from ..data.condensed import load_condensed, save_condensed
    from ..density import record_storage
    from ..prune import prune_set

    p, cfg = ctx.cfg.prune, ctx.cfg
    d = ctx.out / "prune"
    d.mkdir(parents=True, exist_ok=True)
    if p.source == "condensed":
        lam = cfg.condense.lambda_sim[0]
        parent_path = condensed_path(ctx, p.from_ipc, lam)
        parent = load_condensed(parent_path)
        parent_label = f"{cfg.condense.method} ipc{p.from_ipc}" + (f" lambda {lam:g}" if lam > 0 else "")
        parent_key = {"condensed": ctx.stage_keys.get("condense"), "ipc": p.from_ipc, "lambda": lam}
    else:
        parent_path = d / f"random-real-ipc{p.from_ipc}.safetensors"
        parent = real_subset(ctx.train, p.from_ipc, seed=derive_seed(cfg.seed, "prune/parent"))
        parent_label = f"random real ipc{p.from_ipc}"
        parent_key = {"data": ctx.data_key, "random-real": p.from_ipc, "seed": cfg.seed}
        if not parent_path.exists():
            save_condensed(parent_path, parent, method="random-real", source=ctx.dataset)
        parent = load_condensed(parent_path)
    # the parent's accuracy: the condensed set's own evaluation, or nothing new for a random real set (the
    # baseline at IPC_F would cost the most expensive evaluations of the run and is not what pruning is judged by)
    parent_acc = None
    if p.source == "condensed":
        lam = cfg.condense.lambda_sim[0]
        parent_acc = next((s["accuracy"] for s in ctx.figures.get("condense", {}).get("sets", [])
                           if s["ipc"] == p.from_ipc and s["lambda_sim"] == lam), None)
    dyn_path = d / "parent.dynamics.safetensors"
    dyn_cfg = dynamics_config(p, seed=cfg.seed)  # None unless [prune] sets a dynamics key: prune_set's default
    if dyn_cfg is not None and dyn_cfg.precision == "auto":  # the key names the arithmetic computed
        dyn_cfg = replace(dyn_cfg, precision=precision_name("auto", ctx.device))
    dyn_key = {"dynamics": dyn_cfg.to_dict()} if dyn_cfg is not None else {}  # unset: the keys of older runs
    rows, files = [], {"parent": str(parent_path.relative_to(ctx.out))}
    for t in p.targets:
        for rule in p.rules:
            name = f"ipc{p.from_ipc}-to-{t}-{rule}"
            key = {"parent": parent_key, "ipc": t, "rule": rule, "runs": p.runs, "seed": cfg.seed, "device": ctx.device,
                   **dyn_key}
            path = d / f"{name}.safetensors"

            def make(t=t, rule=rule, path=path, name=name) -> dict[str, Any]:
                ctx.log(f"pruning {parent_label} to ipc {t} by {rule}")
                r = prune_set(parent, ipc=t, rule=rule, runs=p.runs, config=dyn_cfg, seed=cfg.seed, out=path,
                              dynamics=dyn_path, device=ctx.device, progress=ctx.progress)
                record_storage(path, model=cfg.density.model or None, device=ctx.device)  # in the file too
                return {"indices": r.indices.tolist(), "seconds": r.seconds}

            made = ctx.cached(f"prune/{name}.item.json", key, make)
            images = load_condensed(path).with_meta(name=f"{parent_label} -> ipc{t} by {rule}")
            acc = ctx.evaluate(f"prune/{name}.eval.json", images, key)
            storage = ctx.storage(f"prune/{name}-storage.item.json", images, key)
            scores = ctx.scores(f"prune/{name}-scores.item.json", images, key)
            rows.append({"ipc_from": p.from_ipc, "ipc_to": t, "rule": rule, "source": p.source, "parent": parent_label,
                         "kept": len(made["indices"]), "accuracy": acc, "baseline": ctx.baseline(t),
                         "file": str(path.relative_to(ctx.out)), "storage": storage, "scores": scores})
            files[name] = str(path.relative_to(ctx.out))
    return {"figures": {"parent": {"label": parent_label, "ipc": p.from_ipc, "accuracy": parent_acc}, "rows": rows},
            "files": files}


def stage_simplify(ctx: Context) -> dict[str, Any]:
    from ..simplify import retrain, simplify
    from ..simplify.evaluate import retrain_seeds
    from ..simplify.joint import DensityTerm

    s, cfg = ctx.cfg.simplify, ctx.cfg
    train = ctx.train
    if s.train_size:
        per = max(1, min(s.train_size // train.num_classes, min(train.counts())))
        train = real_subset(train, per, seed=derive_seed(cfg.seed, "simplify/subset")).with_meta(
            name=f"{ctx.dataset}[{per * train.num_classes}]")
    sc = simplify_config(s, density=cfg.density.model or None)
    seeds = list(range(cfg.seed, cfg.seed + s.seeds))
    out = ctx.out / "simplify"
    ctx.log(f"SimpleBits: lambdas {s.lambdas} x seeds {seeds}, {s.epochs} epochs on {len(train)} images")
    res = simplify(train, ctx.test, lambdas=s.lambdas, seeds=seeds, config=sc, out=out, resume=True,
                   device=ctx.device, progress=ctx.progress)
    ctx.piece_done(f"simplifiers ({len(s.lambdas) * len(seeds)})")
    key = {"data": ctx.data_key, "simplify": sc.to_dict(), "n": len(train), "seed": cfg.seed}

    def originals() -> dict[str, Any]:
        # simplify() retrains on the originals with the same seeds; its figure is the comparison row
        runs = next((c["accuracy"]["retrain_original_runs"] for c in res.cells
                     if c["accuracy"].get("retrain_original_runs")), None)
        if runs is not None:
            t = torch.tensor(runs, dtype=torch.float64)
            return {"retrain": {"mean": float(t.mean()), "std": float(t.std(unbiased=False)), "n": len(runs),
                                "runs": runs}}
        ctx.log("SimpleBits: retraining on the original images (the comparison row)")
        runs = [retrain(train, ctx.test, cfg=sc, seed=s, device=ctx.device, progress=ctx.progress)["accuracy"]
                for s in retrain_seeds(cfg.seed, sc.retrain_seeds)]
        t = torch.tensor(runs, dtype=torch.float64)
        return {"retrain": {"mean": float(t.mean()), "std": float(t.std(unbiased=False)), "n": len(runs), "runs": runs}}

    orig = ctx.cached("simplify/originals.item.json", key, originals)
    # the originals' bpd: the cells' own (the one definition, re-scored by simplify() when it changes)
    orig = {**orig, "bpd": res.cells[0]["bpd_original"] if res.cells else float(
        DensityTerm(sc.density, shape=train.shape, device=ctx.device).score(train.images).mean()),
            "png_bpd": res.cells[0].get("png_bpd_original") if res.cells else None}
    orig["bpd_native"] = orig["bpd"] * res.units["native_per_model"] if res.units else None
    from ..data.condensed import load_condensed

    cells = [{k: c.get(k) for k in ("name", "lambda_sim", "seed", "bpd", "bpd_native", "bpd_original", "png_bpd",
                                    "accuracy")} for c in res.cells]
    for c in cells:  # what each simplified training set costs to keep, beside the originals'
        c["storage"] = ctx.storage(f"simplify/{c['name']}-storage.item.json",
                                   load_condensed(out / c["name"] / "simplified.safetensors"), {**key, "cell": c["name"]})
    orig["storage"] = ctx.storage("simplify/originals-storage.item.json", train, key)
    rows = [{k: r[k] for k in ("lambda_sim", "seeds", "bpd", "bpd_native", "png_bpd", "joint", "retrain", "finetune")}
            for r in res.summary()]
    files = {c["name"]: {"grid": f"simplify/{c['name']}/grid.png",
                         "simplified": f"simplify/{c['name']}/simplified.safetensors"} for c in res.cells}
    if res.blind_spot_note:
        ctx.log(f"note: {res.blind_spot_note}")
    return {"figures": {"n_train": len(train), "epochs": s.epochs, "original": orig, "rows": rows, "cells": cells,
                        "units": res.units, "blind_spot_note": res.blind_spot_note},
            "files": files}


def stage_explain(ctx: Context) -> dict[str, Any]:
    from ..explain import explain
    from ..models import create_model
    from ..train import accuracy, get_protocol, train_classifier
    from ..train.checkpoint import load_classifier, save_classifier

    e, cfg = ctx.cfg.explain, ctx.cfg
    d = ctx.out / "explain"
    path = d / "classifier.safetensors"
    proto = get_protocol(e.protocol)
    if e.max_steps:
        proto = proto.with_overrides(max_steps=e.max_steps)
    if e.precision:
        proto = proto.with_overrides(precision=precision_name(e.precision, ctx.device))
    c, h, _ = ctx.train.shape
    key = {"data": ctx.data_key, "protocol": proto.to_dict(), "seed": cfg.seed, "device": ctx.device}

    def make() -> dict[str, Any]:
        ctx.log(f"explain: training a {proto.model} classifier ({proto.name} protocol)")
        model = create_model(proto.model, channels=c, num_classes=ctx.train.num_classes, image_size=h,
                             seed=cfg.seed).to(ctx.device)
        train_classifier(model, ctx.train, protocol=proto, seed=cfg.seed, progress=ctx.progress)
        acc = accuracy(model, ctx.test, autocast=resolve_precision(proto.precision, ctx.device))
        save_classifier(path, model.cpu(), name=proto.model, channels=c, image_size=h, classes=ctx.train.classes,
                        extra={"source": ctx.dataset, "protocol": proto.name, "seed": cfg.seed, "test_accuracy": acc})
        return {"test_accuracy": acc}

    clf = ctx.cached("explain/classifier.item.json", key, make)
    model, info = load_classifier(path, device=ctx.device)
    ec = explain_config(e, seed=cfg.seed, density=cfg.density.model or None)
    ctx.log(f"explain: simplifying {e.n} {e.select} test images ({e.space} space, {e.steps} steps)")
    refs = real_subset(ctx.train, min(10, min(ctx.train.counts())), seed=derive_seed(cfg.seed, "explain/refs"))
    r = explain(model, ctx.test, info=info, select=e.select, n=e.n, config=ec, references=refs, out=d,
                progress=ctx.progress)
    ctx.piece_done(f"{e.n} explanations")
    ph = r.posthoc
    figures = {"select": e.select, "n": int(len(r.indices)), "space": e.space, "steps": e.steps,
               "classifier_accuracy": clf["test_accuracy"], "indices": r.indices.tolist(),
               "bpd_orig": float(ph.bpd_orig.mean()), "bpd_sim": float(ph.bpd_sim.mean()),
               "prediction_kept": float((ph.pred_sim == ph.pred_orig).float().mean())}
    note = ph.blind_spot_note(ctx.dataset)
    if note:
        ctx.log(f"note: {note}")
        figures["blind_spot_note"] = note
    return {"figures": figures,
            "files": {"figure": "explain/figure.png", "classifier": "explain/classifier.safetensors"}}


def stage_continual(ctx: Context) -> dict[str, Any]:
    from ..continual import make_settings, plot_curve, run_continual
    from ..condense import condense, output_paths
    from ..data.condensed import save_condensed

    k, cfg = ctx.cfg.continual, ctx.cfg
    d = ctx.out / "continual"
    d.mkdir(parents=True, exist_ok=True)
    files = []
    for i, task in enumerate(k.tasks[:-1]):
        path = d / f"replay-{i}-{task.replace(':', '_').replace('/', '_')}.safetensors"
        real = load_dataset(task, split="train", root=cfg.data.root or None)
        if k.replay == "random-real":
            if not path.exists():
                save_condensed(path, real_subset(real, k.replay_ipc, seed=derive_seed(cfg.seed, f"continual/{i}")),
                               method="random-real", source=task)
        else:
            lam = cfg.condense.lambda_sim[0] if cfg.condense.lambda_sim else 0.0
            cc = condense_config(cfg.condense, ipc=k.replay_ipc, lam=lam, seed=cfg.seed)

            def make(cc=cc, real=real, path=path) -> float | None:
                ckpt = output_paths(path)["checkpoint"]
                return condense(real, cc, out=path, resume=ckpt.exists(), device=ctx.device, progress=ctx.progress).bpd

            ctx.cached(f"continual/replay-{i}.item.json", {"task": task, "condense": cc.to_dict()}, make)
        files.append(str(path))
    ccfg = continual_config(k)
    settings = make_settings({f"replay ({k.replay})": files}, no_replay=True, kd=(False,))
    ctx.log(f"continual: {' -> '.join(k.tasks)}, replay {k.replay} ipc {k.replay_ipc}, {k.seeds} seed(s)")
    res = run_continual(list(k.tasks), settings, config=ccfg, seeds=list(range(cfg.seed, cfg.seed + k.seeds)),
                        out=d / "run", resume=True, root=cfg.data.root or None, device=ctx.device,
                        progress=ctx.progress)
    ctx.piece_done("continual runs")
    plot_curve(res, d / "curve.png")
    doc = res.to_dict()
    settings_out = [{kk: v for kk, v in s.items() if kk not in ("seconds", "replay")} for s in doc["settings"]]
    return {"figures": {"tasks": doc["tasks"], "head": doc["head"], "seeds": doc["seeds"], "replay": k.replay,
                        "replay_ipc": k.replay_ipc, "settings": settings_out, "table": res.markdown()},
            "files": {"curve": "continual/curve.png"}}


STAGE_FUNCS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "data": stage_data, "baseline": stage_baseline, "condense": stage_condense, "prune": stage_prune,
    "simplify": stage_simplify, "explain": stage_explain, "continual": stage_continual,
}


def stage_pieces(cfg: PipelineConfig, stage: str) -> int:
    """How many pieces (condensed sets, evaluations, runs...) ``stage`` finishes: its progress lines."""
    if stage == "baseline":
        return len(baseline_ipcs(cfg))
    if stage == "condense":
        c = cfg.condense
        real_init = condense_config(c, ipc=1, lam=0.0, seed=cfg.seed).init != "noise"  # its start is evaluated too
        # per (ipc, lambda): the set, its bits, its evaluation (and its scores); per ipc: its start's evaluation
        per_set = 3 + int(cfg.evaluate.scores)
        return (per_set * len(c.lambda_sim) + int(real_init and bool(c.lambda_sim))) * len(c.ipc)
    if stage == "prune":
        return (2 + int(cfg.evaluate.scores)) * len(cfg.prune.targets) * len(cfg.prune.rules)
    if stage in ("simplify", "explain"):
        return 2
    if stage == "continual":
        return 1 + (len(cfg.continual.tasks) - 1 if cfg.continual.replay != "random-real" else 0)
    return 0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def stage_plan(cfg: PipelineConfig) -> list[str]:
    """The stages this config runs, in order."""
    on = {"data": True, "baseline": True, "condense": cfg.condense.enabled, "prune": cfg.prune.enabled,
          "simplify": cfg.simplify.enabled, "explain": cfg.explain.enabled, "continual": cfg.continual.enabled}
    return [s for s in STAGES if on[s]]


def _evaluate_key(cfg: PipelineConfig) -> dict[str, Any]:
    """The [evaluate] settings in a stage key; the scores' settings only when scores are on (so that
    runs from before they existed keep their keys)."""
    d = asdict(cfg.evaluate)
    if not d["scores"]:
        for k in ("scores", "score_labels", "temperature"):
            d.pop(k)
    return d


def stage_key(ctx: Context, stage: str) -> str:
    """Content key of ``stage``: its settings, the data, evaluation settings, seed, upstream keys.
    The density model's weights are not in it (see :data:`DENSITY_STAGES`)."""
    cfg = ctx.cfg
    own: dict[str, Any] = {"data": {"bpd_images": cfg.data.bpd_images, "density": cfg.density.model},
                           "baseline": {"ipcs": baseline_ipcs(cfg)}}.get(stage, {})
    if stage in ("condense", "prune", "simplify", "explain", "continual"):
        own = section_dict(getattr(cfg, stage))  # keys left unset are left out: the keys of older runs hold
    deps = {"prune": ["baseline"] + (["condense"] if cfg.prune.source == "condensed" else []),
            "condense": ["baseline"], "continual": ["condense"] if cfg.continual.replay == "condensed" else []}
    evaluated = stage in ("baseline", "condense", "prune")  # the stages whose figures are evaluate() accuracies
    return config_hash({"format": FORMAT, "stage": stage, "own": own, "data": ctx.data_key,
                        "evaluate": _evaluate_key(cfg) if evaluated else None, "seed": cfg.seed, "device": ctx.device,
                        "density": cfg.density.model, "bits": BITS_DEFINITION, "deps": {d: ctx.stage_keys.get(d) for d in deps.get(stage, [])},
                        "condense_settings": section_dict(cfg.condense) if stage == "continual" else None})


# ---------------------------------------------------------------------------------------------- run


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_out_dir(out: Path, cfg_hash: str, *, resume: bool, force: bool) -> str:
    """Whether ``out`` may be used; returns ``new``, ``same`` (finished, same config), ``resume``,
    or ``force``. Refuses another config's results (unless ``force``) and an interrupted run of this
    config without ``resume`` (``force`` also continues it: finished pieces are always reused)."""
    if not out.exists():
        return "new"
    if not out.is_dir():
        raise BadInputError(f"output {out} is a file; give a directory (out = \"...\" in the config or --out)")
    meta_path = out / "pipeline.json"
    meta = _read_json(meta_path)
    if meta is None:
        if any(out.iterdir()) and not force:
            raise MismatchError(f"output directory {out} is not empty and holds no simplebits pipeline run; choose "
                                "another out directory, or pass --force to write into it anyway")
        return "force" if force else "new"
    if meta.get("config_hash") != cfg_hash:
        if not force:
            raise MismatchError(f"output directory {out} holds the results of a different config (hash "
                                f"{meta.get('config_hash')}, this one {cfg_hash}; compare {out}/config.toml): "
                                "choose another out directory, or pass --force to recompute the stages whose "
                                "settings changed (stages that did not change are kept)")
        return "force"
    if meta.get("state") == "done":
        return "same"
    if not (resume or force):
        raise MismatchError(f"output directory {out} holds an interrupted run of this config: pass --resume to "
                            "continue it (finished stages and pieces are kept), or choose another out directory")
    return "resume" if resume else "force"


def _load_data(cfg: PipelineConfig, log: Callable[[str], None]) -> tuple[str, ImageSet, ImageSet]:
    root = cfg.data.root or None
    spec = cfg.data.dataset
    name = spec.split(":", 1)[0] if ":" in spec and not Path(spec).exists() else spec
    try:
        return name, load_dataset(name, split="train", root=root), load_dataset(name, split="test", root=root)
    except NotFoundError as e:
        if not cfg.data.fallback:
            raise NotFoundError(f"data set {spec!r} is not available here ({e}); install it, set data.root, or set "
                                "data.fallback to a set that is (e.g. fallback = \"mnist-5k\")") from None
        log(f"note: {e}; using data.fallback = {cfg.data.fallback!r}")
        fb = cfg.data.fallback
        return fb, load_dataset(fb, split="train", root=root), load_dataset(fb, split="test", root=root)


def _resolve_device(name: str) -> str:
    """The config's ``device`` (checked by :func:`simplebits.runtime.resolve_device`, named as the TOML key)."""
    return resolve_device(name, setting="device =")


def run(
    config: str | os.PathLike | dict[str, Any] | PipelineConfig,
    *,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    force: bool = False,
    report: bool = True,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run the pipeline of ``config`` (a TOML path, a built-in name, a dict or a
    :class:`PipelineConfig`); ``out`` overrides the config's output directory.

    Finished stages whose settings match are skipped; ``resume`` continues an interrupted run;
    ``force`` allows an output directory holding another config's results (changed stages are
    recomputed). Writes ``OUT/report.html`` unless ``report=False``. See the module docstring.
    """
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise BadInputError("the pipeline runs as one process: under torchrun every rank would run it whole and write "
                            "the same files; split a grid of runs with simplebits.sweep instead (docs/scale-out.md)")
    cfg = load_config(config)
    if out is not None:
        from dataclasses import replace

        cfg = replace(cfg, out=str(out))
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    device = _resolve_device(cfg.device)
    t_start = time.perf_counter()
    dataset, train, test = _load_data(cfg, say)
    if dataset != cfg.data.dataset:
        cfg = cfg.with_dataset(dataset)
    out_dir = Path(cfg.out)
    # where the results go and the report's title are not part of what they are
    cfg_hash = config_hash({k: v for k, v in cfg.to_dict().items() if k not in ("out", "title")})
    mode = check_out_dir(out_dir, cfg_hash, resume=resume, force=force)
    meta = _begin(cfg, out_dir, cfg_hash, device)
    ctx = Context(cfg, out_dir, device=device, resume=resume, progress=progress, log=say)
    ctx.train, ctx.test, ctx.dataset = train, _test_subset(cfg, test), dataset
    ctx.data_key = fingerprint(ctx.train) + fingerprint(ctx.test)
    plan = stage_plan(cfg)
    state = _RunState(plan, meta, seconds={"load": round(time.perf_counter() - t_start, 2)})
    for i, stage in enumerate(plan):
        _run_stage(ctx, state, i, stage, mode)
    return _finish(ctx, state, cfg_hash, report)


def _begin(cfg: PipelineConfig, out_dir: Path, cfg_hash: str, device: str) -> dict[str, Any]:
    """Create ``out_dir``, write ``pipeline.json`` (state running) and ``config.toml``; returns the meta."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "config_hash": cfg_hash, "config": cfg.to_dict(), "version": _version(),
            "state": "running", "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "device": device}
    old = _read_json(out_dir / "pipeline.json") or {}
    meta["seconds"] = old.get("seconds", {}) if old.get("config_hash") == cfg_hash else {}
    atomic_write_json(out_dir / "pipeline.json", meta)
    atomic_write_text(out_dir / "config.toml", cfg.to_toml())
    return meta


def _test_subset(cfg: PipelineConfig, test: ImageSet) -> ImageSet:
    """The test images every accuracy is measured on: a class-balanced ``data.test_size`` of them."""
    if cfg.data.test_size and cfg.data.test_size < len(test):
        per = max(1, min(cfg.data.test_size // test.num_classes, min(test.counts())))
        test = real_subset(test, per, seed=derive_seed(cfg.seed, "data/test")).with_meta(
            name=f"{test.name}[{per * test.num_classes}]")
    return test


@dataclass
class _RunState:
    """What the stages of one run have produced so far: the plan, meta, seconds, files, skips."""

    plan: list[str]
    meta: dict[str, Any]
    seconds: dict[str, float]
    files: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _run_stage(ctx: Context, state: _RunState, i: int, stage: str, mode: str) -> None:
    """Stage ``stage`` (number ``i`` of the plan): skipped when finished with the same key, else run."""
    say, n = ctx.log, len(state.plan)
    key = stage_key(ctx, stage)
    ctx.stage_keys[stage] = key
    sdir = ctx.out / stage
    done = _read_json(sdir / "stage.json")
    density = None
    if stage in DENSITY_STAGES:
        try:
            density = ctx.density_id
        except NotFoundError:  # the model file is gone: a finished stage keeps the figures it recorded, a stage
            density = (done or {}).get("density")  # that must run says what is missing when it loads the model
    if done is not None and done.get("key") == key and done.get("density") == density:
        say(f"[{i + 1}/{n}] {stage}: finished earlier with these settings, skipped")
        ctx.figures[stage], state.files[stage] = done["figures"], done["files"]
        state.seconds[stage] = done.get("seconds", 0.0)
        state.skipped.append(stage)
        return
    started = _read_json(sdir / "started.json")
    if sdir.exists() and (started is None or started.get("key") != key):
        if mode not in ("force",) and started is not None:
            raise MismatchError(f"{sdir} holds a stage made with other settings; pass --force to replace it")
        shutil.rmtree(sdir)  # another config's stage (allowed by --force): start it afresh
    sdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(sdir / "started.json", {"key": key})
    if done is not None and done.get("key") == key:  # only the density model's weights differ
        was = (done.get("density") or {}).get("weights", "not recorded")
        say(f"[{i + 1}/{n}] {stage}: the weights of the density model {density['model']} changed ({was} -> "
            f"{density['weights']}): recomputing its bpd figures, reusing its other pieces")
    say(f"[{i + 1}/{n}] {stage} ...")
    ctx.begin_stage(stage, stage_pieces(ctx.cfg, stage))
    t0 = time.perf_counter()
    got = STAGE_FUNCS[stage](ctx)
    secs = round(time.perf_counter() - t0, 2)
    say(f"[{i + 1}/{n}] {stage}: done in {secs:.0f}s")
    atomic_write_json(sdir / "stage.json", {"key": key, "figures": got["figures"], "files": got["files"],
                                            "seconds": secs, "density": density})
    ctx.figures[stage], state.files[stage] = got["figures"], got["files"]
    state.seconds[stage] = secs
    state.meta["seconds"] = {**state.meta["seconds"], stage: secs}
    atomic_write_json(ctx.out / "pipeline.json", state.meta)


def _finish(ctx: Context, state: _RunState, cfg_hash: str, report: bool) -> PipelineResult:
    """Mark the run done: figures.json, the report, pipeline.json; the result."""
    out_dir, meta, plan, dataset = ctx.out, state.meta, state.plan, ctx.dataset
    for stale in set(STAGES) - set(plan):  # a stage the config no longer runs: keep its files, drop it from the report
        ctx.figures.pop(stale, None)
    peak = peak_rss_mb()
    meta.update(state="done", finished=time.strftime("%Y-%m-%d %H:%M:%S"), seconds=state.seconds,
                skipped=state.skipped, peak_rss_mb=round(peak, 1), stages=plan, dataset=dataset)
    atomic_write_json(out_dir / "figures.json", {"dataset": dataset, "config_hash": cfg_hash, "figures": ctx.figures})
    report_path = None
    if report:
        from .report import write_report

        report_path = str(write_report(out_dir, meta=meta))
    atomic_write_json(out_dir / "pipeline.json", meta)
    return PipelineResult(str(out_dir), ctx.cfg, ctx.figures, state.files, state.seconds, state.skipped, report_path,
                          peak, dataset)


def load_result(out: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(meta, figures, files)`` of a pipeline output directory, from its files only."""
    d = Path(out)
    meta = _read_json(d / "pipeline.json")
    if meta is None:
        raise NotFoundError(f"{d} holds no pipeline run (no readable pipeline.json); run `simplebits run CONFIG.toml` "
                            "first")
    figures, files = {}, {}
    for stage in meta.get("stages") or STAGES:
        doc = _read_json(d / stage / "stage.json")
        if doc is not None:
            figures[stage], files[stage] = doc["figures"], doc["files"]
    return meta, figures, files
