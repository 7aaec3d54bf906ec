"""Release a trained checkpoint: copy it into weights/, measure the stored file, print its Weights entry.

    python tools/release_weights.py runs/resnet20-resnet20.cifar10 [--tag cifar10]

The accuracy printed is measured here, from the copy in weights/, on the full test split (ZOO_DATA or
--data-dir); the entry printed is pasted into the model's file, in its ``_WEIGHTS`` table, and the
test suite re-checks every field against the stored file. The run's recipe.json, log.jsonl and
result.json are kept in docs/runs/<arch>.<tag>/. Once the entry is pasted (and a superseded file removed
from weights/), ``python tools/weights_packages.py`` puts the file in its data distribution under packaging/;
the test suite fails until it has.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import zoo
from zoo.data.datasets import get_dataset_spec
from zoo.evaluate import evaluate_model
from zoo.weights import read_metadata, sha256_file

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--tag", help="weight tag (default: from the checkpoint's file name)")
    parser.add_argument("--data-dir")
    args = parser.parse_args()

    result = json.loads((args.run_dir / "result.json").read_text())
    src = args.run_dir / Path(result["checkpoint"]).name
    arch = result["recipe"]["model"]
    tag = args.tag or src.name.split(".", 1)[1].rsplit("-", 1)[0]
    sha = sha256_file(src)
    if sha != result["sha256"]:
        print(f"{src} changed since training (sha256 {sha} != {result['sha256']})", file=sys.stderr)
        return 1
    dest = ROOT / "weights" / f"{arch}.{tag}-{sha[:8]}.safetensors"
    if dest.exists() and sha256_file(dest) != sha:
        print(f"{dest} exists with other content: never re-release under the same name", file=sys.stderr)
        return 1
    dest.parent.mkdir(exist_ok=True)
    shutil.copyfile(src, dest)
    # The run's evidence goes with it: the resolved recipe and the per-epoch log (curves, gallery).
    evidence = ROOT / "docs" / "runs" / f"{arch}.{tag}"
    evidence.mkdir(parents=True, exist_ok=True)
    for name in ("recipe.json", "log.jsonl", "result.json"):
        shutil.copyfile(args.run_dir / name, evidence / name)

    r = evaluate_model(arch, result["recipe"]["dataset"], weights=str(dest), data_dir=args.data_dir,
                       allow_sample=False, batch_size=500, backend="eager")
    if r.correct != result["metrics"]["correct"]:
        print(f"the stored file scores {r.correct} here but {result['metrics']['correct']} after training",
              file=sys.stderr)
        return 1
    meta = read_metadata(dest)
    info = zoo.model_info(arch)
    spec = get_dataset_spec(r.dataset)
    own = {k: v for k, v in (("num_classes", len(r.classes)), ("classes", tuple(r.classes)),
                             ("input_size", tuple(info.input_size)), ("mean", tuple(r.mean)),
                             ("std", tuple(r.std))) if v != getattr(spec, k)}  # only where not the dataset's
    top5 = "None" if r.top5 is None or r.dataset == "circles" else repr(r.top5)
    fields = [f"arch={arch!r}, tag={tag!r}, file_name={dest.name!r},", f"sha256={sha!r},",
              f"dataset={r.dataset!r},"] + [f"{k}={v!r}," for k, v in own.items()] + [
        f"metrics=Metrics(top1={r.top1!r}, top5={top5}, loss={round(r.loss, 6)!r}, split=\"test\", "
        f"num_images={r.num_images}),",
        f"num_params={info.params}, gflops={round(info.gflops, 6)!r}, recipe={result['recipe']['name']!r},",
        f"train_time_s={round(result['train_time_s'], 1)!r}, hardware={result['hardware']!r},",
        f"file_size={dest.stat().st_size}, dtype={meta.get('dtype', 'float32')!r},"]
    print("    Weights(\n" + "".join(f"        {f}\n" for f in fields).replace("'", '"') + "    ),")
    print(f"released {dest.relative_to(ROOT)}: top-1 {r.top1:.2f}% ({r.correct}/{r.num_images}) from the stored file;"
          f" paste the entry, then run python tools/weights_packages.py", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
