"""RepVGG's deploy form: the fused network computes what the training form computes, builds directly, loads its
own state dict, and is what exports and runners use (repvgg_a0 only, small batches)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

import zoo
from zoo.builder import count_params, deploy_form
from zoo.runners import prepare
from zoo.runners.serialize import to_onnx
from zoo.weights import save_checkpoint

TOL = 1e-5
A0_BLOCKS = 1 + 2 + 4 + 14 + 1  # stage 0 and stages 1-4


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    """repvgg_a0 after a few SGD steps: BatchNorm statistics and affine parameters are no longer the initial ones.

    Shared by the tests below, which only read it (``deploy_form``, exports and runners work on copies).
    """
    steps = 3
    torch.manual_seed(0)
    model = zoo.create("repvgg_a0")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return (a.eval()(x) - b.eval()(x)).abs().max().item()


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_reparameterize_matches_the_training_form_on_random_weights() -> None:
    torch.manual_seed(0)
    model = zoo.create("repvgg_a0").eval()
    fused = deploy_form(model)
    assert fused is not model and len(_convs(model)) == 2 * A0_BLOCKS  # the caller's model keeps its branches
    assert _max_diff(model, fused) <= TOL


def test_reparameterize_matches_the_training_form_after_training(trained: nn.Module) -> None:
    model = trained
    bn = model.stage1[0].rbr_dense.bn
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))  # statistics to fold, not the init
    assert not torch.allclose(bn.weight, torch.ones_like(bn.weight))
    fused = deploy_form(model)
    assert _max_diff(model, fused) <= TOL
    # in place, returns the model, only 3x3 convs with bias and no BatchNorm left; a second call changes nothing
    before = {k: v.clone() for k, v in fused.state_dict().items()}
    assert fused.reparameterize() is fused
    assert all(torch.equal(before[k], v) for k, v in fused.state_dict().items())
    convs = _convs(fused)
    assert len(convs) == A0_BLOCKS and all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())


def test_deploy_true_builds_the_plain_form_that_loads_a_fused_state_dict(trained: nn.Module) -> None:
    fused = deploy_form(trained)
    plain = zoo.create("repvgg_a0", deploy=True)
    assert count_params(plain) == count_params(fused) == 7_041_194 < zoo.model_info("repvgg_a0").params
    assert [c.kernel_size for c in _convs(plain)] == [(3, 3)] * A0_BLOCKS
    plain.load_state_dict(fused.state_dict())  # strict
    assert _max_diff(plain, fused) == 0.0


def test_a_training_form_checkpoint_loads_into_the_training_form(trained: nn.Module, tmp_path: Path) -> None:
    model = trained
    path = tmp_path / "repvgg_a0.safetensors"
    save_checkpoint(model, path, arch="repvgg_a0", dataset="cifar10")
    loaded = zoo.create("repvgg_a0", weights=str(path))
    assert any("rbr_1x1" in k for k in loaded.state_dict())
    assert _max_diff(loaded, model) == 0.0
    with pytest.raises(zoo.CheckpointError):  # the deploy form has other tensors: no silent partial load
        zoo.create("repvgg_a0", weights=str(path), deploy=True)


@pytest.mark.slow  # an ONNX export: about 6 s
def test_onnx_export_has_only_3x3_convs_and_the_linear(trained: nn.Module, tmp_path: Path) -> None:
    model = trained
    path, _ = to_onnx(model, tmp_path / "a0.onnx", input_size=(3, 32, 32))
    graph = onnx.load(str(path)).graph
    weights = {t.name: numpy_helper.to_array(t).shape for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert len(convs) == A0_BLOCKS
    assert all(weights[n.input[1]][2:] == (3, 3) and len(n.input) == 3 for n in convs)  # 3x3 with bias, no 1x1
    assert not [n for n in graph.node if n.op_type == "BatchNormalization"]
    assert len([n for n in graph.node if n.op_type in ("Gemm", "MatMul")]) == 1
    assert len(_convs(model)) == 2 * A0_BLOCKS  # exporting left the caller's model in its training form


def test_runners_run_the_deploy_form(trained: nn.Module) -> None:
    model = trained
    runner = prepare(model, "eager", input_size=(3, 32, 32))
    assert len(_convs(runner.module)) == A0_BLOCKS and len(_convs(model)) == 2 * A0_BLOCKS
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (runner(x) - model(x)).abs().max().item() <= TOL
