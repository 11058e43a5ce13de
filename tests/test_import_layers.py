"""The import graph of src/epnml is one-way (issue #12): model code never imports ingest.

Parsed with ast, so imports inside functions count as much as those at the top of a
module (most of the former ml <-> ingest cycle hid in function bodies). Layers, lowest
first: config, db/schemas, ml, ingest, experiments/api, bench, cli (docs/layout.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "epnml"

#: what each part of epnml must never import (directly or in a function).
FORBIDDEN = {
    "epnml.ml": ("epnml.ingest", "epnml.api", "epnml.experiments", "epnml.cli", "epnml.bench"),
    "epnml.ingest": ("epnml.api", "epnml.experiments", "epnml.cli", "epnml.bench"),
}


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, src: Path = SRC) -> list[tuple[str, int]]:
    """Absolute names of the epnml modules ``path`` imports, with the line of each."""
    name = module_name(path, src)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # ``from epnml import ingest`` imports the subpackage itself
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return [(t, line) for t, line in found if t == "epnml" or t.startswith("epnml.")]


def layer_violations(root: Path = PACKAGE) -> list[str]:
    """One line per import statement that crosses a layer the wrong way."""
    src = root.parent
    out: dict[tuple[str, int], str] = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, src)
        for part, banned in FORBIDDEN.items():
            if name != part and not name.startswith(part + "."):
                continue
            for target, line in imported_modules(path, src):
                hit = next((b for b in banned if target == b or target.startswith(b + ".")), None)
                if hit:
                    out.setdefault((str(path.relative_to(src)), line),
                                   f"{path.relative_to(src)}:{line}: {name} imports {hit}")
    return list(out.values())


def package_edges(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Imports between the parts of epnml (``epnml.ml``, ``epnml.ingest``, ``epnml.cli``...)."""
    def part(name: str) -> str:
        return ".".join(name.split(".")[:2])

    edges: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        src = part(module_name(path, root.parent))
        for target, _ in imported_modules(path, root.parent):
            dst = part(target)
            if dst != src and dst != "epnml":
                edges.setdefault(src, set()).add(dst)
    return edges


def test_the_scan_sees_every_part_of_the_package() -> None:
    edges = package_edges()
    assert {"epnml.ml", "epnml.ingest", "epnml.api", "epnml.experiments"} <= set(edges)
    assert "epnml.ml" in edges["epnml.ingest"]  # stages run the models
    assert "epnml.ingest" in edges["epnml.experiments"]  # training reads with the readers


def test_ml_imports_neither_ingest_nor_api() -> None:
    assert layer_violations() == []


def test_parts_of_the_package_import_each_other_one_way() -> None:
    edges = package_edges()
    cycles = sorted(f"{a} <-> {b}" for a, targets in edges.items() for b in targets
                    if a < b and a in edges.get(b, set()))
    assert cycles == []


@pytest.mark.parametrize(("statement", "banned"), [
    ("from epnml.ingest.stage import GranuleError", "epnml.ingest"),
    ("import epnml.api.app", "epnml.api"),
    ("from epnml import ingest", "epnml.ingest"),
    ("from ...ingest.stage import Granule", "epnml.ingest"),
    ("from ...experiments.icme import train", "epnml.experiments"),
])
def test_a_forbidden_import_inside_a_function_is_caught(tmp_path: Path, statement: str,
                                                        banned: str) -> None:
    """The check fails when model code imports ingest or api, even lazily and relatively."""
    fake = tmp_path / "epnml"
    (fake / "ml" / "icme").mkdir(parents=True)
    (fake / "ml" / "icme" / "model.py").write_text(
        f"from .features import FEATURES\n\n\ndef load():\n    {statement}\n")
    assert layer_violations(fake) == [
        f"epnml/ml/icme/model.py:5: epnml.ml.icme.model imports {banned}"]
