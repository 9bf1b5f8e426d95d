"""Condensation settings: one frozen dataclass, named presets, and the loop schedule for any IPC.

:func:`make_config` is the one way in: ``make_config("dc", ipc=1, preset="quick", lambda_sim=100.0)``
starts from the preset of that method and applies the overrides, validating everything.

Presets
-------
Declared with each method (:func:`~simplebits.condense.registry.register_method` in
:mod:`simplebits.condense.methods`):

``paper``  the published settings (DC/DSA: 1000 outer iterations, batch_real 256, ConvNet-3 w128;
           IDC: 2000 iterations x 100 image updates; DM: 20000 iterations; SimpleBits: logits +
           Adam lr 0.1, betas (0.5, 0.99)). Hours on a CPU; meant for a GPU. The real-batch side
           (and the network's own steps between image updates) computes in bf16 where the hardware has it (``precision="auto"``: 1.6-1.9x faster on a
           CPU with AVX512-BF16, real gradients within ~1 %; PyTorch's default TF32 convolutions
           on recent GPUs round too, to 11 significant bits against bf16's 8). ``precision="fp32"``
           gives the float32 run.
``quick``  sized for a 2-core CPU (<= ~15 minutes per run at IPC 1): fewer iterations, real
           initialisation (it converges in fewer iterations than noise), ``torch.compile`` on the
           real-batch gradients where it pays (``compile="auto"``, see :func:`compiles`). Every value
           is printed in the run's metadata.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import BadInputError, UnknownNameError
from ..runtime import PRECISIONS
from ..settings import setting
from .registry import EVAL_PROTOCOL, METHODS, PRESETS, get_method, list_methods, list_presets

__all__ = [
    "CondenseConfig",
    "NetOptions",
    "METHODS",
    "MATCHES",
    "PRESETS",
    "make_config",
    "compiles",
    "COMPILE_MIN_ITERATIONS",
    "derive_loops",
    "EVAL_PROTOCOL",
    "fit_network",
]

MATCHES = ("layerwise", "mse", "cos", "neg-product", "unrolled")
INITS = ("noise", "real", "mix")
PARAMS = ("pixels", "logits")
OPTIMIZERS = ("sgd", "adam")
MATCH_PARAMS = ("all", "conv")
DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"
# METHODS, PRESETS and EVAL_PROTOCOL (the protocol each method's papers evaluate with, the CLI's
# --evaluate default) are live views of the method registry (registry.py; methods.py declares them)


def _convnet(name: str) -> Any:
    from ..models import convnet

    return getattr(convnet, name)


@dataclass(frozen=True)
class CondenseConfig:
    """Everything that decides a condensation run (hashed into checkpoints for ``--resume``).

    Matching
        ``method`` a registered method (dc | dsa | idc | dream | dm, :mod:`.registry`);
        ``match`` the gradient distance (layerwise, mse, cos, neg-product) or ``unrolled`` (loss
        of the real batch after one SGD step on the synthetic batch, paper S11); ``match_params``
        ``all`` (every weight, DC) or ``conv`` (conv weights only, IDC).
    Loop
        ``iterations`` outer iterations, each with a fresh network (seed derived from ``seed``
        and the iteration); ``outer_loop`` image updates per network and ``inner_loop`` network
        steps between them (None: :func:`derive_loops`); for idc/dream the network is trained on
        real batches (``net_steps`` per update), for dc/dsa on the synthetic set.
    Images
        ``ipc`` stored images per class; ``factor`` multi-formation (idc/dream); ``init`` noise |
        real | mix; ``param`` pixels (SGD runs in the data's normalised coordinates as the
        reference does; clamped to [0, 1] after every update unless ``clamp`` is False) | logits
        (sigmoid -> straight-through 8-bit rounding; the SimpleBits parametrisation);
        ``optimizer``, ``lr_img``, ``mom_img``, ``betas``. ``clamp=False`` reproduces DC/DSA/DM,
        which never clamp: the stored set is then unbounded (``range: unbounded``).
    Simplification
        ``lambda_sim`` None = off; otherwise the loss is
        ``10*C/(1+lam) * L_match + 2*lam/(1+lam) * mean bpd`` (paper Eq. 7) under ``density``
        (None: the shipped model for the channel count).
    Speed
        ``chunk`` real images per forward/backward piece (same gradient); 0 (default): the
        cache-sized pieces of :func:`simplebits.train.threads.step_pieces` in eager runs, 32
        channels-last images in compiled runs (what each measured fastest),
        ``compile`` torch.compile the real-batch network: ``True``, ``False`` or ``"auto"`` (the
        presets: only runs of at least :data:`COMPILE_MIN_ITERATIONS` iterations, where the one-time
        compile pays; see :func:`compiles`). Falls back to eager if no compiler is available.

    Every field is declared with :func:`~simplebits.settings.setting`: its help line is the text of
    its ``simplebits condense`` flag, of its ``[condense]`` key in a pipeline config and of both
    references in the docs, which are generated from these fields.
    """

    method: str = setting("dc", "condensation method", choices=lambda: list_methods())
    ipc: int = setting(1, "synthetic images per class to store", cli=False)  # a required flag, written by hand
    factor: int = setting(1, "multi-formation factor (idc/dream): each stored image holds factor x factor "
                             "decoded images")
    iterations: int = setting(200, "outer iterations, each with a fresh network")
    outer_loop: int | None = setting(None, "image updates per network", default_text="derived from IPC")
    inner_loop: int | None = setting(None, "network steps between image updates", default_text="derived from IPC")
    net_steps: int = setting(1, "network steps on real batches after each image update (idc/dream)")
    batch_real: int = setting(256, "real images per class per image update")
    batch_train: int = setting(256, "images per network step between image updates")
    lr_net: float = setting(0.01, "learning rate of the network's steps", default_text="0.01")
    match: str = setting("layerwise", "matching distance (unrolled: the real loss after one step on the "
                                      "synthetic set)", choices=MATCHES)
    match_params: str = setting("all", "parameters whose gradients are matched: every weight, or conv "
                                       "weights only (IDC)", choices=MATCH_PARAMS)
    dsa: str | None = setting(None, "DSA augmentation of the matched batches: ops joined by _ (\"\": none)",
                              metavar="STRATEGY")
    init: str = setting("real", "initialisation of the images (mix: collages of factor x factor real images)",
                        choices=INITS)
    param: str = setting("pixels", "what is optimised: the pixels, or logits through straight-through 8-bit "
                                   "rounding (SimpleBits)", choices=PARAMS)
    optimizer: str = setting("sgd", "optimiser of the images", choices=OPTIMIZERS)
    lr_img: float = setting(0.1, "image learning rate")
    mom_img: float = setting(0.5, "SGD momentum of the image updates")
    betas: tuple[float, float] = setting((0.5, 0.99), "Adam betas of the image updates", metavar="B1,B2")
    lambda_sim: float | None = setting(None, "weight of the simplification term (paper Eq. 7); 0 = the SimpleBits "
                                             "parametrisation without the bpd term; leave out for the plain method",
                                       metavar="L", default_text="off")
    density: str | None = setting(None, "density model for bpd: gray32, rgb32 or a flow file", metavar="MODEL",
                                  default_text="by channel count")
    net: str = setting("convnet", "network to match with", metavar="NAME", default_text="convnet")
    net_options: dict[str, Any] = setting({}, "options of the network: width, depth, norm, act (on the command "
                                              "line --width, --depth, --norm, --act)")
    dream_every: int = setting(10, "image updates between DREAM's re-clusterings of the representative batches",
                               default_text="10")
    seed: int = setting(0, "base seed of every random draw (init, networks, batches)", metavar="S",
                        default_text="0")
    chunk: int = setting(0, "real images per forward/backward piece, same gradient (0: sized for this "
                            "machine's cache)", default_text="0")
    compile: bool | str = setting(False, "torch.compile the real-batch network: true, false or \"auto\" (runs of "
                                         "enough iterations to pay)", cli=False)  # --compile / --no-compile by hand
    precision: str = setting("fp32", "arithmetic of the passes that need no image gradient (the real-batch side "
                                     "and the network's own steps between image updates): fp32; bf16 (autocast, float32 weights and "
                                     "gradients; 1.6-1.9x faster where the hardware has bf16, real gradients within "
                                     "~1%); auto (bf16 where the hardware has it, else fp32)",
                             choices=PRECISIONS, default_text="fp32; the paper presets: auto")
    checkpoint_every: int = setting(10, "iterations between checkpoints (for --resume)", default_text="10")
    preset: str = setting("custom", "settings preset", choices=lambda: list_presets())  # custom: not make_config's
    clamp: bool = setting(True, "clamp the images to [0, 1] after each update; off, they are stored unbounded, as "
                                "DC/DSA/DM do (evaluate/prune use their values, bpd and PNGs the clamped view)",
                          default_text="on")

    # ------------------------------------------------------------------ derived values
    @property
    def loops(self) -> tuple[int, int]:
        """(outer_loop, inner_loop) actually used."""
        o, i = derive_loops(self.ipc)
        return (self.outer_loop or o, self.inner_loop if self.inner_loop is not None else i)

    @property
    def simplify(self) -> bool:
        return self.lambda_sim is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        d["loops"] = list(self.loops)
        if self.clamp:  # every earlier version clamped: left out so their digests, stage keys and checkpoints hold
            del d["clamp"]
        if self.precision == "fp32":  # likewise: every earlier version computed in float32
            del d["precision"]
        return d

    def digest(self, *, ignore: tuple[str, ...] = ("iterations", "checkpoint_every", "compile", "chunk")) -> str:
        """Hash of the settings that change the result. ``iterations`` is left out so that a
        finished run can be resumed with more iterations; ``chunk``/``compile`` change only
        speed (and float rounding)."""
        d = {k: v for k, v in self.to_dict().items() if k not in ignore}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def validate(self) -> "CondenseConfig":
        """Names, ranges and settings that contradict each other (one clear error); returns self."""
        self._check_names()
        self._check_numbers()
        self._check_combinations()
        return self

    def _check_names(self) -> None:
        def choice(name: str, valid: Any) -> None:
            v = getattr(self, name)
            if v not in valid:
                raise UnknownNameError(name.replace("_", "-"), str(v), list(valid))

        choice("method", METHODS)
        choice("match", MATCHES)
        choice("init", INITS)
        choice("param", PARAMS)
        choice("optimizer", OPTIMIZERS)
        choice("match_params", MATCH_PARAMS)
        choice("precision", PRECISIONS)

    def _check_numbers(self) -> None:
        for name in ("ipc", "factor", "iterations", "net_steps", "batch_real", "batch_train", "chunk",
                     "checkpoint_every", "dream_every"):
            v, least = getattr(self, name), 0 if name == "chunk" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise BadInputError(f"{name.replace('_', '-')} must be an integer >= {least}; got {v!r}")
        if self.outer_loop is not None and (not isinstance(self.outer_loop, int) or self.outer_loop < 1):
            raise BadInputError(f"outer-loop must be an integer >= 1; got {self.outer_loop!r}")
        if self.inner_loop is not None and (not isinstance(self.inner_loop, int) or self.inner_loop < 0):
            raise BadInputError(f"inner-loop must be an integer >= 0; got {self.inner_loop!r}")
        for name in ("lr_img", "lr_net"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and v == v and v != float("inf")):
                raise BadInputError(f"{name.replace('_', '-')} must be a positive number; got {v!r}")
        if self.lambda_sim is not None:
            lam = self.lambda_sim
            if not isinstance(lam, (int, float)) or lam != lam or lam < 0 or lam == float("inf"):
                raise BadInputError(f"lambda-sim must be a finite number >= 0; got {lam!r}")

    def _check_combinations(self) -> None:
        """What the method's class says it accepts (its traits, see :class:`~.methods.Method`), and
        settings that exclude each other."""
        spec = get_method(self.method)
        if self.factor > 1 and not spec.trait("multi_formation", False):
            takers = " or ".join(m for m in METHODS if get_method(m).trait("multi_formation", False))
            raise BadInputError(
                f"factor {self.factor} (multi-formation) belongs to --method {takers}, not {self.method}; "
                f"use --factor 1 or --method {takers.split(' or ')[0]}"
            )
        if self.init == "mix" and self.factor == 1:
            raise BadInputError("init 'mix' builds collages of factor x factor real images; it needs --factor >= 2")
        if not (isinstance(self.compile, bool) or self.compile == "auto"):
            raise BadInputError(f"compile must be true, false or 'auto'; got {self.compile!r}")
        if not isinstance(self.clamp, bool):
            raise BadInputError(f"clamp must be true or false; got {self.clamp!r}")
        if not self.clamp and (self.param != "pixels" or self.lambda_sim is not None):
            raise BadInputError("--no-clamp applies to plain pixel condensation; the simplification term "
                                "(--lambda-sim) and the logits parametrisation need images in [0, 1]")
        matched = spec.trait("matches", "gradients")
        if matched != "gradients" and self.match != "layerwise":
            takers = "/".join(m for m in METHODS if get_method(m).trait("matches", "gradients") == "gradients")
            raise BadInputError(f"{self.method} matches {matched}; --match applies to {takers} only")


@dataclass(frozen=True)
class NetOptions:
    """The matching network's options as flags of their own (``--width 64``); given ones go into
    :attr:`CondenseConfig.net_options`, the rest stay the network's defaults."""

    width: int | None = setting(None, "network width", default_text="128")
    depth: int | None = setting(None, "conv blocks of the convnet", default_text=(
        "3; 2 for images under 16x16, where a third instance norm would normalise 2x2 maps and wreck matching: "
        "docs/condense.md, 'Small images'"))
    norm: str | None = setting(None, "network normalisation", choices=lambda: _convnet("NORMS"),
                               default_text="instance")
    act: str | None = setting(None, "network activation", choices=lambda: _convnet("ACTS"), default_text="relu")


