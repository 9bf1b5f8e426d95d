"""The pipeline's configuration: a TOML file, validated into frozen dataclasses.

Every setting has a type, a default and a line of help (the field metadata); ``docs/pipeline.md``'s
settings table is generated from them (``python -m simplebits.pipeline.schema``), so the docs and
the checks cannot drift apart. The tables whose stage builds a config dataclass are generated too
(:func:`_section`): besides its own keys, ``[condense]`` has one key per setting of
:class:`~simplebits.condense.CondenseConfig`, ``[simplify]`` of ``SimplifyConfig``,
``[explain]`` of ``ExplainConfig``, ``[continual]`` of ``ContinualConfig`` and ``[prune]`` of
the training dynamics' ``DynamicsConfig``, with that field's type and help (absent: the preset's
value; absent keys are left out of hashes, so older configs keep theirs); the condensation
method names come from the method registry. Loading checks, in order: TOML syntax, unknown
tables and keys (naming the valid ones), types, ranges, names (methods, rules, protocols,
presets), and settings that contradict each other (a pruning target IPC_T >= the set's IPC_F,
pruning a condensed set that is not condensed, condensation settings a method refuses). Whether
the data set is installed is checked when the run starts (:func:`simplebits.pipeline.run`), since
a config may be written on another machine.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import types
from dataclasses import MISSING, asdict, dataclass, field, fields, make_dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from ..condense.config import CondenseConfig
from ..continual.config import ContinualConfig
from ..errors import BadInputError, NotFoundError, UnknownNameError
from ..explain.posthoc import ExplainConfig
from ..prune.dynamics import DynamicsConfig
from ..runtime import PRECISIONS
from ..settings import coerce, type_name, user_fields
from ..simplify.config import SimplifyConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["SECTIONS", "CONDENSE_KEYS", "CONTINUAL_KEYS", "EXPLAIN_KEYS", "PRUNE_KEYS", "SIMPLIFY_KEYS",
           "PipelineConfig", "apply_overrides", "builtin_config", "condense_config", "config_hash", "continual_config",
           "dynamics_config", "explain_config", "list_builtin", "load_config", "parse_config", "section_dict",
           "settings_table", "simplify_config"]


def _f(default: Any, help: str, *, choices: Any = None) -> Any:  # noqa: A002 - the word users read
    """A key with its help; ``choices`` (a function, read when the docs are made) are listed after it."""
    meta = {"help": help} if choices is None else {"help": help, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataSection:
    dataset: str = _f("fashion-mnist", "data set spec (`simplebits data list`), e.g. fashion-mnist, mnist-5k, "
                                       "digits, cifar10, a folder or an .npz file")
    fallback: str = _f("", "data set to use when `dataset` is not installed (\"\": none, the run stops)")
    root: str = _f("", "data root for the installable sets (\"\": the default locations)")
    test_size: int = _f(0, "test images every accuracy is measured on: a class-balanced random subset of the test "
                           "split (0: all of it); testing a ConvNet on 10,000 images costs ~20 s per network on 2 cores")
    bpd_images: int = _f(500, "test images scored under the density model for the histogram (0: skip)")


@dataclass(frozen=True)
class DensitySection:
    model: str = _f("", "density model for every bpd figure (\"\": the shipped gray32 / rgb32 by channels)")


@dataclass(frozen=True)
class EvaluateSection:
    protocol: str = _f("quick", "evaluation protocol for every accuracy (quick, dc, dc-mnist, dsa, idc)")
    seeds: int = _f(3, "networks trained per accuracy (mean ± std over seeds seed..seed+seeds-1)")
    max_steps: int = _f(0, "cap on each network's optimiser steps (0: the protocol's own; quick caps at 300)")
    network: str = _f("", "network trained for every accuracy (\"\": the protocol's own); convnet, resnet10-ap, "
                          "nf-wrn-16-2 (docs/models.md)")
    baseline_ipc: list[int] = _f([], "extra IPCs for the random-real baseline (every IPC used elsewhere is "
                                     "evaluated anyway)")
    scores: bool = _f(False, "DD-Ranking's HLR, IOR, LRS and ARS for every condensed and pruned set (more training: "
                             "the set and random real with and without augmentation, and networks on the whole "
                             "training set, cached; docs/evaluate.md)")
    score_labels: str = _f("hard", "labels of the scores' evaluation: hard, or a teacher's soft labels with loss "
                                   "kl, sce or mse (the teacher: the whole-data network of the first seed)")
    temperature: float = _f(1.0, "softmax temperature of the kl/sce soft labels")
    precision: str | None = _f(None, "arithmetic of every evaluation network (unset: fp32); bf16 trains and tests "
                                     "under autocast, 1.6-1.9x faster per network where the CPU has AMX/AVX512-BF16, accuracies "
                                     "agree statistically (docs/evaluate.md); auto: bf16 where the hardware has it",
                               choices=PRECISIONS)


@dataclass(frozen=True)
class _CondenseKeys:
    """The [condense] keys of the pipeline itself; the others are generated from the fields of
    :class:`~simplebits.condense.CondenseConfig` (see :data:`CONDENSE_KEYS`)."""

    enabled: bool = _f(True, "run the condensation stage")
    method: str = _f("dc", "condensation method", choices=lambda: _condense("list_methods")())
    ipc: list[int] = _f([1], "images per class of the condensed sets")
    lambda_sim: list[float] = _f([0.0], "simplification weights; one set per (ipc, lambda); 0 = plain method")
    iterations: int = _f(30, "outer iterations (0: the preset's)")
    preset: str = _f("quick", "condensation preset", choices=lambda: _condense("list_presets")())
    batch_real: int = _f(128, "real images per class per matching step (0: the preset's)")


def _condense(name: str) -> Any:
    from .. import condense

    return getattr(condense, name)


def _toml_type(tp: Any) -> bool:
    """Whether a TOML value can be read as annotation ``tp`` (:func:`simplebits.settings.coerce`)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return all(_toml_type(a) for a in get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        return all(_toml_type(a) for a in get_args(tp) if a is not Ellipsis)
    return tp in (int, float, str, bool) or tp is dict or origin is dict


def _section(name: str, own: type, config_cls: type, *, from_run: tuple[str, ...] = (),
             doc: str = "") -> tuple[type, tuple[str, ...]]:
    """The table ``name``: the pipeline's own keys (the dataclass ``own``) and one key per other field
    of ``config_cls`` declared with :func:`~simplebits.settings.setting` for TOML (same name, type and
    help; default None = the preset's value, left out of hashes; metadata ``generated``), except the
    fields the run sets itself (``from_run``) and those whose type TOML cannot express. Returns the
    table's dataclass and the generated key names, so a setting added to the config is a key too."""
    skip = {f.name for f in fields(own)} | set(from_run)
    hints = get_type_hints(config_cls)
    gen = [(f.name, hints[f.name], field(default=None, metadata={**f.metadata, "generated": True}))
           for f in user_fields(config_cls, where="toml") if f.name not in skip and _toml_type(hints[f.name])]
    cls = make_dataclass(name, gen, bases=(own,), frozen=True)
    cls.__module__ = __name__
    cls.__doc__ = doc
    return cls, tuple(n for n, _, _ in gen)


def _given(section: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The generated keys of ``section`` that are set (not None): what a stage passes to its config."""
    return {k: getattr(section, k) for k in keys if getattr(section, k) is not None}


#: CondenseConfig fields the run sets, not the [condense] table: the top-level ``seed``
CONDENSE_FROM_RUN = ("seed",)
#: the [condense] table and its keys generated from CondenseConfig (absent: the preset's value)
CondenseSection, CONDENSE_KEYS = _section(
    "CondenseSection", _CondenseKeys, CondenseConfig, from_run=CONDENSE_FROM_RUN,
    doc="The [condense] table: the pipeline's own keys (enabled, the ipc and lambda_sim lists, and method, preset, "
        "iterations, batch_real with their defaults) and every other setting of CondenseConfig, absent = the "
        "preset's value.")


def condense_config(c: Any, *, ipc: int, lam: float, seed: int) -> Any:
    """The :class:`~simplebits.condense.CondenseConfig` of one condensed set of the [condense] table
    ``c``: the preset of ``c.method``, then the keys given (``iterations = 0`` / ``batch_real = 0``:
    the preset's), ``lam`` (0: the plain method) and the run's ``seed``."""
    from ..condense import make_config

    given = _given(c, CONDENSE_KEYS)
    return make_config(c.method, ipc=ipc, preset=c.preset, iterations=c.iterations or None,
                       batch_real=c.batch_real or None, lambda_sim=lam if lam > 0 else None, seed=seed, **given)


@dataclass(frozen=True)
class _PruneKeys:
    """The [prune] keys of the pipeline itself; the others are the training dynamics' settings, generated
    from the fields of :class:`~simplebits.prune.DynamicsConfig` (see :data:`PRUNE_KEYS`)."""

    enabled: bool = _f(True, "run the pruning stage")
    source: str = _f("random-real", "the set to prune: random-real (a random real subset at from_ipc) or condensed "
                                    "(the condensed set at from_ipc and the first lambda)")
    from_ipc: int = _f(10, "IPC_F, images per class of the set pruned")
    targets: list[int] = _f([1], "IPC_T values, each < from_ipc")
    rules: list[str] = _f(["yoco", "random"], "pruning rules (yoco, random, el2n, aum, forgetting, entropy, ssp, ccs)")
    runs: int = _f(3, "training-dynamics runs averaged by the score-based rules")


#: DynamicsConfig fields the run sets, not the [prune] table: the top-level ``seed``
PRUNE_FROM_RUN = ("seed",)
PruneSection, PRUNE_KEYS = _section(
    "PruneSection", _PruneKeys, DynamicsConfig, from_run=PRUNE_FROM_RUN,
    doc="The [prune] table: the pipeline's own keys and every other setting of DynamicsConfig (the training "
        "dynamics of the score-based rules), absent = its default.")


def dynamics_config(p: Any, *, seed: int) -> Any:
    """The :class:`~simplebits.prune.DynamicsConfig` of the [prune] table ``p`` when it sets any key
    generated from it (``runs`` and the run's ``seed`` as the stage passes them), else None: the
    stage then leaves the dynamics to :func:`~simplebits.prune.prune_set`'s default, as before."""
    given = _given(p, PRUNE_KEYS)
    return DynamicsConfig(runs=p.runs, seed=seed, **given) if given else None


@dataclass(frozen=True)
class _SimplifyKeys:
    """The [simplify] keys of the pipeline itself; the others are generated from the fields of
    :class:`~simplebits.simplify.SimplifyConfig` (see :data:`SIMPLIFY_KEYS`)."""

    enabled: bool = _f(True, "run the SimpleBits stage (simplifier trained jointly with a classifier)")
    lambdas: list[float] = _f([8.0], "bpd weights; one simplifier per (lambda, seed)")
    seeds: int = _f(1, "joint-training seeds per lambda")
    epochs: int = _f(3, "joint-training epochs")
    train_size: int = _f(2000, "training images (a class-balanced random subset; 0: all)")
    preset: str = _f("quick", "simplify preset (quick or paper)")


#: SimplifyConfig fields the run sets, not the [simplify] table: the [density] model and the seeds
SIMPLIFY_FROM_RUN = ("density", "seed")
SimplifySection, SIMPLIFY_KEYS = _section(
    "SimplifySection", _SimplifyKeys, SimplifyConfig, from_run=SIMPLIFY_FROM_RUN,
    doc="The [simplify] table: the pipeline's own keys and every other setting of SimplifyConfig, absent = the "
        "preset's value.")


def simplify_config(s: Any, *, density: str | None) -> Any:
    """The :class:`~simplebits.simplify.SimplifyConfig` of the [simplify] table ``s``: its preset, its
    ``epochs``, the run's density model and the generated keys given."""
    from ..simplify import make_simplify_config

    return make_simplify_config(preset=s.preset, epochs=s.epochs, density=density, **_given(s, SIMPLIFY_KEYS))


@dataclass(frozen=True)
class _ExplainKeys:
    """The [explain] keys of the pipeline itself; the others are generated from the fields of
    :class:`~simplebits.explain.ExplainConfig` (see :data:`EXPLAIN_KEYS`)."""

    enabled: bool = _f(True, "train a classifier on the data and explain its predictions")
    select: str = _f("misclassified", "which test images: misclassified or correct")
    n: int = _f(8, "images explained")
    space: str = _f("latent", "where the image is simplified: latent (Glow latent) or input")
    steps: int = _f(300, "optimisation steps per batch")
    protocol: str = _f("quick", "training protocol of the classifier explained")
    max_steps: int = _f(0, "cap on the classifier's optimiser steps (0: the protocol's own)")
    precision: str | None = _f(None, "arithmetic of the classifier's training (unset: fp32; bf16; auto), as "
                                     "evaluate.precision", choices=PRECISIONS)


#: ExplainConfig fields the run sets, not the [explain] table: the top-level ``seed``, the [density] model
EXPLAIN_FROM_RUN = ("seed", "density")
ExplainSection, EXPLAIN_KEYS = _section(
    "ExplainSection", _ExplainKeys, ExplainConfig, from_run=EXPLAIN_FROM_RUN,
    doc="The [explain] table: the pipeline's own keys and every other setting of ExplainConfig, absent = the "
        "quick preset's value.")


def explain_config(e: Any, *, seed: int, density: str | None) -> Any:
    """The :class:`~simplebits.explain.ExplainConfig` of the [explain] table ``e``: its ``space`` and
    ``steps``, the run's seed and density model and the generated keys given."""
    from ..explain import make_explain_config

    return make_explain_config(space=e.space, steps=e.steps, seed=seed, density=density, **_given(e, EXPLAIN_KEYS))


@dataclass(frozen=True)
class _ContinualKeys:
    """The [continual] keys of the pipeline itself; the others are generated from the fields of
    :class:`~simplebits.continual.ContinualConfig` (see :data:`CONTINUAL_KEYS`)."""

    enabled: bool = _f(False, "run the continual-learning stage")
    tasks: list[str] = _f(["printed-digits", "mnist-5k", "digits"], "task sequence (data set specs)")
    replay: str = _f("random-real", "replay sets of the earlier tasks: random-real or condensed (condense.method, "
                                    "first lambda)")
    replay_ipc: int = _f(10, "images per class of each replay set")
    epochs: int = _f(0, "training epochs per task (0: the quick preset's)")
    seeds: int = _f(1, "seeds")


#: ContinualConfig fields the run sets, not the [continual] table: none (the seeds are the table's own key)
CONTINUAL_FROM_RUN: tuple[str, ...] = ()
ContinualSection, CONTINUAL_KEYS = _section(
    "ContinualSection", _ContinualKeys, ContinualConfig, from_run=CONTINUAL_FROM_RUN,
    doc="The [continual] table: the pipeline's own keys and every other setting of ContinualConfig, absent = the "
        "quick preset's value.")


def continual_config(k: Any) -> Any:
    """The :class:`~simplebits.continual.ContinualConfig` of the [continual] table ``k``: the quick
    preset, its ``epochs`` (0: the preset's) and the generated keys given."""
    from ..continual import make_config

    return make_config("quick", epochs=k.epochs or None, **_given(k, CONTINUAL_KEYS))


@dataclass(frozen=True)
class PipelineConfig:
    """A whole pipeline run. ``out``, ``seed`` and ``device`` are top-level keys; the rest are tables."""

    out: str = _f("simplebits-out", "output directory (the report is OUT/report.html)")
    seed: int = _f(0, "base seed of every stage")
    device: str = _f("cpu", "cpu, cuda, cuda:N or auto")
    title: str = _f("", "report title (\"\": derived from the data set)")
    data: DataSection = field(default_factory=DataSection)
    density: DensitySection = field(default_factory=DensitySection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    condense: CondenseSection = field(default_factory=CondenseSection)
    prune: PruneSection = field(default_factory=PruneSection)
    simplify: SimplifySection = field(default_factory=SimplifySection)
    explain: ExplainSection = field(default_factory=ExplainSection)
    continual: ContinualSection = field(default_factory=ContinualSection)

    def to_dict(self) -> dict[str, Any]:
        """Every key and its value; keys left unset (None: the preset's) are left out, so that the
        config hash and stage keys of a config are those it had before such keys existed."""
        d = asdict(self)
        for name in SECTIONS:
            d[name] = section_dict(getattr(self, name))
        return d

    def to_toml(self) -> str:
        """The config as TOML (every key written, defaults included): what ``OUT/config.toml`` holds."""
        d = self.to_dict()
        lines = [f"{k} = {_toml_value(d[k])}" for k in TOP_KEYS]
        for name in SECTIONS:
            lines += ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in d[name].items()]
        return "\n".join(lines) + "\n"

    def with_dataset(self, dataset: str) -> "PipelineConfig":
        return replace(self, data=replace(self.data, dataset=dataset))


SECTIONS: dict[str, type] = {
    "data": DataSection, "density": DensitySection, "evaluate": EvaluateSection, "condense": CondenseSection,
    "prune": PruneSection, "simplify": SimplifySection, "explain": ExplainSection, "continual": ContinualSection,
}
TOP_KEYS = ("out", "seed", "device", "title")


def section_dict(section: Any) -> dict[str, Any]:
    """A table's keys and values, without the keys left unset (None): what hashes and TOML hold."""
    return {k: v for k, v in asdict(section).items() if v is not None}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table, e.g. net_options = {width = 64}
        return "{" + ", ".join(f"{k if k.replace('_', '').isalnum() else json.dumps(k)} = {_toml_value(x)}"
                               for k, x in v.items()) + "}"
    raise TypeError(type(v))


_PLAIN = (int, float, str, bool)


_type_name = type_name  # how the docs and the errors name a key's type (simplebits.settings)


def _coerce(where: str, value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` or a BadInputError naming the key, the type wanted and the value got
    (:func:`simplebits.settings.coerce`), with an example of the key for the plain types."""
    try:
        return coerce(where, value, tp)
    except BadInputError as e:
        if tp in _PLAIN or get_origin(tp) is list:
            raise BadInputError(f"{e}; e.g. {where.split('.')[-1].split('[')[0]} = {_example(tp)}") from None
        raise


def _example(tp: Any) -> str:
    if get_origin(tp) is list:
        return f"[{_example(get_args(tp)[0])}, {_example(get_args(tp)[0])}]"
    return {int: "3", float: "1.5", str: '"name"', bool: "true"}[tp]


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls) if cls is not PipelineConfig or f.name not in SECTIONS]
    unknown = [k for k in raw if k not in names]
    if unknown:
        place = f"table [{where}]" if where else "the top level"
        valid = names + ([f"[{s}]" for s in SECTIONS] if not where else [])
        raise BadInputError(f"unknown key {unknown[0]!r} in {place}; valid keys: {', '.join(valid)}")
    return {k: _coerce(f"{where}.{k}" if where else k, v, hints[k]) for k, v in raw.items()}


def parse_config(raw: dict[str, Any], *, base: PipelineConfig | None = None) -> PipelineConfig:
    """A validated :class:`PipelineConfig` from a parsed TOML document (a dict); keys not given
    keep ``base``'s values (default: the defaults)."""
    if not isinstance(raw, dict):
        raise BadInputError(f"a pipeline config is a TOML table, got {type(raw).__name__}")
    if "sweep" in raw:
        raise BadInputError("this config has a [sweep] table: run it with `simplebits sweep FILE.toml` "
                            "(`simplebits run` runs one pipeline)")
    base = base or PipelineConfig()
    top = {k: v for k, v in raw.items() if k not in SECTIONS}
    for k, v in top.items():
        if isinstance(v, dict):
            raise BadInputError(f"unknown table [{k}]; valid tables: {', '.join(f'[{s}]' for s in SECTIONS)}")
    kwargs: dict[str, Any] = _build(PipelineConfig, top, "")
    for name, cls in SECTIONS.items():
        sec = raw.get(name, {})
        if not isinstance(sec, dict):
            raise BadInputError(f"{name} must be a table ([{name}] with keys below it), got {sec!r}")
        kwargs[name] = replace(getattr(base, name), **_build(cls, sec, name))
    return validate(replace(base, **kwargs))


def load_config(path: str | Path | dict[str, Any] | PipelineConfig) -> PipelineConfig:
    """A config from a TOML file path, a dict, a :class:`PipelineConfig`, or a built-in name
    (``demo``, ``small``; see :func:`list_builtin`)."""
    if isinstance(path, PipelineConfig):
        return validate(path)
    if isinstance(path, dict):
        return parse_config(path)
    p = Path(path)
    if not p.exists() and str(path) in list_builtin():
        return builtin_config(str(path))
    if not p.is_file():
        raise NotFoundError(f"config file not found: {p}; write one (see docs/pipeline.md) or use a built-in one: "
                            f"{', '.join(list_builtin())}")
    return parse_config(read_toml(p, "a pipeline config", "docs/pipeline.md"))


def read_toml(p: Path, what: str, doc: str) -> dict[str, Any]:
    """The parsed TOML of file ``p``; one clear error for a binary or malformed file."""
    if p.is_file() and p.stat().st_size > 16 * 1024**2:
        raise BadInputError(f"{p} is {p.stat().st_size:,} bytes, too large for {what} (TOML, a few KB); is it the "
                            "right file?")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BadInputError(f"{p} is not a text file; {what} is TOML") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInputError(f"{p} is not valid TOML ({str(e).splitlines()[0]}); see {doc} for an example") from None
    except (RecursionError, MemoryError, ValueError, OSError) as e:
        raise BadInputError(f"{p}: cannot read {what} ({type(e).__name__}: {(str(e).splitlines() or [''])[0]}); "
                            f"see {doc} for an example") from None


def apply_overrides(cfg: PipelineConfig, sets: list[str]) -> PipelineConfig:
    """``cfg`` with ``KEY=VALUE`` settings applied (``evaluate.seeds=1``, ``condense.ipc=[1,10]``,
    ``out=run2``); VALUE is read as TOML, and as a plain string when it is not valid TOML."""
    raw = cfg.to_dict()
    for item in sets:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInputError(f"--set takes KEY=VALUE (e.g. evaluate.seeds=1), got {item!r}")
        try:
            v = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            v = value.strip()
        table, dot, name = key.partition(".")
        if dot:
            if table not in SECTIONS:
                raise BadInputError(f"unknown table {table!r} in --set {item}; valid tables: {', '.join(SECTIONS)}")
            raw[table][name] = v
        else:
            raw[key] = v
    return parse_config(raw)


def list_builtin() -> list[str]:
    return sorted(f.name[:-5] for f in resources.files("simplebits.pipeline").joinpath("configs").iterdir()
                  if f.name.endswith(".toml"))


def builtin_config(name: str) -> PipelineConfig:
    files = resources.files("simplebits.pipeline").joinpath("configs")
    if name not in list_builtin():
        raise UnknownNameError("built-in config", name, list_builtin())
    return parse_config(tomllib.loads(files.joinpath(f"{name}.toml").read_text(encoding="utf-8")))


def builtin_text(name: str) -> str:
    if name not in list_builtin():
        raise UnknownNameError("built-in config", name, list_builtin())
    return resources.files("simplebits.pipeline").joinpath("configs", f"{name}.toml").read_text(encoding="utf-8")


def _positive(where: str, v: int, *, zero: bool = False) -> None:
    if v < (0 if zero else 1):
        raise BadInputError(f"{where} must be {'>= 0' if zero else '>= 1'}, got {v}")


def validate(cfg: PipelineConfig) -> PipelineConfig:
    """Ranges, names and settings that contradict each other; returns ``cfg``."""
    _check_data_and_evaluate(cfg)
    _check_condense(cfg)
    _check_prune(cfg)
    _check_simplify(cfg)
    _check_explain(cfg)
    _check_continual(cfg)
    return cfg


def _check_data_and_evaluate(cfg: PipelineConfig) -> None:
    from ..train import LABEL_MODES, get_protocol

    if not cfg.out.strip():
        raise BadInputError("out must name an output directory, e.g. out = \"my-run\"")
    if not cfg.data.dataset.strip():
        raise BadInputError("data.dataset is empty; name a data set, e.g. dataset = \"fashion-mnist\"")
    _positive("data.bpd_images", cfg.data.bpd_images, zero=True)
    _positive("data.test_size", cfg.data.test_size, zero=True)
    get_protocol(cfg.evaluate.protocol)
    get_protocol(cfg.explain.protocol)
    if cfg.evaluate.network:
        from ..models import list_models

        known = [m.name for m in list_models()]
        if cfg.evaluate.network not in known:
            raise UnknownNameError("evaluate.network", cfg.evaluate.network, known)
    _positive("evaluate.seeds", cfg.evaluate.seeds)
    _positive("evaluate.max_steps", cfg.evaluate.max_steps, zero=True)
    _positive("explain.max_steps", cfg.explain.max_steps, zero=True)
    for k in cfg.evaluate.baseline_ipc:
        _positive("evaluate.baseline_ipc", k)
    if cfg.evaluate.score_labels not in LABEL_MODES:
        raise UnknownNameError("evaluate.score_labels", cfg.evaluate.score_labels, list(LABEL_MODES))
    if not (cfg.evaluate.temperature > 0 and math.isfinite(cfg.evaluate.temperature)):
        raise BadInputError(f"evaluate.temperature must be a positive number, got {cfg.evaluate.temperature}")
    for name, value in (("evaluate.precision", cfg.evaluate.precision), ("explain.precision", cfg.explain.precision)):
        if value is not None and value not in PRECISIONS:
            raise UnknownNameError(name, value, list(PRECISIONS))


def _check_condense(cfg: PipelineConfig) -> None:
    from ..condense import METHODS
    from ..condense import PRESETS as CONDENSE_PRESETS

    c = cfg.condense
    if c.method not in METHODS:
        raise UnknownNameError("condense.method", c.method, METHODS)
    if c.preset not in CONDENSE_PRESETS:
        raise UnknownNameError("condense.preset", c.preset, tuple(CONDENSE_PRESETS))
    if c.enabled and (not c.ipc or not c.lambda_sim):
        raise BadInputError("condense.ipc and condense.lambda_sim need at least one value each (or enabled = false)")
    for k in c.ipc:
        _positive("condense.ipc", k)
    if any(lam < 0 for lam in c.lambda_sim):
        raise BadInputError(f"condense.lambda_sim values must be >= 0, got {c.lambda_sim}")
    _positive("condense.iterations", c.iterations, zero=True)
    _positive("condense.batch_real", c.batch_real, zero=True)
    if c.enabled:  # every set's settings, as the stage will make them (the keys from CondenseConfig included)
        for ipc in c.ipc:
            for lam in c.lambda_sim:
                _condense_settings(c, ipc, lam, cfg.seed)


def _condense_settings(c: Any, ipc: int, lam: float, seed: int) -> None:
    try:
        condense_config(c, ipc=ipc, lam=lam, seed=seed)
    except BadInputError as e:
        raise BadInputError(f"[condense] (ipc {ipc}, lambda_sim {lam:g}): {e}") from None


def _check_prune(cfg: PipelineConfig) -> None:
    from ..prune import get_rule

    p, c = cfg.prune, cfg.condense
    if p.source not in ("random-real", "condensed"):
        raise UnknownNameError("prune.source", p.source, ("random-real", "condensed"))
    for r in p.rules:
        get_rule(r)
    _positive("prune.from_ipc", p.from_ipc)
    _positive("prune.runs", p.runs)
    if _given(p, PRUNE_KEYS):
        _stage_settings("prune", lambda: dynamics_config(p, seed=cfg.seed))
    if not p.enabled:
        return
    if not p.targets or not p.rules:
        raise BadInputError("prune.targets and prune.rules need at least one value each (or enabled = false)")
    for t in p.targets:
        _positive("prune.targets", t)
        if t >= p.from_ipc:
            raise BadInputError(f"prune.targets holds IPC_T = {t} but from_ipc (IPC_F) is {p.from_ipc}: pruning "
                                f"makes a set smaller, so every target must be < {p.from_ipc}")
    if p.source == "condensed" and (not c.enabled or p.from_ipc not in c.ipc):
        raise BadInputError(f"prune.source = \"condensed\" prunes the condensed set at from_ipc = "
                            f"{p.from_ipc}, "
                            f"but condensation {'is disabled' if not c.enabled else f'makes ipc {c.ipc}'}: "
                            f"add {p.from_ipc} to condense.ipc or use source = \"random-real\"")


def _check_simplify(cfg: PipelineConfig) -> None:
    from ..simplify import PRESETS as SIMPLIFY_PRESETS

    s = cfg.simplify
    if s.preset not in SIMPLIFY_PRESETS:
        raise UnknownNameError("simplify.preset", s.preset, tuple(SIMPLIFY_PRESETS))
    if s.enabled and not s.lambdas:
        raise BadInputError("simplify.lambdas needs at least one value (or enabled = false)")
    if any(lam < 0 for lam in s.lambdas):
        raise BadInputError(f"simplify.lambdas values must be >= 0, got {s.lambdas}")
    _positive("simplify.seeds", s.seeds)
    _positive("simplify.epochs", s.epochs)
    _positive("simplify.train_size", s.train_size, zero=True)
    if _given(s, SIMPLIFY_KEYS):  # the settings given, as the stage will make them
        _stage_settings("simplify", lambda: simplify_config(s, density=cfg.density.model or None))


def _stage_settings(table: str, make: Any) -> None:
    """``make()`` (a stage's config from the keys given), its error naming the table."""
    try:
        make()
    except BadInputError as e:
        raise BadInputError(f"[{table}]: {e}") from None


def _check_explain(cfg: PipelineConfig) -> None:
    from ..explain import SPACES

    e = cfg.explain
    if e.select not in ("misclassified", "correct"):
        raise UnknownNameError("explain.select", e.select, ("misclassified", "correct"))
    if e.space not in SPACES:
        raise UnknownNameError("explain.space", e.space, SPACES)
    _positive("explain.n", e.n)
    _positive("explain.steps", e.steps)
    if _given(e, EXPLAIN_KEYS):
        _stage_settings("explain", lambda: explain_config(e, seed=cfg.seed, density=cfg.density.model or None))


def _check_continual(cfg: PipelineConfig) -> None:
    k = cfg.continual
    if k.replay not in ("random-real", "condensed"):
        raise UnknownNameError("continual.replay", k.replay, ("random-real", "condensed"))
    if k.enabled and len(k.tasks) < 2:
        raise BadInputError(f"continual.tasks needs at least two tasks, got {k.tasks}")
    _positive("continual.replay_ipc", k.replay_ipc)
    _positive("continual.epochs", k.epochs, zero=True)
    _positive("continual.seeds", k.seeds)
    if _given(k, CONTINUAL_KEYS):
        _stage_settings("continual", lambda: continual_config(k))
    if k.enabled and k.replay == "condensed":  # the replay sets are condensed with the [condense] settings
        lams = cfg.condense.lambda_sim
        _condense_settings(cfg.condense, k.replay_ipc, lams[0] if lams else 0.0, cfg.seed)


def config_hash(obj: Any) -> str:
    """Content hash of a JSON-able value (sorted keys): the identity of a config or a stage."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def settings_table() -> str:
    """Markdown table of every key: table, key, type, default, help (for docs/pipeline.md)."""
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]

    def add(prefix: str, cls: type) -> None:
        hints = get_type_hints(cls)
        for f in fields(cls):
            if cls is PipelineConfig and f.name in SECTIONS:  # the tables (a key may share a table's name)
                continue
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            shown = f"`{_toml_value(default)}`" if default is not None else \
                "the preset's" if f.metadata.get("generated") else "unset"
            help_text = f.metadata["help"]
            choices = f.metadata.get("choices")
            if choices is not None:
                help_text += f" ({', '.join(str(c) for c in (choices() if callable(choices) else choices))})"
            rows.append(f"| `{prefix}{f.name}` | {_type_name(hints[f.name])} | {shown} | "
                        f"{help_text.replace('|', '/')} |")

    add("", PipelineConfig)
    for name, cls in SECTIONS.items():
        add(f"{name}.", cls)
    return "\n".join(rows)
