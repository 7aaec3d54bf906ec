"""The shape of the package: which modules import which (read from the source, lazy imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "zoo"


def _graph() -> dict[str, set[str]]:
    """zoo module -> the zoo modules it imports anywhere in its source (function-level imports too)."""
    files = {".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): f
             for f in PACKAGE.rglob("*.py")}
    graph = {}
    for name, f in files.items():
        package = name if f.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from . import x, from ..weights import y
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    deps.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_metadata_layer_imports_only_metadata() -> None:
    graph = _graph()
    assert _reachable(graph, "zoo.specs") == {"zoo.errors"}
    # Weights.transforms() imports zoo.transforms when called (torchvision); nothing else is reached
    assert _reachable(graph, "zoo.metadata") == {"zoo.errors", "zoo.specs", "zoo.transforms"}
    assert _reachable(graph, "zoo.registry") == {"zoo.errors", "zoo.specs", "zoo.metadata", "zoo.transforms"}
    for model_file in (m for m in graph if m.startswith("zoo.models.")):  # no loaders, files or downloads
        assert not _reachable(graph, model_file) & {"zoo.weights", "zoo.data", "zoo.builder"}, model_file


def test_no_import_cycles() -> None:
    graph = _graph()
    assert len(graph) > 30
    cycles = [module for module in graph if module in _reachable(graph, module)]
    assert not cycles, f"{cycles} import themselves through others"
    # the runners' layers: serializers <- backends <- evaluate <- deployment jobs
    assert not _reachable(graph, "zoo.export") & {"zoo.backends", "zoo.evaluate", "zoo.deploy"}
    assert "zoo.deploy" not in _reachable(graph, "zoo.evaluate") | _reachable(graph, "zoo.backends")
    # a run directory's status is read without the trainer, torch or the models
    assert _reachable(graph, "zoo.runs") == {"zoo.errors", "zoo.fileio", "zoo.recipes"}


def test_metadata_modules_load_without_torch() -> None:
    # load the two files alone, under a bare package object, so nothing else of zoo runs
    code = ("import sys, importlib.util, pathlib\n"
            "pkg = pathlib.Path(sys.argv[1])\n"
            "import types; sys.modules['zoo'] = types.ModuleType('zoo'); sys.modules['zoo'].__path__ = [str(pkg)]\n"
            "import zoo.metadata, zoo.specs\n"
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code, str(PACKAGE)], check=True)
