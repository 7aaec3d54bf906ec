"""The shape of the package: which modules import which, read from the source (function-level imports too),
against the layer table of ``tools/layers.py``; and how long its functions and modules are."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "zoo"
_spec = importlib.util.spec_from_file_location("layers", ROOT / "tools" / "layers.py")
layers = importlib.util.module_from_spec(_spec)
sys.modules["layers"] = layers
_spec.loader.exec_module(layers)

MAX_FUNCTION_LINES = 80  # decorators excluded
MAX_MODULE_LINES = 400  # config tables (model families, recipes) may exceed it: TABLE_MODULES
TABLE_MODULES: tuple[str, ...] = ()  # none does today


class Import(NamedTuple):
    importer: str
    target: str  # a zoo module
    name: str | None  # the name imported from it (None: the module itself)
    line: int


def _files() -> dict[str, Path]:
    return {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
            for f in PACKAGE.rglob("*.py")}


def _imports() -> list[Import]:
    """Every import of a zoo module by a zoo module."""
    files = _files()
    found = []
    for name, f in files.items():
        package = name if f.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from . import x, from ..weights import y
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    if f"{base}.{alias.name}" in files:  # from . import submodule
                        found.append(Import(name, f"{base}.{alias.name}", None, node.lineno))
                    elif base in files:
                        found.append(Import(name, base, alias.name, node.lineno))
            elif isinstance(node, ast.Import):
                found += [Import(name, a.name, None, node.lineno) for a in node.names if a.name in files]
    return [i for i in found if i.target != i.importer]


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in _files()}
    for i in _imports():
        graph[i.importer].add(i.target)
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def upward(imports: list[Import]) -> list[str]:
    """The imports that reach a higher layer than the importer's."""
    def where(module: str) -> str:
        return layers.LAYERS[layers.layer_of(module)].name

    return [f"{i.importer} (layer {where(i.importer)}) imports {i.target} (layer {where(i.target)}), line {i.line}"
            for i in imports if layers.layer_of(i.target) > layers.layer_of(i.importer)]


def _directory(module: str) -> str:
    f = _files()[module]
    return str(f.parent)


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for module in _files():
        try:
            layers.layer_of(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, f"tools/layers.py places no layer for {unplaced}"


def test_imports_go_down_the_layers() -> None:
    assert not upward(_imports())


def test_the_layer_check_catches_an_upward_import() -> None:
    # a deliberate upward import, as if zoo/data/datasets.py imported the trainer: the check must name it
    wrong = Import("zoo.data.datasets", "zoo.train.loop", "train", 1)
    assert upward([wrong]) == ["zoo.data.datasets (layer data) imports zoo.train.loop (layer training), line 1"]
    assert upward([Import("zoo.train.loop", "zoo.data.datasets", "Split", 1)]) == []


def test_no_private_name_crosses_a_package() -> None:
    crossing = [f"{i.importer} imports {i.target}.{i.name} (line {i.line})" for i in _imports()
                if i.name and i.name.startswith("_") and not i.name.startswith("__")
                and _directory(i.importer) != _directory(i.target)]
    assert not crossing


def test_no_import_cycles() -> None:
    graph = _graph()
    assert len(graph) > 30
    cycles = [module for module in graph if module in _reachable(graph, module)]
    assert not cycles, f"{cycles} import themselves through others"


def test_metadata_layer_imports_only_metadata() -> None:
    graph = _graph()
    assert _reachable(graph, "zoo.specs") == {"zoo.errors"}
    # Weights.transforms() imports zoo.data.transforms when called (torchvision); nothing else is reached
    assert _reachable(graph, "zoo.metadata") == {"zoo.errors", "zoo.specs", "zoo.data.transforms"}
    assert _reachable(graph, "zoo.registry") == {"zoo.errors", "zoo.specs", "zoo.metadata", "zoo.data.transforms"}
    for model_file in (m for m in graph if m.startswith("zoo.models.")):  # no loaders, files or downloads
        assert not {r for r in _reachable(graph, model_file) if r.startswith("zoo.weights") or r == "zoo.builder"
                    or (r.startswith("zoo.data.") and r != "zoo.data.transforms")}, model_file


def test_serializers_and_run_status_stay_low() -> None:
    graph = _graph()
    assert not {r for r in _reachable(graph, "zoo.runners.serialize") if r.startswith("zoo.runners.")}
    assert "zoo.deploy" not in _reachable(graph, "zoo.evaluate") | _reachable(graph, "zoo.runners.runner")
    # a run directory's status is read without the trainer, torch or the models
    assert _reachable(graph, "zoo.train.runs") == {"zoo.errors", "zoo.utils.fileio", "zoo.utils.hardware",
                                                      "zoo.train.recipes"}


def test_metadata_modules_load_without_torch() -> None:
    # load the two files alone, under a bare package object, so nothing else of zoo runs
    code = ("import sys, importlib.util, pathlib\n"
            "pkg = pathlib.Path(sys.argv[1])\n"
            "import types; sys.modules['zoo'] = types.ModuleType('zoo'); sys.modules['zoo'].__path__ = [str(pkg)]\n"
            "import zoo.metadata, zoo.specs\n"
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code, str(PACKAGE)], check=True)


def test_run_status_and_the_cli_entry_load_without_torch() -> None:
    code = ("import sys, zoo.train.runs, zoo.data, zoo.train, zoo.cli\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)



def test_functions_and_modules_are_short() -> None:
    long_functions, long_modules = [], []
    for name, f in _files().items():
        tree = ast.parse(f.read_text())
        lines = len(f.read_text().splitlines())
        if lines > MAX_MODULE_LINES and name not in TABLE_MODULES:
            long_modules.append(f"{name}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1  # node.lineno is the def line, after decorators
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}.{node.name}: {length} lines")
    assert not long_functions and not long_modules, (long_functions, long_modules)
