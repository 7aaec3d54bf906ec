"""Checkpoint format, resolver and loader (zoo.weights.load).

Everything runs on resnet20 (0.27M parameters) in temporary folders: ``ZOO_WEIGHTS_DIR``, ``ZOO_CACHE``
and the checkout's ``weights/`` are redirected, so nothing outside ``tmp_path`` is read or written. The
last test is parametrized over every registered ``Weights`` and checks the entry against its file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import zoo
import zoo.weights.hub as zw
from conftest import SystemPayload, TouchPayload
from zoo import registry
from zoo.builder import count_flops, count_params
from zoo.data.datasets import get_dataset_spec
from zoo.errors import CheckpointError, InvalidArgumentError, UnknownModelError
from zoo.weights import (
    Metrics,
    Weights,
    get_weights,
    list_weights,
    load_into,
    read_checkpoint,
    read_metadata,
    resolve,
    save_checkpoint,
    sha256_file,
)

X = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------------------------------
# Helpers


def _randomized(name: str = "resnet20", seed: int = 1) -> torch.nn.Module:
    """A model whose every tensor, BatchNorm statistics included, differs from a fresh build."""
    torch.manual_seed(seed)
    model = zoo.create(name)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key.endswith("running_mean"):
                t.normal_()
            elif key.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif key.endswith("num_batches_tracked"):
                t.fill_(1234)
    return model.eval()


def _out(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(X)


def _weights_for(path: Path, *, arch: str = "resnet20", tag: str = "test", url: str | None = None) -> Weights:
    spec = get_dataset_spec("cifar10")
    return Weights(
        arch=arch, tag=tag, file_name=f"{arch}.{tag}.safetensors", sha256=sha256_file(path), dataset=spec.name,
        num_classes=spec.num_classes, classes=spec.classes, input_size=spec.input_size, mean=spec.mean,
        std=spec.std, metrics=Metrics(top1=91.0, top5=99.7, loss=0.3, num_images=10_000),
        num_params=269_722, gflops=0.082, recipe="test", train_time_s=1.0, hardware="cpu",
        file_size=path.stat().st_size, url=url,
    )


def _register(monkeypatch: pytest.MonkeyPatch, weights: Weights) -> None:
    entry = registry.get_entry(weights.arch)
    monkeypatch.setitem(registry._REGISTRY, weights.arch, dataclasses.replace(entry, weights=(weights,)))


def _flip_byte(path: Path, offset: int = -10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Empty weights folders and cache, in place of the real ones."""
    d = {name: tmp_path / name for name in ("env_weights", "repo_weights", "cache", "src")}
    for p in d.values():
        p.mkdir()
    monkeypatch.setenv("ZOO_WEIGHTS_DIR", str(d["env_weights"]))
    monkeypatch.setenv("ZOO_CACHE", str(d["cache"]))
    monkeypatch.setattr(zw, "_REPO_WEIGHTS_DIR", d["repo_weights"])
    monkeypatch.setattr(zw, "package_dirs", lambda: [])  # data distributions installed here play no part
    return d