# A cold torch.compile (empty inductor cache: a fresh machine) of the real-batch network costs
# 23.5 s (dc) / 14.4 s (dm) more in the first iteration than a warm one on a 2-core CPU
# (Fashion-MNIST IPC 1), and compiled iterations are 1.38x (dc: 8.69 -> 6.28 s) / 2.14x (dm: 1.86
# -> 0.87 s) faster, so a cold compile has paid for itself after 11 (dc) / 17 (dm) iterations
# (benchmarks/compile_cold.py). Runs of at least 20 iterations compile; shorter ones stay eager.
COMPILE_MIN_ITERATIONS = 20


def compiles(cfg: "CondenseConfig") -> bool:
    """Whether a run with ``cfg`` compiles its real-batch network (``compile`` resolved).

    ``"auto"`` compiles runs of at least :data:`COMPILE_MIN_ITERATIONS` iterations on any
    device. Compiled and eager runs agree up to float rounding; the digest ignores the choice, so
    a short run resumed with more iterations compiles from then on.
    """
    if cfg.compile == "auto":
        return cfg.iterations >= COMPILE_MIN_ITERATIONS
    return bool(cfg.compile)


def fit_network(cfg: "CondenseConfig", image_size: tuple[int, int]) -> "CondenseConfig":
    """``cfg`` with the matching network's depth fitted to the image size (the small-image rule).

    The default ConvNet-3 with instance norm normalises a 2x2 map in its last block on 8x8
    images, which wrecks matching (see :func:`simplebits.models.convnet.fit_depth`). When the
    network is ``convnet`` with instance norm and no ``depth`` was given, the depth becomes the
    largest one (at most 3) whose every norm sees at least 4x4 values: 2 for 8x8 to 15x15 images,
    3 from 16x16 up. It is written into ``net_options``, so the run's digest, checkpoint and
    metadata name the network actually used; sizes of 16x16 and up are left exactly as before.
    An explicit ``depth`` is always respected. The image learning rate needs no such rule: it acts
    in the data's normalised coordinates, and on ``digits`` at depth 2, lr 0.1 (83-86%) beat 0.03
    (83.0%) and 0.3 (81.0%) after 10-20 iterations.
    """
    from ..models.convnet import fit_depth

    opts = cfg.net_options
    if cfg.net != "convnet" or "depth" in opts or opts.get("norm", "instance") != "instance":
        return cfg
    depth = fit_depth(image_size, 3)
    return cfg if depth == 3 else replace(cfg, net_options={**opts, "depth": depth})


