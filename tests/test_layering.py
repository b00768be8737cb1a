"""The layering and the import graph: pyproject.toml's import contracts hold (web → engine, pipelines →
engine + annotators, annotators → engine, engine → nothing of ours, no sibling imports another that
imports it back), and no module of ours imports — directly or through others — a module that imports
it back. Imports inside functions and under TYPE_CHECKING count: hiding a cycle does not remove it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter.cli import lint_imports

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
CONFIG: dict[str, Any] = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]


def without_known_breaches(graph: grimp.ImportGraph) -> grimp.ImportGraph:
    """The graph less the imports the acyclic contract lists as known breaches (to be removed)."""
    acyclic = next(c for c in CONFIG["contracts"] if c["type"] == "acyclic_siblings")
    for line in acyclic.get("ignore_imports", []):
        importer, imported = line.split(" -> ")
        if importer in graph.modules and imported in graph.find_modules_directly_imported_by(importer):
            graph.remove_import(importer=importer, imported=imported)
    return graph


def import_cycles(graph: grimp.ImportGraph) -> list[str]:
    """Each cycle once, as the chain of modules round it (an import whose target leads back to its importer)."""
    seen: set[frozenset[str]] = set()
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            if chain is None or frozenset(chain) in seen:
                continue
            seen.add(frozenset(chain))
            cycles.append(" -> ".join((importer, *chain)))
    return cycles


def test_the_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    status = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    assert status == 0, capsys.readouterr().out


def test_no_module_of_ours_imports_itself_back() -> None:
    graph = without_known_breaches(grimp.build_graph(*CONFIG["root_packages"], cache_dir=None))
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_a_cycle_is_found_and_printed() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("a.x", "a.y"), ("a.y", "a.z"), ("a.z", "a.x"), ("a.z", "a.w")]:
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph) == ["a.x -> a.y -> a.z -> a.x"]
