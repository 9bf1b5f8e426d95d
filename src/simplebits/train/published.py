"""Published accuracies to print next to ours (percent, ConvNet-3, DC/DSA evaluation).

Source: Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient Matching", ICLR 2021,
Table 1 ("Random" subset column and whole-data row) and REFERENCE.md §3.
"""

from __future__ import annotations

__all__ = ["RANDOM_SUBSET", "WHOLE_DATA", "published_random"]

# data set -> {ipc: (mean, std)}
RANDOM_SUBSET: dict[str, dict[int, tuple[float, float]]] = {
    "mnist": {1: (64.9, 3.5), 10: (95.1, 0.9), 50: (97.9, 0.2)},
    "fashion-mnist": {1: (51.4, 3.8), 10: (73.8, 0.7), 50: (82.5, 0.7)},
    "svhn": {1: (14.6, 1.6), 10: (35.1, 4.1), 50: (70.9, 0.9)},
    "cifar10": {1: (14.4, 2.0), 10: (26.0, 1.2), 50: (43.4, 1.0)},
}
WHOLE_DATA: dict[str, tuple[float, float]] = {
    "mnist": (99.6, 0.0),
    "fashion-mnist": (93.5, 0.1),
    "svhn": (95.4, 0.1),
    "cifar10": (84.8, 0.1),
}


def published_random(source: str, ipc: int | None) -> str:
    """'51.4 ± 3.8' or '' when no published figure exists (mnist-5k counts as mnist)."""
    key = "mnist" if source.startswith("mnist") else source
    if ipc is None:
        v = WHOLE_DATA.get(key)
    else:
        v = RANDOM_SUBSET.get(key, {}).get(ipc)
    return f"{v[0]:.1f} ± {v[1]:.1f}" if v else ""