@pytest.fixture
def released(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> tuple[Weights, torch.nn.Module]:
    """resnet20.test registered, its file in $ZOO_WEIGHTS_DIR."""
    model = _randomized()
    path = dirs["env_weights"] / "resnet20.test.safetensors"
    save_checkpoint(model, path, arch="resnet20", dataset="cifar10")
    weights = _weights_for(path)
    _register(monkeypatch, weights)
    return weights, model


# --------------------------------------------------------------------------------------------------
# The file format


def test_round_trip_fp32_keeps_tensors_and_metadata(tmp_path: Path) -> None:
    model = _randomized()
    path = tmp_path / "r20.safetensors"
    metrics = {"top1": 91.25, "top5": 99.7, "loss": 0.31, "split": "test", "num_images": 10_000}
    sha = save_checkpoint(model, path, arch="resnet20", dataset="cifar10",
                          extra_metadata={"metrics": metrics, "recipe": {"name": "he2016"}, "note": "plain"})
    assert sha == sha256_file(path)

    tensors, meta = read_checkpoint(path)
    expected = model.state_dict()
    assert sorted(tensors) == sorted(expected)  # safetensors orders tensors its own way
    for key, t in expected.items():
        assert tensors[key].dtype == t.dtype and torch.equal(tensors[key], t), key

    spec = get_dataset_spec("cifar10")
    assert meta["format"] == zoo.weights.FORMAT and meta["format_version"] == str(zoo.weights.FORMAT_VERSION)
    assert (meta["arch"], meta["dataset"], meta["num_classes"]) == ("resnet20", "cifar10", "10")
    assert meta["dtype"] == "float32"
    assert json.loads(meta["classes"]) == list(spec.classes)
    assert json.loads(meta["input_size"]) == [3, 32, 32]
    assert (json.loads(meta["mean"]), json.loads(meta["std"])) == (list(spec.mean), list(spec.std))
    assert meta["zoo_version"] == zoo.__version__
    assert json.loads(meta["metrics"]) == metrics and json.loads(meta["recipe"]) == {"name": "he2016"}
    assert meta["note"] == "plain"

    loaded = zoo.create("resnet20", weights=str(path))
    assert torch.equal(_out(loaded), _out(model))


def test_round_trip_fp16_storage(tmp_path: Path) -> None:
    model = _randomized()
    path = tmp_path / "r20.safetensors"
    save_checkpoint(model, path, arch="resnet20", dataset="cifar10", dtype="float16")
    tensors, meta = read_checkpoint(path)
    assert meta["dtype"] == "float16"
    for key, t in model.state_dict().items():
        if t.is_floating_point():
            assert tensors[key].dtype == torch.float16 and torch.equal(tensors[key], t.half()), key
        else:  # num_batches_tracked stays an integer
            assert tensors[key].dtype == t.dtype and torch.equal(tensors[key], t), key
    assert path.stat().st_size < 0.6 * sum(t.numel() * 4 for t in tensors.values())

    loaded = zoo.create("resnet20")
    load_into(loaded, "resnet20", path)
    for key, t in loaded.state_dict().items():
        assert t.dtype == model.state_dict()[key].dtype, key  # cast back to the model's fp32
        expected = model.state_dict()[key]
        assert torch.equal(t, expected.half().float() if expected.is_floating_point() else expected), key
    torch.testing.assert_close(_out(loaded), _out(model), rtol=0.05, atol=0.05)


def test_header_is_readable_with_safetensors_alone(tmp_path: Path) -> None:
    path = tmp_path / "r20.safetensors"
    save_checkpoint(_randomized(), path, arch="resnet20", dataset="cifar10")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["arch"] == "resnet20" and json.loads(meta["mean"]) == [0.4914, 0.4822, 0.4465]
    # the format itself: an 8-byte little-endian length, then a JSON header
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert json.loads(raw[8:8 + length])["__metadata__"] == meta == read_metadata(path)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r20.safetensors"
    first = save_checkpoint(_randomized(seed=1), path, arch="resnet20", dataset="cifar10")
    assert os.listdir(tmp_path) == ["r20.safetensors"]

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(zw.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_randomized(seed=2), path, arch="resnet20", dataset="cifar10")
    assert os.listdir(tmp_path) == ["r20.safetensors"]  # the temp file is gone ...
    assert sha256_file(path) == first  # ... and the old checkpoint untouched


def test_save_rejects_bad_arguments(tmp_path: Path) -> None:
    model = _randomized()
    with pytest.raises(InvalidArgumentError, match="safetensors"):
        save_checkpoint(model, tmp_path / "r20.pth", arch="resnet20", dataset="cifar10")
    with pytest.raises(InvalidArgumentError, match="'arch'"):
        save_checkpoint(model, tmp_path / "r20.safetensors", arch="resnet20", dataset="cifar10",
                        extra_metadata={"arch": "resnet32"})
    with pytest.raises(InvalidArgumentError, match="dtype"):
        save_checkpoint(model, tmp_path / "r20.safetensors", arch="resnet20", dataset="cifar10", dtype="int8")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("keep", [0.5, 0.999, 20 / 552_460])  # in the data, at the very end, in the header
def test_truncated_file_is_refused(tmp_path: Path, suffix: str, keep: float) -> None:
    model = _randomized()
    path = tmp_path / f"r20{suffix}"
    if suffix == ".pth":
        torch.save(model.state_dict(), path)
    else:
        save_checkpoint(model, path, arch="resnet20", dataset="cifar10")
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as err:
        load_into(zoo.create("resnet20"), "resnet20", path)
    assert str(path) in str(err.value)


def test_tampered_registered_file_is_refused(released: tuple[Weights, torch.nn.Module]) -> None:
    weights, _ = released
    path = Path(os.environ["ZOO_WEIGHTS_DIR"]) / weights.file_name
    _flip_byte(path)  # in the last tensor's data: the file still parses
    read_checkpoint(path)
    actual = sha256_file(path)
    for load in (lambda: zoo.create("resnet20", weights="resnet20.test"),
                 lambda: load_into(zoo.create("resnet20"), "resnet20", weights),
                 lambda: resolve("default", "resnet20")):
        with pytest.raises(CheckpointError, match="sha256 mismatch") as err:
            load()
        assert weights.sha256 in str(err.value) and actual in str(err.value) and str(path) in str(err.value)


def test_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r32.safetensors"
    save_checkpoint(_randomized("resnet32"), path, arch="resnet32", dataset="cifar10")
    with pytest.raises(CheckpointError, match="checkpoint is for resnet32, model is resnet20"):
        zoo.create("resnet20", weights=str(path))


def _edited_state_dict(problem: str) -> dict[str, torch.Tensor]:
    sd = dict(_randomized().state_dict())
    if problem in ("missing", "all"):
        del sd["linear.bias"], sd["layer1.0.bn1.running_var"]
    if problem in ("extra", "all"):
        sd["head.weight"] = torch.zeros(7, 3)
    if problem in ("shape", "all"):
        sd["linear.weight"] = torch.zeros(100, 64)
    return sd


_EXPECTED = {
    "missing": ["2 missing keys", "linear.bias [10]", "layer1.0.bn1.running_var [16]"],
    "extra": ["1 unexpected keys", "head.weight [7, 3]"],
    "shape": ["1 shape mismatches", "linear.weight checkpoint [100, 64] vs model [10, 64]"],
}


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("problem", ["missing", "extra", "shape", "all"])
def test_key_and_shape_mismatches_are_all_named(tmp_path: Path, suffix: str, problem: str) -> None:
    sd = _edited_state_dict(problem)
    path = tmp_path / f"r20{suffix}"
    if suffix == ".pth":
        torch.save(sd, path)
    else:
        save_checkpoint(sd, path, arch="resnet20", dataset="cifar10")
    model = zoo.create("resnet20")
    before = {k: t.clone() for k, t in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_into(model, "resnet20", path)
    message = str(err.value)
    for part in (p for key, parts in _EXPECTED.items() if problem in (key, "all") for p in parts):
        assert part in message, (part, message)
    assert all(torch.equal(t, before[k]) for k, t in model.state_dict().items())  # nothing half-loaded


def test_strict_false_warns_and_loads_the_rest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sd = _edited_state_dict("all")
    path = tmp_path / "r20.pth"
    torch.save(sd, path)
    model = zoo.create("resnet20")
    with caplog.at_level(logging.WARNING, logger="zoo.weights"):
        load_into(model, "resnet20", path, strict=False)
    assert "linear.bias" in caplog.text and "head.weight" in caplog.text and "[100, 64]" in caplog.text
    assert torch.equal(model.conv1.weight, sd["conv1.weight"])


@pytest.mark.parametrize("payload", [TouchPayload, SystemPayload])
@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickled_code_is_refused_and_never_run(tmp_path: Path, payload: type, writer: str) -> None:
    canary = tmp_path / "canary"
    pickle.loads(pickle.dumps(payload(canary)))  # the payload is real: plain unpickling runs it
    assert canary.exists()

    marker = tmp_path / "marker"
    obj = {"state_dict": _randomized().state_dict(), "extra": payload(marker)}
    path = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(CheckpointError, match="contains objects other than tensors and was refused for safety"):
        zoo.create("resnet20", weights=str(path))
    with pytest.raises(CheckpointError, match="refused for safety"):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "model_state_dict", "net"])
