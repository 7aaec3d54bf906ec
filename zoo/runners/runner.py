"""Runners: every way to run a model is a ``Runner``, made here and only here.

A ``Runner`` (``zoo.runners.base``) is a callable fp32 NCHW batch -> fp32 logits, with casts, layout and the
runtime inside. ``prepare(model, spec)`` makes one from a module; ``load(path)`` from an exported file. Both
are named by a backend spec (``zoo.runners.base.BACKENDS``); ``auto`` stands for the setting measured fastest
(``zoo.runners.auto``), and should that fail on a model, the simpler settings after it are tried. Exported
backends write the model with ``zoo.runners.serialize`` and run it with its runtime
(``zoo.runners.exported``); the int8 ones calibrate on the images given as ``calibration``
(``zoo.runners.calibration_images``: training images).

    runner = zoo.runners.prepare(zoo.create("resnet18"), "auto", input_size=(3, 32, 32))
    logits = runner(images)          # fp32 NCHW in, fp32 logits out; casts and layout inside
    runner = zoo.runners.load("resnet18.onnx")                # onnxruntime, from the suffix
    runner = zoo.runners.load("resnet18.xml", "openvino-bf16")

``zoo.benchmark`` measures them.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn as nn

from ..builder import deploy_form
from ..data.datasets import DatasetMissingError
from ..errors import InvalidArgumentError, ZooError, summarize
from ..registry import get_entry
from ..utils.fileio import regular_file
from .auto import AUTO_SPECS, explain_auto, fallbacks, int8_of, model_gflops, resolve
from .base import EXPORTED, FORMAT_RUNTIMES, RUNTIME_FORMATS, Runner, missing_dependency, missing_error, parse_backend
from .exported import CODE_FORMATS, UntrustedArtefactError, calibration_images, exported, open_file
from .modifiers import MODIFIERS
from .serialize import FORMATS

__all__ = ["prepare", "load", "backend_of"]

_logger = logging.getLogger(__name__)

_BUILDERS: dict[str, Callable[[Runner], Runner]] = {**MODIFIERS, **{name: exported(name) for name in EXPORTED}}


def prepare(model: nn.Module, spec: str | Sequence[str], *, input_size: tuple[int, ...],
            device: str | torch.device = "cpu", threads: int | None = None, batch_size: int = 256,
            gflops: float | None = None, images: int | None = None, workdir: Path | None = None,
            name: str = "model", calibration: torch.Tensor | None = None) -> Runner:
    """A ``Runner`` of a copy of ``model`` with backend ``spec``: the one place a backend name becomes a callable.

    Should auto's choice fail on this model, the simpler settings after it are tried, with a warning.

    Args:
        model: the model to run (``zoo.create``); it is copied, never changed.
        spec: ``"auto"``, a spec string of modifiers joined by ``+`` (``"fold-bn+channels-last+bf16"``), an
            exported backend (``"onnxruntime"``, ``"openvino"``, ``"openvino-int8"``...), or their sequence.
        input_size: (C, H, W) of one input: what exports trace with.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        threads: intra-op threads of onnxruntime and OpenVINO (torch's are the caller's to set).
        batch_size: the batch size the runner will see; with ``gflops`` (per image; counted on the model
            when not given) and ``images`` (a pass over that many, where setup time counts) it only resolves
            ``auto`` (``zoo.runners.auto.resolve``).
        gflops: see ``batch_size``.
        images: see ``batch_size``.
        workdir: where exported files are kept (default: a temp dir removed once they are loaded).
        name: the model's name in logs and file names.
        calibration: normalised images the int8 backends calibrate on.

    Returns:
        The ``Runner``: call it with an fp32 NCHW batch to get fp32 logits; ``runner.spec`` says what it runs.

    Raises:
        InvalidArgumentError: ``spec`` is not a known backend.
        ZooError: a backend's package is not installed (the message names the extra to install).
    """
    device = torch.device(device)
    why = None
    if isinstance(spec, str) and spec in AUTO_SPECS:
        mods, why, calibration = _choose_auto(spec, model, input_size, device, batch_size, gflops, images, name,
                                              threads, calibration)
    else:
        mods = resolve(spec, model, input_size=input_size, device=device, batch_size=batch_size)
    tries = fallbacks(mods, device) if why else [mods]
    for i, setting in enumerate(tries):
        try:
            runner = _build(model, setting, input_size, device, threads, workdir, name, calibration)
            if why:
                runner.notes.append(f"{spec} ran {runner.spec}: {why}" if i == 0 else
                                    f"{spec} ran {runner.spec}, a fallback of {'+'.join(mods)} ({why})")
            return runner
        except Exception as e:  # auto's own choice must not fail where a simpler setting works
            if i == len(tries) - 1:
                raise
            _logger.warning("%s: %s; running %s", name, e, "+".join(tries[i + 1]))
    raise AssertionError("unreachable")


def _choose_auto(spec: str, model: nn.Module, input_size: tuple[int, ...], device: torch.device, batch_size: int,
                 gflops: float | None, images: int | None, name: str, threads: int | None,
                 calibration: torch.Tensor | None) -> tuple[tuple[str, ...], str, torch.Tensor | None]:
    """What ``auto`` (or ``auto-int8``) runs here, why, and the calibration images an int8 choice needs: the
    checkpoint's training images (without them, int8 is not chosen, and the reason says so)."""
    gflops = model_gflops(model, input_size, device) if gflops is None else gflops
    int8, int8_why = int8_of(model) if spec == "auto-int8" else ((), "")
    chosen, why = explain_auto(device, batch_size, gflops, images, name, threads, int8)
    if chosen in int8 and calibration is None:
        try:
            calibration, note = calibration_images(get_entry(name).dataset, 300)
            int8_why += f"; {note}"
        except (DatasetMissingError, ZooError) as e:
            chosen, why = explain_auto(device, batch_size, gflops, images, name, threads)
            int8_why += f"; not int8: its calibration needs the training images ({summarize(e)})"
    return parse_backend(chosen), why + (f"; {int8_why}" if int8_why else ""), calibration


