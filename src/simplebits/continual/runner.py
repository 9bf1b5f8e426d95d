"""Task-incremental training with condensed replay (paper S12; Zhao & Bilen 2021's setting).

For each stage k (task k of the sequence) the network trains on task k's training images and,
with replay, on the condensed sets of tasks 1..k-1; with ``kd`` it is also distilled from the
network as it was at the end of stage k-1, on the replay images. Without replay, ``kd`` means
distillation on the new task's images through the old tasks' heads (Learning without
Forgetting, Li & Hoiem 2016): the only images a replay-free learner has. After every stage the
network is tested on every task's test set.

Schedule (S12): SGD with cosine annealing; the first task gets ``first_cycles`` cycles of
``epochs`` epochs, each restarting at ``lr``; every later task one cycle. The optimiser
(momentum) is new at every stage and kept across the restarts within a stage.

Loss per step: ``CE(new batch) + CE(replay batch) + kd_weight * T^2 * KL(prev^T || now^T)``,
the two cross-entropies each a mean over its own batch, so the replayed tasks weigh as much as
the new one whatever the set sizes (the paper does not say how it weighs them; this is the
choice that keeps a 100-image replay set from drowning in a 5000-image task).

The first stage sees no replay and no previous model, so it is the same for every setting:
it is trained once per seed and shared (saved to ``OUT/runs/stage1-s{seed}.safetensors``).
Every finished (setting, seed) run is saved to ``OUT/runs/`` at once; ``resume=True`` skips
those whose settings, tasks and replay files match.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import DSA
from ..errors import BadInputError, MismatchError
from ..io import atomic_write_json, load_state, save_state
from ..models import create_model
from ..train import derive_seed, generator, predict_logits
from ..train.loop import Batch, BatchHook, LossHook, train_loop
from .config import ContinualConfig, make_config
from .tasks import TaskSequence, build_tasks, fingerprint, load_replay
from ..runtime import resolve_device

__all__ = ["Setting", "SettingResult", "ContinualResult", "run_continual", "make_settings", "train_stage"]

_NEG = -1e4  # logit for outputs outside an image's head (exp underflows to exactly 0)


@dataclass(frozen=True)
class Setting:
    """One line of the comparison: a replay group (files, one per earlier task) or none, KD on/off."""

    name: str  # replay group name ("no replay" for none)
    replay: tuple[str, ...] | None
    kd: bool

    @property
    def label(self) -> str:
        return self.name + (" + KD" if self.kd else "")

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in self.name) + ("-kd" if self.kd else "-nokd")


def make_settings(
    replay: dict[str, Sequence[str]] | Sequence[Sequence[str]] | None = None,
    *,
    no_replay: bool = False,
    kd: Sequence[bool] = (False, True),
) -> list[Setting]:
    """Settings from replay groups (``{"lam0": [a, b], "simplified": [a2, b2]}`` or a list of
    file lists, named ``replay``, ``replay2``...), the no-replay baseline, and the KD choices."""
    groups: list[tuple[str, tuple[str, ...]]] = []
    if isinstance(replay, dict):
        groups = [(str(k), tuple(str(f) for f in v)) for k, v in replay.items()]
    elif replay:
        groups = [(f"replay{i + 1 if i else ''}", tuple(str(f) for f in v)) for i, v in enumerate(replay)]
    if not groups and not no_replay:
        raise BadInputError("nothing to run: give --replay FILES (one condensed set per earlier task) and/or --no-replay")
    names = [g[0] for g in groups] + (["no replay"] if no_replay else [])
    if len(set(names)) != len(names):
        raise BadInputError(f"replay group names repeat: {names}; name them NAME=FILE,FILE")
    kds = sorted(set(bool(k) for k in kd))
    if not kds:
        raise BadInputError("choose --kd, --no-kd or both")
    out = [Setting("no replay", None, k) for k in kds] if no_replay else []
    out += [Setting(n, files, k) for n, files in groups for k in kds]
    return out


@dataclass
class SettingResult:
    setting: Setting
    replay_bpd: float | None  # mean over the replay files' stored bpd (None: not stored / no replay)
    replay_images: int
    acc: dict[int, list[list[float]]] = field(default_factory=dict)  # seed -> [stage][task]
    seconds: dict[int, float] = field(default_factory=dict)

    def seen_mean(self, seed: int) -> list[float]:
        """Mean accuracy over the tasks seen so far, after each stage."""
        return [sum(row[: k + 1]) / (k + 1) for k, row in enumerate(self.acc[seed])]

    def stats(self, stage: int) -> tuple[float, float]:
        vals = [self.seen_mean(s)[stage] for s in sorted(self.acc)]
        return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)

    def task_stats(self, task: int, stage: int = -1) -> tuple[float, float]:
        vals = [self.acc[s][stage][task] for s in sorted(self.acc)]
        return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


@dataclass
class ContinualResult:
    tasks: list[str]
    head: str
    config: ContinualConfig
    seeds: list[int]
    results: list[SettingResult]
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)
    stage1_seconds: dict[int, float] = field(default_factory=dict)  # first-stage training, once per seed

    def _rows(self, pm: str = "±") -> tuple[list[str], list[list[str]]]:
        stages = ["after " + t if k == 0 else "+" + t for k, t in enumerate(self.tasks)]
        head = ["setting", "replay bpd"] + stages + [f"final {t}" for t in self.tasks]
        rows = []
        for r in self.results:
            cells = [r.setting.label, "-" if r.replay_bpd is None else f"{r.replay_bpd:.2f}"]
            for k in range(len(self.tasks)):
                m, s = r.stats(k)
                cells.append(f"{100 * m:.2f} {pm} {100 * s:.2f}")
            for t in range(len(self.tasks)):
                m, s = r.task_stats(t)
                cells.append(f"{100 * m:.1f} {pm} {100 * s:.1f}")
            rows.append(cells)
        return head, rows

    def format(self) -> str:
        head, rows = self._rows()
        widths = [max(len(x) for x in col) for col in zip(head, *rows)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
        out = [f"continual: {' -> '.join(self.tasks)}  (head {self.head}, preset {self.config.preset}, "
               f"seeds {','.join(map(str, self.seeds))}; mean accuracy % over the tasks seen so far, mean ± std)",
               line(head), line(["-" * w for w in widths])]
        out += [line(r) for r in rows]
        return "\n".join(out)

    def markdown(self) -> str:
        head, rows = self._rows()
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks, "head": self.head, "config": self.config.to_dict(), "seeds": self.seeds,
            "seconds": round(self.seconds, 1), "files": self.files,
            "stage1_seconds": {str(k): v for k, v in sorted(self.stage1_seconds.items())},
            "settings": [{
                "name": r.setting.name, "kd": r.setting.kd, "label": r.setting.label,
                "replay": list(r.setting.replay) if r.setting.replay else None,
                "replay_bpd": r.replay_bpd, "replay_images": r.replay_images,
                "accuracy": {str(s): r.acc[s] for s in sorted(r.acc)},
                "seen_mean": {"mean": [r.stats(k)[0] for k in range(len(self.tasks))],
                              "std": [r.stats(k)[1] for k in range(len(self.tasks))]},
                "final_mean": r.stats(len(self.tasks) - 1)[0], "final_std": r.stats(len(self.tasks) - 1)[1],
                "seconds": {str(s): r.seconds[s] for s in sorted(r.seconds)},
            } for r in self.results],
        }


# ------------------------------------------------------------------------------ losses
def masked_ce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over each row's own head (``mask`` (B, K) True on its outputs)."""
    return F.cross_entropy(logits.masked_fill(~mask, _NEG), targets)


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))`` over each row's head, batch mean."""
    t = temperature
    s = F.log_softmax(student.masked_fill(~mask, _NEG) / t, dim=1)
    q = F.log_softmax(teacher.masked_fill(~mask, _NEG) / t, dim=1)
    return (q.exp() * (q - s)).sum(1).mean() * (t * t)