def derive_loops(ipc: int) -> tuple[int, int]:
    """(outer_loop, inner_loop) for any IPC, agreeing with DC's published table at 1, 10 and 50.

    outer = IPC (image updates per network: more images need more updates to be shaped by the
    same network); inner = 1 at IPC 1 (never used: as in DC, no network step follows the last
    outer step, so with outer 1 the network stays at its random init), otherwise ``round(500 / IPC)`` clipped to [1, 50] network steps on the synthetic set between
    updates: 10 -> 50, 50 -> 10, 20 -> 25, 100 -> 5.
    """
    if ipc < 1:
        raise BadInputError(f"ipc must be >= 1; got {ipc}")
    if ipc == 1:
        return 1, 1
    return ipc, int(min(50, max(1, round(500 / ipc))))


# SimpleBits parametrisation (REFERENCE.md §3): applied when --lambda-sim is given
_SIMPLEBITS = dict(param="logits", optimizer="adam", lr_img=0.1, betas=(0.5, 0.99))


def make_config(method: str = "dc", *, ipc: int = 1, preset: str = "quick", **overrides: Any) -> CondenseConfig:
    """Preset of ``method`` (its registered presets, :mod:`.registry`) + overrides -> a validated
    :class:`CondenseConfig`.

    With ``lambda_sim`` set (0 included), the images are parametrised as logits and optimised
    with Adam (lr 0.1, betas (0.5, 0.99)), as in the paper's SimpleBits condensation, unless
    ``param``/``optimizer``/``lr_img`` are given explicitly.
    """
    spec = get_method(method)
    if preset not in PRESETS:
        raise UnknownNameError("preset", str(preset), PRESETS)
    overrides = {k: v for k, v in overrides.items() if v is not None or k == "lambda_sim"}
    valid = {f.name for f in fields(CondenseConfig)}
    bad = sorted(set(overrides) - valid)
    if bad:
        raise BadInputError(f"unknown condensation setting(s) {bad}; valid: {sorted(valid)}")
    base: dict[str, Any] = spec.preset(preset)
    if overrides.get("lambda_sim") is not None:
        base.update(_SIMPLEBITS)
    base.update(overrides)
    if "betas" in base:
        base["betas"] = tuple(base["betas"])
    cfg = CondenseConfig(method=method, ipc=ipc, preset=preset, **base)
    return cfg.validate()


def config_from_dict(d: dict[str, Any]) -> CondenseConfig:
    """Inverse of :meth:`CondenseConfig.to_dict` (for checkpoints and metadata)."""
    d = {k: v for k, v in d.items() if k in {f.name for f in fields(CondenseConfig)}}
    if "betas" in d:
        d["betas"] = tuple(d["betas"])
    return replace(CondenseConfig(), **d).validate()
