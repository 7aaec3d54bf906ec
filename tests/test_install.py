"""zoo as users install it: a wheel built from the sources, installed outside the checkout, fetching
released weights from a loopback mirror ($ZOO_WEIGHTS_URL) or finding them in the installed data
distributions (packaging/zoo-weights-N), and torch.hub's local entry points."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import zoo
from conftest import require_dataset
from zoo.weights import sha256_file

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = zoo.get_weights("resnet20.cifar10")
pytestmark = pytest.mark.xdist_group("install")  # one worker builds the wheel once (module fixture)


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, target folder): built from a copy of the sources (the checkout stays clean), installed with --target."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "zoo", src / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
                   check=True, capture_output=True)
    (wheel,) = (tmp / "dist").glob("zoo-*.whl")
    target = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True)
    return wheel, target


@pytest.fixture(scope="module")
def weights_install(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """(wheels, target folder) of the data distributions, built from a copy of packaging/ and weights/ and installed
    with --no-index --find-links into a target of their own (the mirror test's target has none)."""
    tmp = tmp_path_factory.mktemp("weights-install")
    for name in ("packaging", "weights"):
        shutil.copytree(REPO / name, tmp / "src" / name, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    volumes = sorted((tmp / "src" / "packaging").glob("zoo-weights-*"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), *map(str, volumes)],
                   check=True, capture_output=True)
    target = tmp / "site"
    subprocess.run([*pip, "install", "--no-index", "--find-links", str(tmp / "dist"), "--no-deps", "--target",
                    str(target), *(v.name for v in volumes)], check=True, capture_output=True)
    return sorted((tmp / "dist").glob("*.whl")), target


def test_every_released_checkpoint_is_in_exactly_one_volume_of_at_most_100_mb() -> None:
    """Release discipline: packaging/ is current with the registry (tools/weights_packages.py --check), each
    registered file is listed in one volume, nothing else is, and no volume passes the index's 100 MB."""
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "weights_packages.py"), "--check"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    spec = importlib.util.spec_from_file_location("zoo_weights_packages", REPO / "tools" / "weights_packages.py")
    packages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(packages)
    listed = [f for v in packages.read_volumes().values() for f in v["files"]]
    assert sorted(listed) == sorted(w.file_name for w in zoo.list_weights())
    sizes = {w.file_name: w.file_size for w in zoo.list_weights()}
    for name, volume in packages.read_volumes().items():
        assert sum(sizes[f] for f in volume["files"]) <= packages.MAX_VOLUME_BYTES < 100_000_000, name


