"""Registry-driven model tests: every registered architecture gets each of these without anyone adding it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import zoo
from zoo.builder import count_flops, count_params
from zoo.registry import get_entry

ALL = zoo.list_models()


def _input(name: str, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, *get_entry(name).input_size)


def test_at_least_30_models() -> None:
    assert len(ALL) >= 30


@pytest.mark.parametrize("name", ALL)
def test_param_count_is_exact(name: str) -> None:
    model = zoo.create(name)
    assert count_params(model) == get_entry(name).expected_params


@pytest.mark.parametrize("name", ALL)
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = zoo.create(name)
    info = zoo.model_info(name)
    out = model(_input(name))
    assert out.shape == (2, info.num_classes)
    out.logsumexp(1).mean().backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"no finite gradient reaches {missing}"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if info.family == "fastnet":  # by design: the whitened stem and the unit BatchNorm scales
        assert frozen and all(n == "stem.weight" or n.endswith(".weight") and "layer" in n for n in frozen)
    else:
        assert not frozen


@pytest.mark.parametrize("name", ALL)
def test_flops_recorded_and_match_real_model(name: str) -> None:
    info = zoo.model_info(name)
    assert info.gflops > 0
    # model_info counts on the meta device; the real model must give the same count, and the registry
    # records it (listings show the recorded figure without building the model).
    assert count_flops(zoo.create(name), info.input_size) == round(info.gflops * 1e9) == get_entry(name).expected_flops


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_weights(name: str) -> None:
    torch.manual_seed(123)
    a = zoo.create(name).state_dict()
    torch.manual_seed(123)
    b = zoo.create(name).state_dict()
    torch.manual_seed(124)
    c = zoo.create(name).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("name", ["resnet20", "vgg11_bn", "lenet_cifar", "mlp_60_40_20_bn", "cnn_32_64_mnist",
                                  "mobilenetv2_x0_5", "shufflenetv2_x0_5", "repvgg_a0", "preactresnet18", "wrn16_8",
                                  "densenet_bc_100_k12"])
def test_num_classes_and_in_chans(name: str) -> None:
    info = zoo.model_info(name)
    in_chans = 1 if info.input_size[0] == 3 else 3
    model = zoo.create(name, num_classes=7, in_chans=in_chans).eval()
    x = torch.randn(2, in_chans, *info.input_size[1:])
    assert model(x).shape == (2, 7)


def test_report_figures_kept_where_they_differ() -> None:
    # The reports' own figures stay in the metadata next to the verified count.
    assert zoo.model_info("lenet_cifar").reported_params == 390_400
    assert zoo.model_info("cnn3_fc1000").reported_params == 1_088_418
    assert zoo.model_info("mlp_2523").reported_params == 2_005_610
    info = zoo.model_info("mlp_2523")
    assert abs(info.params - info.reported_params) / info.reported_params < 0.005


def test_resnet_cifar_has_parameter_free_shortcuts_and_scripts() -> None:
    model = zoo.create("resnet20").eval()
    shortcut_params = [n for n, _ in model.named_parameters() if "shortcut" in n]
    assert shortcut_params == []
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(scripted(x), model(x))


def test_unknown_model_suggests_close_matches() -> None:
    with pytest.raises(zoo.UnknownModelError, match="resnet20"):
        zoo.create("resnet21")
    with pytest.raises(zoo.UnknownModelError, match="vgg19_bn"):
        zoo.model_info("vgg19bn")


def test_unknown_kwarg_raises_and_none_is_dropped() -> None:
    with pytest.raises(zoo.InvalidArgumentError, match="drop_rate"):
        zoo.create("resnet20", drop_rate=0.1)
    with pytest.raises(zoo.InvalidArgumentError, match="dropout"):
        zoo.create("resnet20", dropout=0.5)
    model = zoo.create("vgga_dropout", dropout=0.3, num_classes=None)
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.3, 0.3]


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        zoo.register_model(family="x", source="x", dataset="cifar10", expected_params=0)(
            get_entry("resnet20").fn
        )


def test_list_models_patterns_and_filters() -> None:
    assert zoo.list_models("resnet*") == ["resnet18", "resnet20", "resnet32", "resnet34", "resnet44", "resnet50",
                                          "resnet56", "resnet101", "resnet110", "resnet152"]
    assert set(zoo.list_models(dataset="mnist")) == {"mlp_60_40_20_bn", "mlp_2523", "cnn_32_64_mnist",
                                                     "fastnet_mnist"}
    assert zoo.list_models(["vgg11", "vgg13"]) == ["vgg11", "vgg13"]
    assert zoo.list_models("no_such_*") == []


def test_import_zoo_is_light() -> None:
    heavy = "('torch', 'numpy', 'onnx', 'onnxruntime', 'click', 'timm', 'matplotlib')"
    code = f"import sys, zoo; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # torch comes with the first attribute that needs it
    code = "import sys, zoo; zoo.list_models(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "True\n"
    code = ("import sys, zoo.cli.app\ntry:\n    zoo.cli.app.main()\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    for args in (["--help"], ["train", "--help"], ["predict", "--help"], ["weights", "list", "--help"]):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert proc.stderr.strip() == "False" and "Usage" in proc.stdout, args  # --help never imports torch


def test_timm_architecture_adapted_to_32x32() -> None:
    model = zoo.create("timm/resnet18", num_classes=10).eval()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(zoo.UnknownModelError, match="resnet18"):
        zoo.create("timm/resnet1")


def test_zoo_models_in_timm_registry() -> None:
    import timm

    import zoo.interop.to_timm  # noqa: F401  (registers zoo_* with timm)

    model = timm.create_model("zoo_resnet20", num_classes=100)
    assert count_params(model) == 269_722 - 650 + 64 * 100 + 100
    assert len(timm.list_models("zoo_*")) == len(ALL)


def test_public_figures_name_their_collection_and_the_best_is_the_highest() -> None:
    entries = [get_entry(n) for n in ALL if get_entry(n).public]
    assert len(entries) >= 20  # chenyaofo's, kuangliu's and pytorchcv's CIFAR-10 figures (README's peers table)
    for e in entries:
        assert all(0 < p.top1 < 100 and p.url.startswith("https://github.com/") and "/" in p.source for p in e.public)
        assert e.best_public == max(e.public, key=lambda p: p.top1)
    assert get_entry("resnet20").best_public.top1 == 94.03 and get_entry("lenet_cifar").best_public is None
    assert "272,474 parameters" in get_entry("resnet20").best_public.note  # pytorchcv's: projection shortcuts
