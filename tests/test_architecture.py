"""The dependency directions of docs/architecture.md hold (checked on the import statements)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "simplebits"
CAPABILITIES = {"condense", "simplify", "prune", "explain", "continual"}


def _imports(part: str) -> set[str]:
    """Top-level simplebits parts imported by the modules of ``part`` (relative or absolute)."""
    files = list((PKG / part).rglob("*.py")) if (PKG / part).is_dir() else [PKG / f"{part}.py"]
    found: set[str] = set()
    for f in files:
        depth = len(f.relative_to(PKG).parts) - 1  # package depth of the module
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module and node.module.startswith("simplebits."):
                    found.add(node.module.split(".")[1])
                elif node.level > depth and node.module:
                    found.add(node.module.split(".")[0])
                elif node.level > depth:
                    found.update(a.name for a in node.names)
    found.discard(part)
    return found


# base modules every layer may use: settings (config fields -> flags/TOML), runtime (device, peak
# RSS), images (uint8/PNG helpers); each imports only errors/io
BASE = {"settings", "runtime", "images"}


def test_base_layers_import_nothing_above_them():
    assert _imports("errors") == set()
    assert _imports("io") <= {"errors"}
    assert _imports("data") <= {"errors", "io"}
    for part in BASE:
        if (PKG / f"{part}.py").exists():
            assert _imports(part) <= {"errors", "io"}, part


def test_capabilities_do_not_import_each_other_or_the_cli():
    for cap in CAPABILITIES:
        if not (PKG / cap).exists():
            continue
        got = _imports(cap)
        assert not (got & (CAPABILITIES - {cap})), (cap, got)
        assert "cli" not in got and "pipeline" not in got, (cap, got)


def test_condense_uses_the_workshop_and_the_measure_only():
    assert _imports("condense") <= {"data", "io", "errors", "models", "augment", "train", "density", "progress"} | BASE


def test_prune_uses_the_workshop_only():
    assert _imports("prune") <= {"data", "io", "errors", "models", "train", "progress"} | BASE


def test_continual_uses_the_workshop_only():
    assert _imports("continual") <= {"data", "io", "errors", "models", "augment", "train", "progress"} | BASE


def test_explain_uses_the_workshop_and_the_measure_only():
    assert _imports("explain") <= {"data", "io", "errors", "models", "train", "density", "progress"} | BASE


def test_simplify_uses_the_workshop_and_the_measure_only():
    assert _imports("simplify") <= {"data", "io", "errors", "models", "augment", "train", "density", "progress"} | BASE


def test_only_the_cli_and_the_package_root_reach_the_pipeline():
    for part in ("errors", "io", "data", "models", "augment", "train", "density", "progress") + tuple(CAPABILITIES):
        if (PKG / part).exists() or (PKG / f"{part}.py").exists():
            assert "pipeline" not in _imports(part), part
    assert "cli" not in _imports("pipeline")