@pytest.mark.full_data
@pytest.mark.slow
def test_installed_weights_packages_answer_offline_and_a_changed_file_is_refused(
        wheel_install: tuple[Path, Path], weights_install: tuple[list[Path], Path], tmp_path: Path) -> None:
    require_dataset("cifar10")
    wheels, weights_target = weights_install
    assert len(wheels) >= 2 and all(w.stat().st_size <= 100_000_000 for w in wheels), wheels
    _, target = wheel_install
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**_env(target, tmp_path / "empty-cache", ""), "PYTHONPATH": f"{target}{os.pathsep}{weights_target}"}
    del env["ZOO_WEIGHTS_URL"]
    listing = subprocess.run([str(target / "bin" / "zoo"), "weights", "list", "--json"], env=env, cwd=elsewhere,
                             capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert {r["where"] for r in rows} == {"package"} and len(rows) == len(zoo.list_weights())
    assert all(r["path"].startswith(str(weights_target)) for r in rows)

    run = _zoo_eval(target, env, elsewhere)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["top1"] == WEIGHTS.metrics.top1
    assert not (tmp_path / "empty-cache").exists()  # nothing downloaded, nothing cached

    installed = next(Path(r["path"]) for r in rows if r["name"] == WEIGHTS.name)
    bad = bytearray(installed.read_bytes())
    bad[-100] ^= 0xFF
    installed.write_bytes(bytes(bad))
    run = _zoo_eval(target, env, elsewhere)
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
    assert "sha256 mismatch" in run.stderr and str(installed) in run.stderr


def test_wheel_holds_the_package_and_no_checkpoints(wheel_install: tuple[Path, Path]) -> None:
    wheel, target = wheel_install
    names = zipfile.ZipFile(wheel).namelist()
    assert "zoo/__init__.py" in names and "zoo/data/_sample/cifar10.npz" in names
    assert ("zoo/auto.json" in names) == (REPO / "zoo" / "auto.json").exists()  # what auto stands for travels along
    assert not [n for n in names if n.endswith((".safetensors", ".pth")) or n.startswith("weights/")]
    assert (target / "bin" / "zoo-eval").is_file()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """``python -m http.server`` on a loopback port, serving a folder (empty at first)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    server = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"], cwd=folder,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline() if server.stdout else ""
        port = re.search(r"port (\d+)", line)
        assert port, f"http.server did not start: {line!r}"
        yield f"http://127.0.0.1:{port.group(1)}", folder, server
    finally:
        server.kill()
        server.wait()


def _env(target: Path, cache: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_") or k == "ZOO_DATA"}
    return dict(env, PYTHONPATH=str(target), ZOO_CACHE=str(cache), ZOO_WEIGHTS_URL=url)


def _zoo_eval(target: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(target / "bin" / "zoo-eval"), "--model", "resnet20", "cifar10", "--backend", "eager",
                           "--no-sample", "--no-progress", "--json"], env=env, cwd=cwd, capture_output=True, text=True)


@pytest.mark.full_data
@pytest.mark.slow
def test_installed_wheel_downloads_verifies_caches_and_reproduces_the_top1(
        wheel_install: tuple[Path, Path], mirror: tuple[str, Path, subprocess.Popen[str]], tmp_path: Path) -> None:
    require_dataset("cifar10")
    _, target = wheel_install
    url, folder, server = mirror
    cache, elsewhere = tmp_path / "cache", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env(target, cache, url)
    where = subprocess.run([sys.executable, "-c", "import zoo, zoo.weights as w; print(zoo.__file__); "
                            "print(w.weights_dirs())"], env=env, cwd=elsewhere, capture_output=True, text=True)
    assert where.stdout.splitlines() == [str(target / "zoo" / "__init__.py"), "[]"], where.stderr  # not the checkout

    # a tampered file on the mirror: refused, and nothing enters the cache
    bad = bytearray((REPO / "weights" / WEIGHTS.file_name).read_bytes())
    bad[-100] ^= 0xFF
    (folder / WEIGHTS.file_name).write_bytes(bytes(bad))
    run = _zoo_eval(target, env, elsewhere)
    assert run.returncode == 1 and "sha256 mismatch" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert not cache.exists() or not any(cache.iterdir())

    # the real file: downloaded, verified, cached by sha256, and the recorded top-1 exactly
    shutil.copy(REPO / "weights" / WEIGHTS.file_name, folder / WEIGHTS.file_name)
    run = _zoo_eval(target, env, elsewhere)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["top1"] == WEIGHTS.metrics.top1
    cached = cache / f"{WEIGHTS.sha256}.safetensors"
    assert [p.name for p in cache.iterdir()] == [cached.name] and sha256_file(cached) == WEIGHTS.sha256

    # offline: the mirror is gone, the cache answers
    server.kill()
    server.wait()
    run = _zoo_eval(target, env, elsewhere)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["top1"] == WEIGHTS.metrics.top1

    # another released file is not cached: offline, one line naming the mirror
    listing = subprocess.run([str(target / "bin" / "zoo"), "weights", "path", "resnet18.cifar10", "--no-progress"],
                             env=env, cwd=elsewhere, capture_output=True, text=True)
    assert listing.returncode == 1 and listing.stderr.count("\n") == 1, listing.stderr
    assert f"downloading {url}/{zoo.get_weights('resnet18.cifar10').file_name} failed" in listing.stderr


def test_torch_hub_local_entry_points_load_verified_weights() -> None:
    model = torch.hub.load(str(REPO), "resnet20", source="local", pretrained=True, trust_repo=True)
    reference = zoo.create("resnet20", weights="default")
    x = torch.randn(2, 3, 32, 32)
    model.eval(), reference.eval()
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    fresh = torch.hub.load(str(REPO), "resnet20", source="local", num_classes=5)
    assert fresh.linear.out_features == 5  # options pass through to zoo.create
    spec = importlib.util.spec_from_file_location("zoo_hubconf", REPO / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    entries = sorted(n for n in dir(hub) if not n.startswith("_") and callable(getattr(hub, n)) and
                     n in zoo.list_models())
    assert entries == sorted(zoo.list_models(pretrained=True))
    assert "resnet20.cifar10" in hub.resnet20.__doc__
