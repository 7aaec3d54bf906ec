"""Runners: the only place where a backend spec, ``auto``, int8 or an exported file becomes a callable.

    runner = zoo.runners.prepare(zoo.create("resnet18"), "auto", input_size=(3, 32, 32))
    runner = zoo.runners.load("resnet18.onnx")

``serialize`` writes the exported files (ONNX, pt2, TorchScript, OpenVINO IR, their int8 forms).
"""

from .runner import (
    BACKENDS,
    CODE_FORMATS,
    EXPORTED,
    INT8,
    RunFn,
    Runner,
    UntrustedArtefactError,
    auto_rule,
    backend_of,
    fold_batchnorm,
    load,
    parse_backend,
    precision_of,
    prepare,
    resolve_auto,
)
from .serialize import FORMATS, ExportError

__all__ = ["BACKENDS", "CODE_FORMATS", "EXPORTED", "INT8", "Runner", "RunFn", "UntrustedArtefactError", "auto_rule",
           "backend_of", "fold_batchnorm", "load", "parse_backend", "precision_of", "prepare", "resolve_auto",
           "FORMATS", "ExportError"]
