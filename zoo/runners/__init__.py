"""Runners: the only place where a backend spec, ``auto``, int8 or an exported file becomes a callable.

    runner = zoo.runners.prepare(zoo.create("resnet18"), "auto", input_size=(3, 32, 32))
    runner = zoo.runners.load("resnet18.onnx")

- ``base``: the backend names, what each needs, parsing a spec; the ``Runner`` dataclass;
- ``runner``: ``prepare`` (from a module, with auto's fallbacks) and ``load`` (from a file);
- ``modifiers``: eager variants (BatchNorm folding, channels_last, bf16, compile, CUDA graphs);
- ``serialize``: the files (ONNX, pt2, TorchScript, OpenVINO IR) and their int8 forms, one dispatch each;
- ``exported``: exported backends and their runtimes, what int8 is made from and calibrated on;
- ``parity``: how an artefact agrees with its model; ``auto``: what ``auto`` stands for, measured;
- ``tuned``: this machine's own measurements for ``auto`` (``zoo bench --tune``), in the zoo cache.
"""

from .auto import (
    AUTO_CANDIDATES,
    AUTO_INT8_CANDIDATES,
    AUTO_SPECS,
    auto_choices,
    auto_rule,
    explain_auto,
    int8_allowed,
    int8_of,
    resolve,
    resolve_auto,
)
from .base import BACKENDS, EXPORTED, INT8, RunFn, Runner, missing_dependency, parse_backend, precision_of
from .exported import CODE_FORMATS, UntrustedArtefactError, calibration_images, int8_source
from .modifiers import fold_batchnorm
from .parity import Parity, agreement, check_parity
from .runner import backend_of, load, prepare
from .serialize import FORMATS, ExportError
from .tuned import autotune_mode, read_entry, tuning_path, write_points

__all__ = ["AUTO_CANDIDATES", "AUTO_INT8_CANDIDATES", "AUTO_SPECS", "BACKENDS", "CODE_FORMATS", "EXPORTED",
           "FORMATS", "INT8", "agreement", "auto_choices", "auto_rule", "autotune_mode", "backend_of",
           "calibration_images", "check_parity", "explain_auto", "ExportError", "fold_batchnorm", "int8_allowed",
           "int8_of", "int8_source", "load", "missing_dependency", "Parity", "parse_backend", "precision_of",
           "prepare", "read_entry", "resolve", "resolve_auto", "RunFn", "Runner", "tuning_path",
           "UntrustedArtefactError", "write_points"]