def test_akamaster_style_th_checkpoint_loads(tmp_path: Path, wrapper: str) -> None:
    src = _randomized()
    path = tmp_path / "resnet20-12fca82f.th"
    torch.save({wrapper: {f"module.{k}": v for k, v in src.state_dict().items()}, "best_prec1": 91.0}, path)
    fresh = zoo.create("resnet20")
    assert not torch.allclose(_out(fresh), _out(src))  # the test would notice a load that did nothing
    loaded = zoo.create("resnet20", weights=str(path))
    assert torch.equal(_out(loaded), _out(src))
    assert torch.equal(loaded.layer1[0].bn1.num_batches_tracked, torch.tensor(1234))


def test_third_party_safetensors_without_header_loads(tmp_path: Path) -> None:
    import safetensors.torch

    src = _randomized()
    path = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    assert torch.equal(_out(zoo.create("resnet20", weights=str(path))), _out(src))


def test_torch_file_without_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match="holds no state dict: .*epoch"):
        zoo.create("resnet20", weights=str(path))


def test_missing_path_and_unknown_suffix_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint file at"):
        zoo.create("resnet20", weights=str(tmp_path / "nope.safetensors"))
    odd = tmp_path / "weights.npz"
    odd.write_bytes(b"\0" * 16)
    with pytest.raises(CheckpointError, match="cannot tell the format"):
        zoo.create("resnet20", weights=str(odd))


