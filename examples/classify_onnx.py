"""Classify image files with a zoo ONNX model, using only numpy, Pillow and onnxruntime (no torch).

    zoo export --model resnet18 --format onnx --out resnet18.onnx
    python examples/classify_onnx.py resnet18.onnx cat.png ship.png [--top 3] [--json]

Everything the model needs is read from the ONNX file's metadata (written by `zoo export`): the
class names, the input size and the mean/std to normalise with.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from PIL import Image


def load_model(path: str) -> tuple[object, dict]:
    import onnxruntime as ort  # here, so that classify_openvino.py can reuse the rest without it

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if "zoo.classes" not in meta:
        sys.exit(f"{path} has no zoo metadata: export it with `zoo export`")
    info = {
        "model": meta["zoo.model"],
        "weights": meta.get("zoo.weights") or "random weights",
        "classes": json.loads(meta["zoo.classes"]),
        "input_size": json.loads(meta["zoo.input_size"]),  # C, H, W
        "mean": np.asarray(json.loads(meta["zoo.mean"]), dtype=np.float32),
        "std": np.asarray(json.loads(meta["zoo.std"]), dtype=np.float32),
    }
    return session, info


def preprocess(path: str, info: dict) -> np.ndarray:
    """PNG/JPEG -> float32 C x H x W, scaled to [0, 1] and normalised as the model was trained."""
    channels, height, width = info["input_size"]
    image = Image.open(path).convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    x = np.asarray(image, dtype=np.float32) / 255.0
    x = x[None] if channels == 1 else x.transpose(2, 0, 1)
    return (x - info["mean"][:, None, None]) / info["std"][:, None, None]


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="ONNX file written by `zoo export`")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--top", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    session, info = load_model(args.model)
    batch = np.stack([preprocess(p, info) for p in args.images]).astype(np.float32)
    report(args.images, softmax(session.run(None, {session.get_inputs()[0].name: batch})[0]), info, args.top,
           args.json)
    return 0


def report(images: list[str], probs: np.ndarray, info: dict, top_k: int, as_json: bool) -> None:
    """Print each image's top-k classes (or JSON)."""
    results = []
    for path, p in zip(images, probs):
        top = np.argsort(-p)[:top_k]
        results.append({"image": path, "class": info["classes"][top[0]], "index": int(top[0]),
                        "top": [{"class": info["classes"][i], "probability": float(p[i])} for i in top]})
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{info['model']} ({info['weights']})")
        for r in results:
            print(f"{r['image']}: " + ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in r["top"]))


if __name__ == "__main__":
    sys.exit(main())
