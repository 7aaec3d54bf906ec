"""Classify image files with a zoo OpenVINO IR, using only numpy, Pillow and openvino (no torch).

    zoo export --model resnet18 --format openvino --out resnet18.xml      # writes resnet18.xml + resnet18.bin
    python examples/classify_openvino.py resnet18.xml cat.png ship.png [--top 3] [--json] [--bf16]

Everything the model needs is read from the IR's rt_info (written by `zoo export`): the class names,
the input size and the mean/std to normalise with. Preprocessing is classify_onnx.py's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import openvino as ov

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_onnx import preprocess, report, softmax  # noqa: E402  (shared; no onnxruntime needed)


def load_model(path: str, bf16: bool) -> tuple[ov.CompiledModel, dict]:
    core = ov.Core()
    model = core.read_model(path)
    rt = model.get_rt_info()
    if "zoo" not in rt:
        sys.exit(f"{path} has no zoo metadata: export it with `zoo export --format openvino`")

    def meta(key: str) -> str:
        return model.get_rt_info(["zoo", key]).astype(str)

    info = {
        "model": meta("model"),
        "weights": meta("weights") or "random weights",
        "classes": json.loads(meta("classes")),
        "input_size": json.loads(meta("input_size")),  # C, H, W
        "mean": np.asarray(json.loads(meta("mean")), dtype=np.float32),
        "std": np.asarray(json.loads(meta("std")), dtype=np.float32),
    }
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"})
    return compiled, info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="OpenVINO .xml written by `zoo export --format openvino`")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--top", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="OpenVINO's bf16 precision hint (fp32 by default)")
    args = parser.parse_args()

    compiled, info = load_model(args.model, args.bf16)
    batch = np.stack([preprocess(p, info) for p in args.images]).astype(np.float32)
    report(args.images, softmax(compiled(batch)[0]), info, args.top, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