def _build(model: nn.Module, mods: tuple[str, ...], input_size: tuple[int, ...], device: torch.device,
           threads: int | None, workdir: Path | None, name: str, calibration: torch.Tensor | None) -> Runner:
    missing = missing_dependency(mods)
    if missing:
        raise missing_error(f"backend {'+'.join(mods)}", missing)
    module = deploy_form(copy.deepcopy(model), inplace=True)  # e.g. RepVGG runs re-parameterised
    p = Runner(module.eval().to(device), device, tuple(input_size), mods, threads, workdir, name,
               calibration=calibration)
    for mod in mods:
        p = _BUILDERS[mod](p)
    p.calibration = None  # used once; not kept alive with the runner
    _logger.debug("%s prepared as %s%s", name, p.spec, "".join(f"; {n}" for n in p.notes))
    return p


def backend_of(path: str | os.PathLike[str]) -> str:
    """The runtime that runs an exported file, from its suffix (``zoo.runners.serialize.FORMATS``)."""
    name = os.fspath(path)
    fmt = next((f for f, suffix in sorted(FORMATS.items(), key=lambda kv: -len(kv[1])) if name.endswith(suffix)),
               None)
    if fmt is None:
        raise InvalidArgumentError(f"cannot tell the format of {name} from its suffix "
                                   f"({', '.join(FORMATS.values())}); name the backend")
    return FORMAT_RUNTIMES[fmt]


def load(path: str | os.PathLike[str], backend: str | None = None, *, threads: int | None = None,
         trust: bool = False) -> Runner:
    """A ``Runner`` of an exported file (``.onnx``, OpenVINO ``.xml``, ``.pt2``, TorchScript).

    The file must be a regular file of at most ``zoo.utils.fileio.MAX_FILE_BYTES``; a zip-based one (pt2,
    TorchScript) is measured before torch opens it (``zoo.utils.fileio.check_zip``). A file exported with a
    fixed batch size runs any batch in chunks of that size.

    Args:
        path: the exported file.
        backend: one of ``RUNTIME_FORMATS`` (default: from the file's suffix).
        threads: intra-op threads of onnxruntime and OpenVINO.
        trust: allow pt2 and TorchScript files, which are code by nature (``CODE_FORMATS``): only for files
            you made or would run as a program.

    Returns:
        The ``Runner`` of that file.

    Raises:
        InvalidArgumentError: an unknown ``backend``, or a path that is not a regular file of allowed size.
        UntrustedArtefactError: a pt2 or TorchScript file without ``trust``.
        ExportError: the backend cannot read the file (corrupt, truncated, or another format).
    """
    backend = backend or backend_of(path)
    if backend not in RUNTIME_FORMATS:
        raise InvalidArgumentError(f"unknown backend {backend!r} for a file; use one of {', '.join(RUNTIME_FORMATS)}")
    path = regular_file(path, "artefact")
    if RUNTIME_FORMATS[backend] in CODE_FORMATS and not trust:
        raise UntrustedArtefactError(
            f"{path} is a {RUNTIME_FORMATS[backend]} artefact, a format that can run code when loaded; zoo runs one "
            f"only when told it is trusted: pass --trust-artefact (trust=True) for a file you made, or use an "
            f"ONNX or OpenVINO file")
    missing = missing_dependency((backend,))
    if missing:
        raise missing_error(f"the {backend} backend", missing)
    return Runner(None, torch.device("cpu"), (), (backend,), threads, name=path.name,
                  fn=open_file(path, backend, threads), path=path)