# --------------------------------------------------------------------------------------------------
# Resolver, cache and download


def test_registered_weights_resolve_by_default_name_and_tag(released: tuple[Weights, torch.nn.Module],
                                                            dirs: dict[str, Path]) -> None:
    weights, model = released
    expected = dirs["env_weights"] / weights.file_name
    for spec in ("default", "resnet20.test", "test", weights):
        resolved = resolve(spec, "resnet20")
        assert (resolved.path, resolved.weights, resolved.source) == (expected, weights, "weights_dir")
    assert load_into(zoo.create("resnet20"), "resnet20", "default") == weights
    assert torch.equal(_out(zoo.create("resnet20", weights="test")), _out(model))


def test_env_weights_dir_comes_before_the_checkout(released: tuple[Weights, torch.nn.Module],
                                                   dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    weights, _ = released
    (dirs["repo_weights"] / weights.file_name).write_bytes((dirs["env_weights"] / weights.file_name).read_bytes())
    assert resolve("default", "resnet20").path == dirs["env_weights"] / weights.file_name
    monkeypatch.delenv("ZOO_WEIGHTS_DIR")
    assert resolve("default", "resnet20").path == dirs["repo_weights"] / weights.file_name


_PACKAGE_DIRS = zw.package_dirs


def _installed_distribution(site: Path, name: str, folder: str) -> Path:
    """A data distribution as pip installs one into ``site``: its dist-info, naming ``folder`` in zoo.weights."""
    info = site / f"{name.replace('-', '_')}-1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1\n")
    (info / "entry_points.txt").write_text(f"[zoo.weights]\n{name.replace('-', '_')} = {folder}\n")
    return site / folder


def test_installed_data_distributions_come_after_the_folders_and_before_the_cache(
        released: tuple[Weights, torch.nn.Module], dirs: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    weights, _ = released
    site = tmp_path / "site"
    folder = _installed_distribution(site, "zoo-weights-9", "zoo_weights_9")
    folder.mkdir()
    _installed_distribution(site, "zoo-weights-evil", "../outside")  # not a folder of its own: ignored
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(zw, "package_dirs", _PACKAGE_DIRS)
    data = (dirs["env_weights"] / weights.file_name).read_bytes()
    (folder / weights.file_name).write_bytes(data)
    (dirs["cache"] / f"{weights.sha256}.safetensors").write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="zoo.weights.hub"):
        assert ("zoo-weights-9", folder) in zw.package_dirs()
    assert "../outside" in caplog.text and not any("outside" in str(d) for _, d in zw.package_dirs())
    assert resolve("default", "resnet20").source == "weights_dir"  # $ZOO_WEIGHTS_DIR first
    monkeypatch.delenv("ZOO_WEIGHTS_DIR")
    found = resolve("default", "resnet20")
    assert (found.path, found.source) == (folder / weights.file_name, "package")  # then the package, not the cache
    assert zoo.weights.where(weights) == ("package", folder / weights.file_name)
    assert {r["path"] for r in zw.verify_files() if r["name"] == weights.name} == {
        str(folder / weights.file_name), str(dirs["cache"] / f"{weights.sha256}.safetensors")}
    _flip_byte(folder / weights.file_name)
    with pytest.raises(CheckpointError, match=f"sha256 mismatch for weights resnet20.test in {folder}"):
        zoo.create("resnet20", weights="default")


