"""The command line's modules import one another without a cycle, in layers: the package imports the
command modules, they import common, common imports none of them."""

import ast
import graphlib
import importlib.util
from pathlib import Path

import pytest

# found without importing rlgen.cli: a cycle may be what makes that import fail
CLI_DIR = Path(importlib.util.find_spec("rlgen.cli").origin).parent


def cli_import_graph(directory: Path = CLI_DIR, package: str = "rlgen.cli") -> dict[str, set[str]]:
    """Each module of ``package`` -> the modules of ``package`` it imports, at module level or inside a
    function alike (a function's import runs later but closes a cycle all the same)."""
    modules = {package if f.stem == "__init__" else f"{package}.{f.stem}": f for f in directory.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative to the package every file here is in
                    parent = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{parent}.{base}" if base else parent
                # `from P import m` imports the module P.m where there is one, else a name of P
                imported |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                             for a in node.names}
        # a submodule's import runs its package's __init__ first, but Python allows that re-entry (the
        # package is already in sys.modules): only the module named is an edge
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def test_cli_modules_import_one_another_without_a_cycle():
    graph = cli_import_graph()
    # the graph is read at all: the package imports its command modules, which import common
    commands = {"rlgen.cli.train", "rlgen.cli.gen", "rlgen.cli.imitation", "rlgen.cli.bench"}
    assert commands <= graph["rlgen.cli"]
    assert "rlgen.cli.common" in graph["rlgen.cli.gen"] and "rlgen.cli.common" in graph["rlgen.cli.imitation"]
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle among rlgen.cli modules: {' -> '.join(exc.args[1])}")
    # the layers: common imports no command module; a command module imports no other one
    assert graph["rlgen.cli.common"] == set()
    for command in ("train", "bench", "gen", "imitation"):
        assert graph[f"rlgen.cli.{command}"] <= {"rlgen.cli.common"}, command
