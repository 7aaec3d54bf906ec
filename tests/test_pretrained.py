"""Using a pretrained model: transforms, pretrained_cfg, fine-tuning, timm's protocol, predict, image folders."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import zoo
from conftest import require_dataset
from zoo.data.datasets import load_sample
from zoo.evaluate import evaluate_model
from zoo.predict import predict
from zoo.scoring import evaluate
from zoo.train.loop import train
from zoo.train.recipes import Recipe

ALL = zoo.list_models()
CIFAR = zoo.get_weights("resnet20.cifar10")


def test_fine_tuning_keeps_every_tensor_but_a_fresh_classifier(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="zoo.weights"):
        model = zoo.create("resnet20", weights="default", num_classes=100)
    reference = zoo.create("resnet20", weights="default").state_dict()
    tuned = model.state_dict()
    assert tuned["linear.weight"].shape == (100, 64) and model.pretrained_cfg["num_classes"] == 100
    assert all(torch.equal(tuned[k], reference[k]) for k in reference if not k.startswith("linear."))
    assert "classifier linear re-initialised for 100 classes" in caplog.text
    same = zoo.create("resnet20", weights="default", num_classes=10)  # the checkpoint's own size: all of it
    assert torch.equal(same.linear.weight, reference["linear.weight"])



def test_a_head_of_another_size_loads_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "r20-100.safetensors"
    zoo.weights.save_checkpoint(zoo.create("resnet20", num_classes=100), path, arch="resnet20", dataset="cifar100")
    with pytest.raises(zoo.CheckpointError, match=r"does not fit resnet20: .*linear.weight"):
        zoo.create("resnet20", weights=str(path))  # without num_classes a shape mismatch stays an error
    assert zoo.create("resnet20", weights=str(path), num_classes=100).linear.out_features == 100
    assert zoo.create("resnet20", weights=str(path), num_classes=10).linear.out_features == 10


@pytest.mark.parametrize("name", [n for n in ALL if zoo.registry.get_entry(n).family != "torchvision"])
def test_timm_classifier_protocol(name: str) -> None:  # torchvision's own classes keep torchvision's interface
    model = zoo.create(name).eval()
    x = torch.randn(2, *zoo.model_info(name).input_size)
    with torch.no_grad():
        logits = model(x)
        assert torch.equal(model.forward_head(model.forward_features(x)), logits)
        features = model.forward_head(model.forward_features(x), pre_logits=True)
        assert features.shape == (2, model.num_features)
        assert torch.equal(model.get_classifier()(features) * getattr(model, "scale", 1), logits)
        model.reset_classifier(7)
        assert model(x).shape == (2, 7) and model.num_classes == 7
        model.reset_classifier(0)
        assert torch.equal(model(x), features * getattr(model, "scale", 1))  # an identity head: the features
    assert model.pretrained_cfg["classifier"] == model.classifier_path and model.pretrained_cfg["first_conv"]


def test_transforms_and_pretrained_cfg(caplog: pytest.LogCaptureFixture) -> None:
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    x = CIFAR.transforms()(rgb)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    sample = load_sample("cifar10")
    from zoo.data.datasets import batches

    batch, _ = next(batches(sample, 8))  # the fast path and the per-image transform normalise alike
    per_image = torch.stack([CIFAR.transforms()(img) for img in sample.images[:8]])
    assert torch.allclose(batch, per_image, atol=1e-6)
    assert zoo.get_weights("mlp_60_40_20_bn.mnist").transforms()(rgb).shape == (1, 28, 28)  # colour -> grey
    with caplog.at_level(logging.INFO, logger="zoo.data.transforms"):
        big = CIFAR.transforms()(Image.fromarray(np.zeros((48, 64, 3), dtype=np.uint8)))
    assert big.shape == (3, 32, 32) and "resizing 64x48 images to the checkpoint's 32x32 input" in caplog.text
    cfg = zoo.create("resnet20", weights="default").pretrained_cfg
    assert (cfg["input_size"], cfg["mean"], cfg["std"], cfg["weights"], cfg["sha256"]) == (
        CIFAR.input_size, CIFAR.mean, CIFAR.std, CIFAR.name, CIFAR.sha256)
    assert zoo.create("resnet32").pretrained_cfg["weights"] is None


def test_timm_resolves_the_checkpoints_config_and_reproduces_zoo() -> None:
    import timm
    from timm.data import create_transform, resolve_data_config

    import zoo.interop.to_timm  # noqa: F401  (registers zoo_* with timm)

    assert "zoo_resnet20.cifar10" in timm.list_models("zoo_*", pretrained=True)
    model = timm.create_model("zoo_resnet20", pretrained=True).eval()
    config = resolve_data_config(model=model)
    assert (config["input_size"], config["mean"], config["std"]) == (CIFAR.input_size, CIFAR.mean, CIFAR.std)
    transform = create_transform(**config)
    sample = load_sample("cifar10")
    x = torch.stack([transform(Image.fromarray(img.permute(1, 2, 0).numpy())) for img in sample.images])
    with torch.no_grad():
        top1 = 100 * (model(x).argmax(1) == sample.labels).double().mean().item()
    assert top1 == pytest.approx(evaluate(zoo.create("resnet20", weights="default"), sample)["top1"], abs=1e-9)


def _pngs(root: Path, per_class: int, offset: int = 0, size: int = 32) -> dict[str, list[Path]]:
    """cat and ship images of the embedded sample as PNG files under root/<class>/."""
    sample = load_sample("cifar10")
    out: dict[str, list[Path]] = {}
    for label, name in ((3, "cat"), (8, "ship")):
        (root / name).mkdir(parents=True, exist_ok=True)
        idx = (sample.labels == label).nonzero().flatten()[offset:offset + per_class]
        for i in idx.tolist():
            image = Image.fromarray(sample.images[i].permute(1, 2, 0).numpy()).resize((size, size))
            image.save(root / name / f"{i}.png")
            out.setdefault(name, []).append(root / name / f"{i}.png")
    return out


@pytest.mark.slow
def test_predict_files_folders_and_cli(tmp_path: Path) -> None:
    files = _pngs(tmp_path / "pets", 10)
    results = predict("resnet20", [str(tmp_path / "pets")], topk=3)
    assert len(results) == 20 and all(len(r.top) == 3 and r.top[0]["prob"] >= r.top[1]["prob"] for r in results)
    right = sum(r.top[0]["class"] == Path(r.source).parent.name for r in results)
    assert right >= 15  # resnet20 at 92% on cats and ships
    one = predict("resnet20", [files["cat"][0]], topk=1)[0]
    assert one.source == str(files["cat"][0]) and one.top[0]["class"] in zoo.get_weights("resnet20.cifar10").classes
    proc = subprocess.run([sys.executable, "-m", "zoo", "predict", "-m", "resnet20", str(files["ship"][0]), "--json",
                           "-k", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    api = predict("resnet20", [files["ship"][0]], topk=2)[0]
    cli = json.loads(proc.stdout)[0]
    assert cli["source"] == api.source and [t["class"] for t in cli["top"]] == [t["class"] for t in api.top]
    assert [t["prob"] for t in cli["top"]] == pytest.approx([t["prob"] for t in api.top], abs=1e-6)
    with pytest.raises(zoo.InvalidArgumentError, match="no released weights"):
        predict("resnet32", [str(files["cat"][0])])


def test_zoo_eval_scores_an_image_folder_by_class_name(tmp_path: Path) -> None:
    _pngs(tmp_path / "pets", 10, size=40)  # another size: resized to 32x32
    r = evaluate_model("resnet20", str(tmp_path / "pets"), backend="eager")
    hits = sum(p.top[0]["class"] == Path(p.source).parent.name
               for p in predict("resnet20", [str(tmp_path / "pets")], backend="eager"))
    assert r.num_images == 20 and r.correct == hits  # labels are the checkpoint's indices of "cat" and "ship"
    assert r.recorded_top1 is None and any("image folder" in n for n in r.notes)


@pytest.mark.full_data
def test_train_init_from_on_an_image_folder(tmp_path: Path) -> None:
    require_dataset("cifar10")
    _pngs(tmp_path / "pets" / "train", 20)
    _pngs(tmp_path / "pets" / "test", 10, offset=20)
    recipe = Recipe(name="ft", model="resnet20", dataset=str(tmp_path / "pets"), epochs=1, batch_size=8,
                    optimizer="sgd", lr=1e-9, init_from="resnet20.cifar10")
    r = train(recipe, out_dir=tmp_path / "run", progress=False, threads=1)
    tuned, start = load_file(r.checkpoint), zoo.create("resnet20", weights="default").state_dict()
    assert tuned["linear.weight"].shape == (2, 64) and r.recipe["init_from"] == "resnet20.cifar10"
    convs = [k for k in start if k.endswith("conv1.weight")]
    assert all(torch.allclose(tuned[k], start[k], atol=1e-6) for k in convs)  # lr 1e-9: the checkpoint's body
    meta = zoo.weights.read_metadata(r.checkpoint)
    assert json.loads(meta["classes"]) == ["cat", "ship"] and meta["dataset"] == "pets"