def test_unknown_or_foreign_weight_names(released: tuple[Weights, torch.nn.Module]) -> None:
    with pytest.raises(UnknownModelError, match="did you mean: resnet20.test"):
        resolve("resnet20.tset", "resnet20")
    with pytest.raises(CheckpointError, match="weights resnet20.test are for resnet20, model is resnet32"):
        zoo.create("resnet32", weights="resnet20.test")
    with pytest.raises(CheckpointError, match="resnet32 has no released weights"):
        zoo.create("resnet32", weights="default")


def test_list_and_get_weights(released: tuple[Weights, torch.nn.Module]) -> None:
    weights, _ = released
    assert weights in list_weights() and list_weights("resnet20.*") == [weights] and list_weights("resnet32*") == []
    assert get_weights("resnet20.test") is weights
    with pytest.raises(UnknownModelError, match="did you mean: resnet20.test"):
        get_weights("resnet20.tests")
    assert weights.name == "resnet20.test" and weights.to_dict()["name"] == "resnet20.test"


def test_weights_entry_is_validated() -> None:
    good = dict(arch="resnet20", tag="t", file_name="resnet20.t.safetensors", sha256="0" * 64, dataset="cifar10",
                num_classes=10, classes=list("abcdefghij"), input_size=[3, 32, 32], mean=[0.5] * 3, std=[0.5] * 3,
                metrics=Metrics(top1=1.0, top5=None, loss=1.0, num_images=1), num_params=1, gflops=0.0,
                recipe="r", train_time_s=0.0, hardware="cpu", file_size=1)
    assert Weights(**good).input_size == (3, 32, 32)  # lists become tuples: the entry is hashable
    hash(Weights(**good))
    for bad in ({"sha256": "ABC"}, {"dtype": "bfloat16"}, {"file_name": "resnet20.t.pth"}, {"arch": "a.b"}):
        with pytest.raises(InvalidArgumentError):
            Weights(**dict(good, **bad))


def _publish(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, url: str | None = None
             ) -> tuple[Weights, Path]:
    """A registered resnet20.test whose only copy is in dirs["src"] (not a place the resolver looks)."""
    src = dirs["src"] / "resnet20.test.safetensors"
    save_checkpoint(_randomized(), src, arch="resnet20", dataset="cifar10")
    weights = _weights_for(src, url=url)
    _register(monkeypatch, weights)
    return weights, src