def test_accuracies(model: nn.Module, seq: TaskSequence) -> list[float]:
    """Accuracy on every task's test set, each read from its own head."""
    mask = seq.mask()
    accs = []
    for i, t in enumerate(seq.tasks):
        logits = predict_logits(model, t.test.images).masked_fill(~mask[i], _NEG)
        accs.append(float((logits.argmax(1) == t.test.labels + t.offset).float().mean()))
    return accs


# ------------------------------------------------------------------------------ one stage
class _StageTarget(NamedTuple):
    """What a stage's loss scores a step's outputs against: the new images' global labels, the
    replay rows drawn (None without replay) and their augmented images, the step in its cycle."""

    y: torch.Tensor
    ridx: torch.Tensor | None
    xr: torch.Tensor | None
    step: int


def train_stage(
    model: nn.Module,
    seq: TaskSequence,
    stage: int,
    config: ContinualConfig,
    *,
    seed: int,
    replay: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    teacher: nn.Module | None = None,
    progress: bool | None = None,
    desc: str = "stage",
) -> nn.Module:
    """Train ``model`` in place on task ``stage`` (plus ``replay`` = (images, global labels,
    task ids)); ``teacher`` set turns on distillation. The steps are
    :func:`simplebits.train.loop.train_loop`'s, with torch's threads and whole steps (no thread
    rule, no pieces: the two cross-entropies are means over their own batches)."""
    device = next(model.parameters()).device
    n = seq.tasks[stage].train.images.shape[0]
    bs = min(config.batch_size, n)
    steps_cycle = config.epochs * -(-n // bs)
    cycles = config.first_cycles if stage == 0 else 1
    tag = f"stage{stage}"
    g_order = generator(seed, f"{tag}/order")
    batch, loss = _stage_hooks(seq, stage, config, seed=seed, device=device, replay=replay, teacher=teacher,
                               desc=desc, steps_cycle=steps_cycle)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if teacher is not None:
        teacher.eval()
    return train_loop(
        model, n=n, batch_size=bs, steps=cycles * steps_cycle, optimizer=opt,
        order=lambda epoch: torch.randperm(n, generator=g_order).to(device), batch=batch, loss=loss,
        lr=lambda step: _cosine(config.lr, step % steps_cycle, steps_cycle),
        dropout_seed=derive_seed(seed, f"{tag}/dropout"), progress=progress, desc=desc,
    )


def _cosine(lr: float, step: int, steps_cycle: int) -> float:
    """Cosine annealing from ``lr`` to 0 over a cycle; every cycle restarts at ``lr`` (S12)."""
    return 0.5 * lr * (1.0 + math.cos(math.pi * step / steps_cycle))


def _stage_hooks(seq: TaskSequence, stage: int, config: ContinualConfig, *, seed: int, device: torch.device,
                 replay: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None, teacher: nn.Module | None,
                 desc: str, steps_cycle: int) -> tuple[BatchHook, LossHook]:
    """:func:`train_stage`'s batch hook (the new task's batch, with replay a draw of the replay
    set, augmented, after it) and loss hook (see the module docstring; a clear error when the
    loss stops being finite)."""
    task = seq.tasks[stage]
    mask = seq.mask(device)
    x_all, y_all = task.train.images.to(device), (task.train.labels + task.offset).to(device)
    g_rep, g_aug = (generator(seed, f"stage{stage}/{p}") for p in ("replay", "augment"))
    dsa = DSA(config.replay_dsa, flip=seq.flip_ok) if (config.replay_dsa and replay is not None) else None
    rx, ry, rt = (v.to(device) for v in replay) if replay is not None else (None, None, None)
    old_tasks = list(range(stage))[:1] if seq.head == "shared" else list(range(stage))  # shared: one KD term

    def batch(epoch: int, step: int, idx: torch.Tensor) -> Batch:
        x, y = x_all[idx], y_all[idx]
        if rx is None:
            return Batch(x, _StageTarget(y, None, None, step % steps_cycle))
        ridx = torch.randperm(rx.shape[0], generator=g_rep)[: config.replay_batch].to(device)
        xr = rx[ridx] if dsa is None else dsa(rx[ridx], generator=g_aug)
        return Batch(torch.cat([x, xr]), _StageTarget(y, ridx, xr, step % steps_cycle))

    def loss(out: torch.Tensor, data: Batch, piece: slice) -> torch.Tensor:
        y, ridx, xr, step = data.target
        m_new = mask[stage].expand(y.shape[0], -1)
        if ridx is None:
            total = masked_ce(out, y, m_new)
            if teacher is not None:  # LwF: distil on the new images through the old heads
                with torch.no_grad():
                    t_out = teacher(data.x)
                for t in old_tasks:
                    m_old = mask[t].expand(y.shape[0], -1)
                    total = total + config.kd_weight * kd_loss(out, t_out, m_old, config.kd_temperature)
        else:
            out_new, out_rep = out[: y.shape[0]], out[y.shape[0]:]
            m_rep = mask[rt[ridx]]
            total = masked_ce(out_new, y, m_new) + masked_ce(out_rep, ry[ridx], m_rep)
            if teacher is not None:
                with torch.no_grad():
                    t_out = teacher(xr)
                total = total + config.kd_weight * kd_loss(out_rep, t_out, m_rep, config.kd_temperature)
        if not torch.isfinite(total):
            raise MismatchError(f"{desc}: the loss became {float(total)} at step {step}; lower --lr")
        return total

    return batch, loss


# ------------------------------------------------------------------------------ the comparison
Replay = tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], float | None, list[str]]  # set, mean bpd, prints


