"""Serializers: ONNX, torch.export (``.pt2``), TorchScript and OpenVINO files, and their int8 forms.

``zoo.runners`` runs these files (``zoo.runners.load``); ``zoo.deploy`` is the job above both: export a
registered model with its weights, check parity with eager, quantise and score.

- ONNX goes through ``torch.onnx.export`` with the current (dynamo) exporter and a dynamic batch
  axis (exported with a batch of 2); only if that fails is the legacy TorchScript-based exporter used,
  and the reason is logged and recorded. The model is checked with ``onnx.checker`` (full check)
  and carries metadata_props: model name, weight name and sha256, num_classes, class names, mean/std,
  input size, zoo version, so a deployment needs nothing else (see ``examples/classify_onnx.py``).
- ``.pt2`` is ``torch.export.save`` of an ``ExportedProgram`` with the same dynamic batch.
- TorchScript is ``torch.jit.script``, else ``torch.jit.trace`` (the reason is logged).
- OpenVINO IR (``.xml`` + ``.bin``) is ``openvino.convert_model`` of the module, fp32 weights, the same
  metadata in its rt_info under ``zoo``; a conv's bias that precedes a max-pool is added after the pool
  (``_bias_after_max_pools``: exact, and it keeps OpenVINO's CPU plugin from computing a GELU before
  the pool).
- ``write(fmt, ...)`` and ``write_int8(fmt, ...)`` are the one place a format picks its serializer or
  quantiser: ``zoo.runners`` (exported backends) and ``zoo.deploy`` (``zoo export``) both call them.
- int8: ``quantize_onnx_static`` (onnxruntime's static QDQ quantiser, per channel) and
  ``quantize_openvino`` (NNCF's post-training quantisation) calibrate on the images they are given;
  which images (training images only) is the caller's job.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..builder import deploy_form
from ..errors import InvalidArgumentError, ZooError, summarize
from ..utils.fileio import atomic_path, replace_into

__all__ = ["ExportError", "FORMATS", "INT8_FORMATS", "write", "write_int8", "to_openvino", "to_onnx", "to_pt2",
           "to_torchscript", "quantize_onnx_static", "quantize_openvino"]

_logger = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".ts.pt", "openvino": ".xml"}
INT8_FORMATS = ("onnx", "openvino")


class ExportError(ZooError):
    """An export failed or its artefact disagrees with eager beyond the tolerance."""


def to_onnx(model: nn.Module, path: str | os.PathLike[str], *, input_size: tuple[int, ...],
            batch: str | int = "dynamic", opset: int | None = None, metadata: dict[str, str] | None = None
            ) -> tuple[Path, str]:
    """Export ``model`` (eval mode) to ONNX at ``path``; returns the path and the exporter used."""
    import onnx

    path = Path(path)
    model = deploy_form(model).eval()
    n = 2 if batch == "dynamic" else int(batch)
    x = torch.randn(n, *input_size)
    with atomic_path(path) as tmp:  # the file appears whole, or not at all
        kwargs: dict[str, Any] = {"dynamo": True, "verbose": False}
        if batch == "dynamic":
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=65536)},)
        if opset is not None:
            kwargs["opset_version"] = opset
        try:  # only the exporter itself: a failure to write the file is not a reason to switch exporters
            program = torch.onnx.export(model, (x,), input_names=["input"], output_names=["logits"], **kwargs)
        except Exception as e:  # the dynamo exporter failed: fall back, and say why
            program = None
            reason = f"{type(e).__name__}: {summarize(e)}"
            _logger.warning("dynamo ONNX export failed (%s); using the legacy exporter", reason)
            torch.onnx.export(model, (x,), str(tmp), dynamo=False, input_names=["input"], output_names=["logits"],
                              opset_version=opset or 17,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}} if batch == "dynamic"
                              else None)
            exporter = f"legacy ({reason})"
        if program is not None:
            program.save(str(tmp))
            exporter = "dynamo"
        proto = onnx.load(str(tmp))
        for key, value in (metadata or {}).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
    return path, exporter


def to_pt2(model: nn.Module, path: str | os.PathLike[str], *, input_size: tuple[int, ...],
           batch: str | int = "dynamic") -> tuple[Path, str]:
    path = Path(path)
    n = 2 if batch == "dynamic" else int(batch)
    dyn = ({0: torch.export.Dim("batch", min=1, max=65536)},) if batch == "dynamic" else None
    program = torch.export.export(deploy_form(model).eval(), (torch.randn(n, *input_size),), dynamic_shapes=dyn)
    with atomic_path(path) as tmp:
        torch.export.save(program, str(tmp))
    return path, "torch.export"


def to_torchscript(model: nn.Module, path: str | os.PathLike[str], *, input_size: tuple[int, ...]) -> tuple[Path, str]:
    import warnings

    path = Path(path)
    model = deploy_form(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still what many deploy
        try:
            scripted = torch.jit.script(model)
            how = "script"
        except Exception as e:
            reason = summarize(e)
            _logger.warning("torch.jit.script failed (%s); tracing instead", reason)
            scripted = torch.jit.trace(model, torch.randn(2, *input_size))
            how = f"trace ({reason})"
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(scripted, str(tmp))
    return path, how


def to_openvino(model: nn.Module, path: str | os.PathLike[str], *, input_size: tuple[int, ...],
                batch: str | int = "dynamic", metadata: dict[str, str] | None = None) -> tuple[Path, str]:
    """OpenVINO IR (``path`` .xml and its .bin) through ``openvino.convert_model``, fp32 weights.

    ``metadata`` goes into the model's rt_info under ``zoo`` (``model.get_rt_info(["zoo", key])``). The
    .bin is moved into place before the .xml, so an .xml never appears without its weights.
    """
    import warnings

    try:
        import openvino as ov
    except ImportError:
        raise ZooError("OpenVINO export needs openvino: pip install 'zoo[openvino]'") from None
    path = Path(path)
    if path.suffix != ".xml":
        raise InvalidArgumentError(f"an OpenVINO IR is an .xml file (with a .bin beside it), got {path}")
    n = 2 if batch == "dynamic" else int(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # convert_model traces with torch.jit
        ov_model = ov.convert_model(deploy_form(model).eval(), example_input=torch.randn(n, *input_size),
                                    input=[ov.PartialShape([-1 if batch == "dynamic" else n, *input_size])])
    moved = _bias_after_max_pools(ov_model)
    for key, value in (metadata or {}).items():
        ov_model.set_rt_info(value, ["zoo", key.removeprefix("zoo.")])
    _save_ir(ov_model, path)
    how = f"openvino.convert_model (OpenVINO {ov.__version__.split('-')[0]})"
    return path, how + (f", {moved} conv biases moved after their max-pool" if moved else "")


# Activations that are monotonic non-decreasing: act(max(z)) = max(act(z)), so OpenVINO may reorder them.
_MONOTONIC = {"Relu", "Clamp", "Sigmoid", "Tanh", "Elu", "Exp", "SoftPlus", "HSigmoid", "Round", "Sqrt", "Erf"}


def _bias_after_max_pools(ov_model: Any) -> int:
    """Rewrite conv -> add(bias) -> max-pool -> activation as conv -> max-pool -> add(bias) -> activation.

    The same function (max(z + b) = max(z) + b per channel). Why: OpenVINO's CPU plugin (2026.4) fuses
    an activation that follows conv -> max-pool into the conv (``FuseConvolutionAndSimpleOperationThroughMaxPool``
    in its graph optimiser), computing max(act(z)) in place of act(max(z)); that holds for ReLU, not for a
    non-monotonic activation such as GELU (FastNet with its BatchNorms folded has that chain). An add after
    the pool is not an activation, so the plugin leaves the chain alone; every activation not known to be
    monotonic gets the rewrite. Returns how many biases moved; a conv without a bias before such a pool is
    left as it is (``zoo export``'s parity check then refuses the file).
    """
    import openvino.opset13 as ops

    moved = 0
    for pool in ov_model.get_ordered_ops():
        if pool.get_type_name() != "MaxPool":
            continue
        users = pool.output(0).get_target_inputs()
        add = pool.input_value(0).get_node()
        if (len(users) != 1 or next(iter(users)).get_node().get_type_name() in _MONOTONIC
                or add.get_type_name() != "Add" or len(add.output(0).get_target_inputs()) != 1):
            continue
        conv, bias = add.input_value(0), add.input_value(1)
        if conv.get_node().get_type_name() == "Constant":
            conv, bias = bias, conv
        if bias.get_node().get_type_name() != "Constant" or conv.get_node().get_type_name() != "Convolution":
            continue
        pool.input(0).replace_source_output(conv)
        shifted = ops.add(pool.output(0), bias)
        next(iter(users)).replace_source_output(shifted.output(0))
        moved += 1
    if moved:
        ov_model.validate_nodes_and_infer_types()
    return moved


def _save_ir(ov_model: Any, path: Path) -> None:
    """Write an IR, the .bin moved into place before the .xml (an .xml never appears without its weights)."""
    import openvino as ov

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}-") as scratch:
        ov.save_model(ov_model, str(Path(scratch) / path.name), compress_to_fp16=False)
        replace_into(Path(scratch) / path.with_suffix(".bin").name, path.with_suffix(".bin"))
        replace_into(Path(scratch) / path.name, path)


def quantize_openvino(src: str | os.PathLike[str], dst: str | os.PathLike[str], calibration: torch.Tensor
                      ) -> tuple[Path, str]:
    """int8 IR at ``dst`` from the fp32 IR ``src``: NNCF post-training quantisation calibrated on ``calibration``.

    ``calibration``: normalised images (N, C, H, W), fed one at a time (NNCF's statistics assume batch 1).
    Performance preset (symmetric weights and activations, the fastest int8 kernels); activation ranges
    from the global minimum and maximum over the calibration images (NNCF's default averages each
    image's extremes, which clips); full bias correction rather than the fast one; 7-bit weights in every
    layer (``OverflowFix.ENABLE``: no saturated sums on CPUs without VNNI). The top-1 change of
    every released checkpoint is in ``benchmarks/results/throughput.md`` (part ``int8``). The rt_info of
    ``src`` is kept and ``zoo/quantization`` says how the file was made.
    """
    try:
        import nncf
        import openvino as ov
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    except ImportError as e:
        raise ZooError(f"OpenVINO int8 needs {e.name}: pip install 'zoo[openvino]'") from None
    dst = Path(dst)
    if dst.suffix != ".xml":
        raise InvalidArgumentError(f"an OpenVINO IR is an .xml file (with a .bin beside it), got {dst}")
    model = ov.Core().read_model(str(src))
    items = list(calibration.float().split(1))
    with contextlib.redirect_stdout(io.StringIO()) as bars:  # NNCF draws rich progress bars on stdout
        # overflow_fix on every layer (NNCF's default: the first only): 7-bit weights, for the same saturation
        # as onnxruntime's on CPUs without VNNI (mlp_60_40_20_bn.mnist lost 0.54 points there, none with it)
        ranges = AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
                                                overflow_fix=nncf.OverflowFix.ENABLE)
        quantized = nncf.quantize(model, nncf.Dataset(items, lambda x: x.numpy()), subset_size=len(items),
                                  preset=nncf.QuantizationPreset.PERFORMANCE, fast_bias_correction=False,
                                  advanced_parameters=ranges)
    _logger.debug("nncf: %s", bars.getvalue().strip())
    how = (f"int8 static (NNCF {nncf.__version__}, performance preset, min-max ranges, bias correction, 7-bit "
           f"weights), {len(items)} calibration images")
    quantized.set_rt_info(how, ["zoo", "quantization"])
    _save_ir(quantized, dst)
    return dst, how


def quantize_onnx_static(src: str | os.PathLike[str], dst: str | os.PathLike[str], calibration: torch.Tensor,
                         *, batch_size: int = 32) -> tuple[Path, str]:
    """int8 ONNX at ``dst`` from ``src``: onnxruntime's static QDQ quantiser, int8 per channel with 7-bit
    weights, calibrated on ``calibration``.

    The metadata_props of ``src`` are kept and ``zoo.quantization`` says how the file was made.
    """
    try:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise ZooError(f"ONNX int8 needs {e.name}: pip install 'zoo[onnx]'") from None
    src, dst = Path(src), Path(dst)
    meta = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    input_name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    chunks = calibration.float().split(batch_size)

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.chunks = iter(chunks)

        def get_next(self) -> dict[str, Any] | None:
            chunk = next(self.chunks, None)
            return None if chunk is None else {input_name: chunk.numpy()}

    how = (f"int8 static QDQ (onnxruntime quantize_static, per channel, 7-bit weights), {len(calibration)} "
           "calibration images")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".zoo-int8-") as scratch, atomic_path(dst) as tmp:
        pre = Path(scratch) / "preprocessed.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        # reduce_range: 7-bit weights. onnxruntime's u8s8 kernels on x86 CPUs without VNNI (AVX2 only) add
        # pairs of 8-bit products into saturating 16-bit sums; with full-range weights vgg19_bn.cifar10 lost
        # 1.48 points there (94.40 -> 92.92 on a Zen 3 and a Zen 1) and 94.50 with 7-bit weights, at the same speed
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]  # the quantiser may or may not carry them over: written once, here
        for key, value in {**meta, "zoo.quantization": how}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
    return dst, how


def write(fmt: str, model: nn.Module, path: str | os.PathLike[str], *, input_size: tuple[int, ...],
          batch: str | int = "dynamic", opset: int | None = None, metadata: dict[str, str] | None = None
          ) -> tuple[Path, str]:
    """``model`` written as a ``fmt`` file (``FORMATS``) at ``path``; returns the path and how it was made.

    ``opset`` applies to ONNX; ``metadata`` to ONNX and OpenVINO (the formats that carry it); TorchScript
    is written for any batch size.
    """
    if fmt == "onnx":
        return to_onnx(model, path, input_size=input_size, batch=batch, opset=opset, metadata=metadata)
    if fmt == "pt2":
        return to_pt2(model, path, input_size=input_size, batch=batch)
    if fmt == "torchscript":
        return to_torchscript(model, path, input_size=input_size)
    if fmt == "openvino":
        return to_openvino(model, path, input_size=input_size, batch=batch, metadata=metadata)
    raise InvalidArgumentError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_int8(fmt: str, src: str | os.PathLike[str], dst: str | os.PathLike[str], calibration: torch.Tensor
               ) -> tuple[Path, str]:
    """The int8 file ``dst`` of the ``fmt`` file ``src`` (``INT8_FORMATS``), calibrated on ``calibration``."""
    if fmt == "onnx":
        return quantize_onnx_static(src, dst, calibration)
    if fmt == "openvino":
        return quantize_openvino(src, dst, calibration)
    raise InvalidArgumentError(f"int8 applies to the {' and '.join(INT8_FORMATS)} formats, not {fmt}")