def test_missing_file_without_url_gives_one_line(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    weights, _ = _publish(dirs, monkeypatch)
    with pytest.raises(CheckpointError) as err:
        zoo.create("resnet20", weights="default")
    message = str(err.value)
    assert "\n" not in message
    for part in ("resnet20.test not found", weights.file_name, str(dirs["env_weights"]), str(dirs["repo_weights"]),
                 f"{weights.sha256}.safetensors", str(dirs["cache"]), "no download URL", "pass the file's path"):
        assert part in message, part


def test_cache_is_keyed_by_sha256(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    weights, src = _publish(dirs, monkeypatch)
    (dirs["cache"] / weights.file_name).write_bytes(src.read_bytes())  # right file name: not how the cache is keyed
    with pytest.raises(CheckpointError, match="not found"):
        resolve("default", "resnet20")

    cached = dirs["cache"] / f"{weights.sha256}.safetensors"
    cached.write_bytes(src.read_bytes())
    assert resolve("default", "resnet20") == zoo.weights.ResolvedWeights(cached, weights, "cache")
    zoo.create("resnet20", weights="default")

    _flip_byte(cached)  # the right name with the wrong content
    for load in (lambda: resolve("default", "resnet20"), lambda: zoo.create("resnet20", weights="default")):
        with pytest.raises(CheckpointError, match=f"sha256 mismatch.*{cached}.*expected {weights.sha256}"):
            load()


def test_download_is_verified_then_cached(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    weights, src = _publish(dirs, monkeypatch, url=None)
    weights = dataclasses.replace(weights, url=src.as_uri())  # file:// goes through the same urllib code
    _register(monkeypatch, weights)
    resolved = resolve("default", "resnet20", progress=False)
    cached = dirs["cache"] / f"{weights.sha256}.safetensors"
    assert (resolved.path, resolved.source) == (cached, "download")
    assert os.listdir(dirs["cache"]) == [cached.name]  # no temp or partial files left
    assert resolve("default", "resnet20").source == "cache"
    load_into(zoo.create("resnet20"), "resnet20", "default", progress=False)


def test_download_with_wrong_hash_is_discarded(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    weights, src = _publish(dirs, monkeypatch)
    wrong = dataclasses.replace(weights, sha256="f" * 64, url=src.as_uri())
    expected = f"sha256 mismatch .*downloaded.*expected {'f' * 64}, got {weights.sha256}"
    with pytest.raises(CheckpointError, match=expected):
        load_into(zoo.create("resnet20"), "resnet20", wrong, progress=False)
    assert os.listdir(dirs["cache"]) == []


def test_failed_download_gives_one_line(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    weights, _ = _publish(dirs, monkeypatch)
    offline = dataclasses.replace(weights, url="http://127.0.0.1:9/resnet20.test.safetensors")
    with pytest.raises(CheckpointError) as err:
        resolve(offline, "resnet20", progress=False)
    assert "\n" not in str(err.value)
    assert "downloading http://127.0.0.1:9/" in str(err.value) and "failed" in str(err.value)
    assert os.listdir(dirs["cache"]) == []


# --------------------------------------------------------------------------------------------------
# Every released checkpoint against its entry (like torchvision's test_extended_models.py)


@pytest.mark.parametrize("weights", [pytest.param(w, id=w.name) for w in list_weights()])
def test_registered_weights_match_their_file(weights: Weights) -> None:
    try:
        path, _ = zw._locate(weights, download=False)
    except CheckpointError:
        if weights.url is None:
            raise  # a release without a URL must ship its file in weights/
        pytest.skip(f"{weights.name} is not downloaded")
    assert sha256_file(path) == weights.sha256
    assert path.stat().st_size == weights.file_size

    meta = read_metadata(path)
    spec = get_dataset_spec(weights.dataset)
    assert (meta["format"], meta["arch"], meta["dataset"], meta["dtype"]) == (
        zoo.weights.FORMAT, weights.arch, spec.name, weights.dtype)
    assert int(meta["num_classes"]) == weights.num_classes == spec.num_classes
    assert tuple(json.loads(meta["classes"])) == weights.classes == spec.classes
    assert tuple(json.loads(meta["input_size"])) == weights.input_size == spec.input_size
    assert tuple(json.loads(meta["mean"])) == weights.mean == spec.mean
    assert tuple(json.loads(meta["std"])) == weights.std == spec.std
    if "metrics" in meta:
        assert json.loads(meta["metrics"]) == dataclasses.asdict(weights.metrics)
    if "recipe" in meta:
        assert json.loads(meta["recipe"])["name"] == weights.recipe

    model = zoo.create(weights.arch, num_classes=weights.num_classes, weights=weights.name)
    assert count_params(model) == weights.num_params
    assert count_flops(model, weights.input_size) / 1e9 == pytest.approx(weights.gflops, rel=1e-3, abs=1e-4)


def test_checkpoint_saved_before_num_batches_tracked_loads_like_today(tmp_path: Path) -> None:
    """A 2018-era checkpoint ({"state_dict": {"module.*"}, "best_prec1"}, no num_batches_tracked) evaluates
    exactly like the same weights saved today, through the same path as `zoo-eval --weights`."""
    from zoo.evaluate import evaluate_model

    model = zoo.create("resnet20", weights="default")
    state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(state) < len(model.state_dict())
    old = tmp_path / "resnet20-old.th"
    torch.save({"state_dict": state, "best_prec1": 91.71}, old)
    today = evaluate_model("resnet20", "cifar10", weights="default", backend="eager", limit=200)
    then = evaluate_model("resnet20", "cifar10", weights=str(old), backend="eager", limit=200)
    assert then.correct == today.correct and then.loss == pytest.approx(today.loss, abs=1e-6)
    state.pop("module.bn1.running_mean")  # any other missing buffer is still an error
    torch.save({"state_dict": state}, old)
    with pytest.raises(CheckpointError, match="missing keys: bn1.running_mean"):
        zoo.create("resnet20", weights=str(old))


def test_mirror_url_comes_first_and_a_checkout_is_not_required(dirs: dict[str, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    weights, src = _publish(dirs, monkeypatch, url="https://example.invalid/own/resnet20.test.safetensors")
    monkeypatch.delenv("ZOO_WEIGHTS_URL", raising=False)
    assert zw.download_url(weights) == weights.url
    monkeypatch.setenv("ZOO_WEIGHTS_URL", "http://mirror.invalid/zoo/")
    assert zw.download_url(weights) == f"http://mirror.invalid/zoo/{weights.file_name}"
    assert zw.where(weights) == ("remote", None)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", dirs["src"].as_uri())  # a file:// mirror takes the same path as http
    assert zoo.weights.download(weights, progress=False) == dirs["cache"] / f"{weights.sha256}.safetensors"
    assert zw.where(weights) == ("cache", dirs["cache"] / f"{weights.sha256}.safetensors")
    monkeypatch.delenv("ZOO_WEIGHTS_URL")
    monkeypatch.delenv("ZOO_WEIGHTS_DIR")
    monkeypatch.setattr(zw, "_REPO_WEIGHTS_DIR", None)  # an installed package: no weights folder at all
    assert zw.weights_dirs() == []
    no_url = dataclasses.replace(weights, url=None, sha256="0" * 64)
    assert zw.where(no_url) == ("missing", None)
    with pytest.raises(CheckpointError, match="no download URL .*no public host.*ZOO_WEIGHTS_URL"):
        resolve(no_url, "resnet20")


def test_download_to_a_folder_and_verify_every_file(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    weights, src = _publish(dirs, monkeypatch, url=None)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", dirs["src"].as_uri())
    offline = tmp_path / "usb"
    copy = zoo.weights.download(weights, to=offline, progress=False)
    assert copy == offline / weights.file_name and sha256_file(copy) == weights.sha256
    rows = {(r["name"], Path(r["path"]).parent.name): r["ok"] for r in zw.verify_files()}
    assert rows == {("resnet20.test", "cache"): True}  # usb/ is no weights folder until $ZOO_WEIGHTS_DIR names it
    monkeypatch.setenv("ZOO_WEIGHTS_DIR", str(offline))
    (dirs["cache"] / ("e" * 64 + ".safetensors")).write_bytes(b"not what its name says")
    rows = {(r["name"], Path(r["path"]).parent.name): r["ok"] for r in zw.verify_files()}
    assert rows == {("resnet20.test", "usb"): True, ("resnet20.test", "cache"): True, (None, "cache"): False}


def test_transient_download_failures_are_retried(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    weights, src = _publish(dirs, monkeypatch, url="http://mirror.invalid/resnet20.test.safetensors")
    calls = []

    def flaky(url: str, dst: Path, size: int, deadline: float, progress: bool = True) -> None:
        calls.append(url)
        if len(calls) == 1:
            raise urllib.error.URLError(ConnectionResetError("reset by peer"))
        Path(dst).write_bytes(src.read_bytes())

    monkeypatch.setattr(zw, "_fetch", flaky)
    monkeypatch.setattr(zw.time, "sleep", lambda s: None)
    assert resolve("default", "resnet20", progress=False).source == "download" and len(calls) == 2

    def missing(url: str, dst: Path, size: int, deadline: float, progress: bool = True) -> None:
        calls.append(url)
        raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]

    calls.clear()
    monkeypatch.setattr(zw, "_fetch", missing)
    (dirs["cache"] / f"{weights.sha256}.safetensors").unlink()
    with pytest.raises(CheckpointError, match="404"):
        resolve("default", "resnet20", progress=False)
    assert len(calls) == 1  # a 404 is not retried