def _run_key(setting: Setting, seq: TaskSequence, config: ContinualConfig, replay_prints: list[str]) -> dict[str, Any]:
    return {"config": config.digest(), "tasks": seq.names, "head": seq.head, "kd": setting.kd,
            "replay": replay_prints, "name": setting.name}


def run_continual(
    tasks: Sequence[str] | TaskSequence,
    settings: Sequence[Setting],
    *,
    config: ContinualConfig | None = None,
    seeds: int | Sequence[int] = 3,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    root: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> ContinualResult:
    """Run every setting for every seed; see the module docstring. Returns the table's data.

    ``tasks`` are data set specs (``["printed-digits", "mnist-5k", "digits"]``) or a built
    :class:`TaskSequence`; a setting's replay files are the condensed sets of the tasks before
    the last, in order.
    """
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    t0 = time.perf_counter()
    config = config or make_config()
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise BadInputError("give at least one seed")
    if not settings:
        raise BadInputError("no settings to run")
    seq = tasks if isinstance(tasks, TaskSequence) else build_tasks(list(tasks), config, root=root)
    replays = _load_replays(settings, seq)  # every file loaded and checked before any training
    runs_dir = Path(out) / "runs" if out is not None else None
    if runs_dir is not None:
        runs_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for st in settings:
        rep = replays.get(st.replay) if st.replay else None
        results.append(SettingResult(st, rep[1] if rep else None, int(rep[0][0].shape[0]) if rep else 0))
    runs = _Runs(seq, config, torch.device(device), runs_dir, resume=resume, progress=progress,
                 say=log or (lambda s: None))
    for seed in seed_list:
        for res in results:
            runs.run(res, seed, replays.get(res.setting.replay) if res.setting.replay else None)
    return ContinualResult(seq.names, seq.head, config, seed_list, results, time.perf_counter() - t0,
                           stage1_seconds=runs.stage1_seconds)


def _load_replays(settings: Sequence[Setting], seq: TaskSequence) -> dict[tuple[str, ...], Replay]:
    """Every replay group's files, loaded and checked against their tasks: the joined set
    (images, global labels, task ids), the files' mean stored bpd and their fingerprints."""
    n_tasks = len(seq.tasks)
    replays: dict[tuple[str, ...], Replay] = {}
    for st in settings:
        if st.replay is None or st.replay in replays:
            continue
        if len(st.replay) != n_tasks - 1:
            raise MismatchError(
                f"replay group {st.name!r} has {len(st.replay)} file(s) but the sequence {','.join(seq.names)} has "
                f"{n_tasks - 1} earlier task(s) to replay: give one condensed set per task before the last, in order")
        xs, ys, ts, bpds, prints = [], [], [], [], []
        for k, f in enumerate(st.replay):
            ds, bpd = load_replay(f, seq.tasks[k], seq)
            xs.append(ds.images)
            ys.append(ds.labels + seq.tasks[k].offset)
            ts.append(torch.full((len(ds),), k, dtype=torch.long))
            bpds.append(bpd)
            prints.append(fingerprint(ds))
        bpd_mean = statistics.mean(bpds) if all(b is not None for b in bpds) else None
        replays[st.replay] = ((torch.cat(xs), torch.cat(ys), torch.cat(ts)), bpd_mean, prints)
    return replays


class _Runs:
    """The (setting, seed) runs of one comparison: the shared first stage (trained once per seed,
    saved and, with ``resume``, read back), the later stages, the saved results."""

    def __init__(self, seq: TaskSequence, config: ContinualConfig, device: torch.device, runs_dir: Path | None, *,
                 resume: bool, progress: bool | None, say: Callable[[str], None]):
        self.seq, self.config, self.device, self.runs_dir = seq, config, device, runs_dir
        self.resume, self.progress, self.say = resume, progress, say
        self.stage1: dict[int, tuple[dict[str, torch.Tensor], list[float]]] = {}
        self.stage1_seconds: dict[int, float] = {}

    def fresh_model(self, seed: int) -> nn.Module:
        seq, config = self.seq, self.config
        return create_model(config.model, channels=seq.channels, num_classes=seq.num_outputs,
                            image_size=seq.image_size, seed=derive_seed(seed, "init"),
                            **config.model_options).to(self.device)

    def first_stage(self, seed: int) -> tuple[dict[str, torch.Tensor], list[float]]:
        """The network after the first task (its state, its accuracies): the same for every setting."""
        if seed in self.stage1:
            return self.stage1[seed]
        path = self.runs_dir / f"stage1-s{seed}.safetensors" if self.runs_dir is not None else None
        key = json.dumps({"config": self.config.digest(), "tasks": self.seq.names, "head": self.seq.head},
                         sort_keys=True)
        if path is not None and self.resume and path.is_file():
            saved = load_state(path, kind="continual-stage1")
            if saved["key"] == key:
                self.stage1[seed] = ({k: v for k, v in saved["state"].items()}, list(saved["acc"]))
                if saved.get("seconds") is not None:
                    self.stage1_seconds[seed] = float(saved["seconds"])
                return self.stage1[seed]
        t_first = time.perf_counter()
        model = self.fresh_model(seed)
        train_stage(model, self.seq, 0, self.config, seed=seed, progress=self.progress,
                    desc=f"seed {seed}: {self.seq.names[0]}")
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        acc = test_accuracies(model, self.seq)
        self.stage1_seconds[seed] = round(time.perf_counter() - t_first, 2)
        if path is not None:
            save_state(path, {"key": key, "state": state, "acc": acc, "seconds": self.stage1_seconds[seed]},
                       kind="continual-stage1")
        self.stage1[seed] = (state, acc)
        return self.stage1[seed]

    def run(self, res: SettingResult, seed: int, rep: Replay | None) -> None:
        """One setting for one seed, or its saved result read back (``resume``)."""
        st = res.setting
        key = _run_key(st, self.seq, self.config, rep[2] if rep else [])
        path = self.runs_dir / f"{st.slug}-s{seed}.json" if self.runs_dir is not None else None
        if path is not None and self.resume and path.is_file():
            self._read_back(res, seed, path, key)
            self.say(f"seed {seed} {st.label}: done before (resumed)")
            return
        t_run = time.perf_counter()
        res.acc[seed] = self._stages(st, seed, rep)
        res.seconds[seed] = round(time.perf_counter() - t_run, 2)
        self.say(f"seed {seed} {st.label}: " + " -> ".join(f"{100 * m:.1f}" for m in res.seen_mean(seed)))
        if path is not None:
            atomic_write_json(path, {"key": key, "acc": res.acc[seed], "seconds": res.seconds[seed],
                                     "stage1_seconds": self.stage1_seconds.get(seed)})

    def _read_back(self, res: SettingResult, seed: int, path: Path, key: dict[str, Any]) -> None:
        saved = json.loads(path.read_text())
        if saved.get("key") != key:
            diff = sorted(k for k in key if saved.get("key", {}).get(k) != key[k])
            raise MismatchError(f"{path} was run with other {', '.join(diff)}; use another --out or drop --resume")
        res.acc[seed], res.seconds[seed] = saved["acc"], saved["seconds"]
        if saved.get("stage1_seconds") is not None:  # timings survive a resume
            self.stage1_seconds.setdefault(seed, float(saved["stage1_seconds"]))

    def _stages(self, st: Setting, seed: int, rep: Replay | None) -> list[list[float]]:
        """Accuracy on every task after each stage: the shared first one, then the later tasks."""
        state, acc0 = self.first_stage(seed)
        model = self.fresh_model(seed)
        model.load_state_dict(state)
        rows = [acc0]
        for k in range(1, len(self.seq.tasks)):
            teacher = self._frozen_copy(model, seed) if st.kd else None
            rp = None
            if rep is not None:
                x, y, t = rep[0]
                keep = t < k  # the condensed sets of the tasks before this one
                rp = (x[keep], y[keep], t[keep])
            train_stage(model, self.seq, k, self.config, seed=seed, replay=rp, teacher=teacher,
                        progress=self.progress, desc=f"seed {seed} {st.label}: {self.seq.names[k]}")
            rows.append(test_accuracies(model, self.seq))
        return rows

    def _frozen_copy(self, model: nn.Module, seed: int) -> nn.Module:
        """The network as it is now, frozen: the distillation teacher of the next stage."""
        teacher = self.fresh_model(seed)
        teacher.load_state_dict(model.state_dict())
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher
