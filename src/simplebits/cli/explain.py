"""`simplebits explain CLASSIFIER DATASET --out DIR` (post-hoc simplification, paper §5) and
`simplebits train-classifier DATASET --out FILE` (a classifier to explain)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..data import load_dataset
from ..data.inputs import default_test_spec, load_images
from ..errors import BadInputError
from ..explain import ExplainConfig, explain, make_explain_config
from ..models import create_model, list_models
from ..settings import setting
from ..train import accuracy, get_protocol, train_classifier
from ..train.checkpoint import load_classifier, save_classifier
from .common import (add_data_root, add_deprecated, add_device, add_force, add_json, add_net, add_options, add_out,
                     check_out, emit, load_input, looks_like_file)
from .evaluate import resolve_device


@dataclass(frozen=True)
class ExplainOptions:
    """Which images `simplebits explain` explains, and how (ExplainConfig has the optimisation)."""

    select: str = setting("misclassified", "misclassified, correct, or indices like 3,17,42")
    n: int = setting(32, "images to explain (a seeded random choice of the selection)")
    preset: str = setting("quick", "step count and learning rate", choices=("quick", "paper"))
    references: str | None = setting(None, "training images for the saliency baselines (default: the data set's "
                                           "train split)", metavar="DATASET")
    saliency: bool = setting(True, "expected gradients and prediction difference beside each image")
    trust_code: bool = setting(False, "allow a TorchScript CLASSIFIER: TorchScript files are programs that run when "
                                      "loaded and called, so they are refused unless you trust the file; it is then "
                                      "loaded and run on two images in a separate process first, stopped after "
                                      "$SIMPLEBITS_TORCHSCRIPT_TIMEOUT s (60 unless set)")


@dataclass(frozen=True)
class TrainClassifierOptions:
    width: int = setting(32, "network width (convnet)")
    epochs: int = setting(3, "passes over the training set")
    seed: int = setting(0, "seed of the initialisation and the data order", metavar="S")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="simplified versions of a classifier's inputs, with saliency maps (paper §5, Fig. 8)",
        description="For a trained classifier, synthesise simpler versions of chosen inputs that still carry what the "
                    "classifier needs to recover its prediction: the classifier's weights are scaled down by "
                    "s ~ U(0.8, 0.95) ('forgetting') and the simplified input must give the same per-example gradients "
                    "(layer-wise cosine, where the original's are negative) and predictions, at few bits per "
                    "dimension under the Glow density model. --space latent (Alg. 2, default) optimises Glow's "
                    "latent from zero along the path to the original; --space input (Alg. 1) the pixels as logits. "
                    "Writes OUT/explained.safetensors (simplified images, predictions, bpd, saliency maps), "
                    "OUT/explain.json and OUT/figure.png (original / simplified / expected gradients / prediction "
                    "difference, as paper Fig. 8).",
    )
    p.add_argument("classifier", metavar="CLASSIFIER",
                   help="a classifier saved by simplebits (train-classifier), or a TorchScript file (torch.jit.save) "
                        "with --trust-code")
    p.add_argument("data", metavar="DATASET", help="images to explain: a data set spec (default split test), .npz or folder")
    add_options(p, ExplainOptions)
    settings.add_arguments(p, ExplainConfig)
    add_out(p, "DIR")
    add_force(p, "--out DIR holding other files")
    add_device(p)
    add_data_root(p)
    add_json(p)
    p.set_defaults(func=run)

    t = sub.add_parser(
        "train-classifier", help="train a classifier on a data set and save it (to explain it)",
        description="Train a fresh network on the data set's training split (SGD, dc protocol: lr 0.01, momentum 0.9, "
                    "lr x0.1 at half) for --epochs epochs, test it on the test split, and save it as safetensors + "
                    "JSON (the format `simplebits explain` reads).",
    )
    t.add_argument("data", metavar="DATASET", help="data set spec (e.g. fashion-mnist, mnist-5k)")
    add_out(t, "FILE.safetensors")
    add_force(t)
    nets = [m.name for m in list_models("classifier")]
    add_net(t, default="convnet", choices=nets, help="the classifier trained")
    add_deprecated(t, "--model", "--net", dest="net", choices=nets)
    add_options(t, TrainClassifierOptions)
    add_device(t)
    add_data_root(t)
    add_json(t)
    t.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if args.epochs < 1:
        raise BadInputError(f"--epochs must be >= 1; got {args.epochs}")
    check_out(args.out, kind="classifier", force=args.force)
    name = args.data.split(":", 1)[0]
    train = load_dataset(f"{name}:train" if ":" not in args.data else args.data, root=args.data_root)
    test_spec = default_test_spec(args.data)
    test = load_images(test_spec, split="test", root=args.data_root) if test_spec else None  # a spec or a folder
    c, h, _ = train.shape
    options = {"width": args.width} if args.net == "convnet" else {}
    model = create_model(args.net, channels=c, num_classes=train.num_classes, image_size=h, seed=args.seed,
                         **options).to(device)
    protocol = get_protocol("dc").with_overrides(epochs=args.epochs)
    train_classifier(model, train, protocol=protocol, seed=args.seed, progress=None if not args.json else False)
    acc = accuracy(model, test) if test is not None else None
    save_classifier(args.out, model.cpu(), name=args.net, channels=c, image_size=h, classes=train.classes,
                    options=options, extra={"source": args.data, "epochs": args.epochs, "seed": args.seed,
                                            "test_accuracy": acc})
    doc = {"file": args.out, "model": args.net, "options": options, "train": len(train), "test_accuracy": acc}
    emit(args, doc, f"saved {args.out} ({args.net} {options}, trained on {len(train)} images"
                    + (f", test accuracy {100 * acc:.2f}%)" if acc is not None else ")"))
    return 0


def _references_spec(args: argparse.Namespace, data) -> str | None:
    """--references, else the named source's train split (none for user files: no saliency)."""
    if args.references:
        return args.references
    src = str(data.meta.get("source") or "")
    if not src or src in ("npz", "image-folder", "idx") or looks_like_file(args.data):
        return None
    return f"{src}:train"


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    cfg = make_explain_config(args.preset, **settings.overrides(args, ExplainConfig))
    check_out(args.out, kind="explain.json", folder=True, force=args.force)
    model, info = load_classifier(args.classifier, device=device, trust_code=args.trust_code)
    data = load_input(args.data, args, split="test")
    refs = None
    if args.saliency:
        ref_spec = _references_spec(args, data)
        if ref_spec is not None:
            refs = load_input(ref_spec, args, split="train")
    res = explain(model, data, info=info, select=args.select, n=args.n, config=cfg, references=refs,
                  saliency=args.saliency, out=Path(args.out), progress=None if not args.json else False)
    s = res.summary()
    text = (f"explained {s['n']} {args.select} image(s) in {cfg.space} space ({cfg.steps} steps, lambda {cfg.lambda_sim:g}): "
            f"prediction kept for {100 * s['agreement']:.1f}%, bpd {s['bpd_orig']:.2f} -> {s['bpd_sim']:.2f} "
            f"({abs(100 * s['bpd_reduction']):.1f}% {'lower' if s['bpd_reduction'] >= 0 else 'higher'}), "
            f"{s['seconds_per_image']:.2f} s/image (bpd: bits per model dimension, dequantisation bound)\n"
            + (f"native bpd {s['bpd_orig_native']:.2f} -> {s['bpd_sim_native']:.2f}\nnote: {s['units']['note']}\n"
               if (s.get("units") or {}).get("note") else "")
            + (f"note: {s['blind_spot_note']}\n" if s.get("blind_spot_note") else "")
            + "\n".join(f"{k}: {v}" for k, v in s["files"].items()))
    emit(args, s, text)
    return 0
