"""The package root is a small public API: what README.md and examples/ use, nothing more; the
verbs are called alike (``sb.condense(...)`` as ``sb.evaluate(...)``) while the subpackages stay
importable; and the Python in README.md, docs/ and examples/ names only things that exist."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest

import simplebits as sb

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
DOCS = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md")


def _python_blocks(md: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", md.read_text(), flags=re.S | re.M)


def _sources() -> list[tuple[str, str]]:
    """(where, code) of every example script and every ```python block of the docs."""
    out = [(p.name, p.read_text()) for p in EXAMPLES]
    for md in DOCS:
        out += [(f"{md.name} block {i + 1}", code) for i, code in enumerate(_python_blocks(md))]
    return out


def _has(module: str, name: str) -> bool:
    mod = importlib.import_module(module)
    if hasattr(mod, name):
        return True
    try:  # a submodule not imported yet
        importlib.import_module(f"{module}.{name}")
    except ModuleNotFoundError:
        return False
    return True


def _missing_names(code: str) -> list[str]:
    """simplebits names that ``code`` imports or reads from the root (``sb.X``) but that do not
    exist, or that the root does not export."""
    missing, roots = [], set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] != "simplebits":
                    continue
                try:
                    importlib.import_module(a.name)
                except ModuleNotFoundError:
                    missing.append(a.name)
                if a.name == "simplebits":
                    roots.add(a.asname or a.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "simplebits":
            for a in node.names:
                if (node.module == "simplebits" and a.name not in sb.__all__) or not _has(node.module, a.name):
                    missing.append(f"{node.module}.{a.name}")
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in roots:
            if node.attr not in sb.__all__:
                missing.append(f"{node.value.id}.{node.attr}")
    return missing


def test_the_root_exports_at_most_20_names_all_real():
    assert len(sb.__all__) <= 20, sb.__all__
    assert len(set(sb.__all__)) == len(sb.__all__)
    for name in sb.__all__:
        assert hasattr(sb, name), name
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", sb.__version__)


def test_every_root_name_is_used_in_the_readme_or_an_example():
    text = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in EXAMPLES)
    unused = [n for n in sb.__all__ if not re.search(rf"\b(sb|simplebits)\.{re.escape(n)}\b", text)]
    assert not unused, f"exported from the root but used in neither README.md nor examples/: {unused}"


@pytest.mark.parametrize("where, code", _sources(), ids=[w for w, _ in _sources()])
def test_examples_and_doc_snippets_use_only_names_that_exist(where, code):
    assert not _missing_names(code), where


def test_the_check_catches_a_missing_or_unexported_name():
    code = ("import simplebits as sb\nfrom simplebits.data import nothing_here\nfrom simplebits import resize\n"
            "sb.load_dataset('digits'); sb.real_subset\nimport simplebits.nowhere\n")
    assert _missing_names(code) == ["simplebits.data.nothing_here", "simplebits.resize", "simplebits.nowhere",
                                    "sb.real_subset"]


@pytest.mark.parametrize("name, entry", [("condense", "condense"), ("prune", "prune_set"), ("simplify", "simplify")])
def test_callable_subpackages_are_the_modules_and_call_their_entry_point(name, entry, monkeypatch):
    module = sys.modules[f"simplebits.{name}"]
    assert getattr(sb, name) is module and callable(module)
    # `import a.b as c` binds c through getattr(a, "b") (Python >= 3.7): it must be the module
    ns: dict = {}
    exec(f"import simplebits.{name} as c", ns)
    assert ns["c"] is module
    assert inspect.signature(module) == inspect.signature(getattr(module, entry))
    calls = []
    monkeypatch.setattr(module, entry, lambda *a, **kw: calls.append((a, kw)) or "done")
    assert getattr(sb, name)(1, ipc=2) == "done" and calls == [((1,), {"ipc": 2})]


def test_subpackage_imports_still_work():
    import simplebits.condense.methods as methods
    from simplebits.condense import make_config
    from simplebits.prune import DynamicsConfig, prune_set

    assert methods.__name__ == "simplebits.condense.methods"
    assert sb.condense.make_config is make_config and sb.prune.prune_set is prune_set
    assert sb.prune.DynamicsConfig is DynamicsConfig and callable(sb.simplify.make_simplify_config)
    assert inspect.isfunction(sb.evaluate) and inspect.isfunction(sb.run) and inspect.isfunction(sb.sweep)


# every name the root exported before the API was cut down, and where it is imported from now
MOVED = {
    "simplebits.condense": ["CondenseConfig", "CondenseResult"],
    "simplebits.data": ["real_subset", "resize"],
    "simplebits.data.condensed": ["decode"],
    "simplebits.errors": ["BadInputError", "CorruptFileError", "MismatchError", "NotFoundError", "UnknownNameError"],
    "simplebits.models": ["create_model", "list_models"],
    "simplebits.pipeline": ["PipelineConfig", "PipelineResult", "SweepResult", "load_config", "write_report"],
    "simplebits.train": ["EvalReport", "Protocol", "evaluate_real_subset", "list_protocols"],
    "simplebits": ["continual", "pipeline"],  # the subpackages themselves
}


@pytest.mark.parametrize("module, names", MOVED.items())
def test_names_dropped_from_the_root_stay_importable_from_their_subpackage(module, names):
    for name in names:
        assert _has(module, name), f"{module}.{name}"


@pytest.mark.parametrize("sub", ["data", "train", "density", "simplify", "explain", "continual", "models", "augment",
                                 "pipeline", "condense", "prune"])
def test_every_subpackage_export_exists(sub):
    mod = importlib.import_module(f"simplebits.{sub}")
    assert [n for n in mod.__all__ if not hasattr(mod, n)] == []
