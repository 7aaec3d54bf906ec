"""Reference checks taken from the reports, re-done by hand and compared with PyTorch and the registry.

- report 001, section 1: convolution and average pooling written in NumPy agree with PyTorch (the
  report measured Euclidean distances of about 1e-6 between the two);
- report 004, questions 15-17: the hand-derived gradients of the one-hidden-layer tanh network equal autograd's;
- reports 000-003: the parameter arithmetic the reports do layer by layer is what the registry asserts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.data.datasets import load_sample, make_circles
from zoo.registry import get_entry

# --------------------------------------------------------------------------------------------------
# Report 001, section 1: convolution and average pooling in NumPy


def conv2d_numpy(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: int = 1,
                 padding: int = 0) -> np.ndarray:
    """Cross-correlation as deep-learning frameworks define convolution: x C x H x W, w O x C x kh x kw."""
    c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    assert c == c2
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((o, ho, wo), dtype=np.float64)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, i, j] = (w * patch[None]).sum(axis=(1, 2, 3))
    return out if b is None else out + b[:, None, None]


def avg_pool_numpy(x: np.ndarray, k: int = 2, stride: int | None = None) -> np.ndarray:
    """Average of every k x k window (no padding), C x H x W."""
    s = stride or k
    c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    out = np.zeros((c, ho, wo), dtype=np.float64)
    for i in range(ho):
        for j in range(wo):
            out[:, i, j] = x[:, i * s:i * s + k, j * s:j * s + k].mean(axis=(1, 2))
    return out


# The report's three 3x3 filters respond along a diagonal, a vertical line and the other diagonal.
REPORT001_FILTERS = np.array([
    [[1, -1, -1], [-1, 1, -1], [-1, -1, 1]],
    [[-1, 1, -1], [-1, 1, -1], [-1, 1, -1]],
    [[-1, -1, 1], [-1, 1, -1], [1, -1, -1]],
], dtype=np.float32)[:, None]  # 3 x 1 x 3 x 3


def _mnist_examples(n: int = 4) -> np.ndarray:
    return load_sample("mnist").images[:n].numpy().astype(np.float32) / 255  # n x 1 x 28 x 28


def test_numpy_convolution_and_pooling_agree_with_pytorch_per_example_and_filter() -> None:
    """Report 001's table: for each of 4 examples and 3 filters, the distance between NumPy and PyTorch."""
    x = _mnist_examples()
    conv_t = F.conv2d(torch.from_numpy(x), torch.from_numpy(REPORT001_FILTERS))
    pool_t = F.avg_pool2d(conv_t, 2)
    for e in range(len(x)):
        conv_np = conv2d_numpy(x[e].astype(np.float64), REPORT001_FILTERS.astype(np.float64))
        pool_np = avg_pool_numpy(conv_np, 2)
        assert conv_np.shape == (3, 26, 26) and pool_np.shape == (3, 13, 13)
        for f in range(3):
            for ours, theirs in ((conv_np[f], conv_t[e, f]), (pool_np[f], pool_t[e, f])):
                diff = ours - theirs.double().numpy()
                assert np.abs(diff).max() <= 1e-5
                assert np.sqrt((diff ** 2).sum()) <= 1e-5  # the report's Euclidean distance


@pytest.mark.parametrize(("stride", "padding", "pool"), [(1, 0, 2), (1, 1, 2), (2, 2, 3), (3, 1, 2)])
def test_numpy_convolution_with_bias_stride_padding_on_cifar(stride: int, padding: int, pool: int) -> None:
    x = load_sample("cifar10").images[:2].numpy().astype(np.float32) / 255
    rng = np.random.default_rng(stride * 10 + padding)
    w = rng.normal(size=(5, 3, 5, 5)).astype(np.float32) * 0.2
    b = rng.normal(size=5).astype(np.float32)
    conv_t = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=stride, padding=padding)
    pool_t = F.avg_pool2d(conv_t, pool)
    for e in range(len(x)):
        conv_np = conv2d_numpy(x[e].astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride=stride,
                               padding=padding)
        np.testing.assert_allclose(conv_np, conv_t[e].double().numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(avg_pool_numpy(conv_np, pool), pool_t[e].double().numpy(), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# Report 004, questions 15-17: gradients of the tanh MLP by hand


def _tanh_mlp_and_batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = zoo.create("mlp_tanh_circles").double()
    points, labels = make_circles("train")
    # a batch of 10, as the report
    return model, torch.from_numpy(points[:10]).double(), torch.from_numpy(labels[:10]).long()


def _hand_forward(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Question 7's forward pass, with the hidden bias the report's h~ = x W_h^T leaves out."""
    lin_h, lin_y = model.features[1], model.classifier
    h_tilde = x @ lin_h.weight.T + lin_h.bias
    h = torch.tanh(h_tilde)
    y_tilde = h @ lin_y.weight.T + lin_y.bias
    return {"h_tilde": h_tilde, "h": h, "y_tilde": y_tilde, "y_hat": y_tilde.softmax(1)}


def test_hand_derived_gradients_of_the_tanh_mlp_equal_autograd() -> None:
    model, x, labels = _tanh_mlp_and_batch()
    lin_h, lin_y = model.features[1], model.classifier
    with torch.no_grad():
        f = _hand_forward(model, x)
        y = F.one_hot(labels, 2).double()
        g_y_tilde = f["y_hat"] - y  # question 15: dl/dy~ = y^ - y
        g_w_y = g_y_tilde.T @ f["h"]  # question 16: dl/dW_y,ij = (y^_i - y_i) h_j, summed over the batch
        g_b_y = g_y_tilde.sum(0)
        g_h_tilde = (g_y_tilde @ lin_y.weight) * (1 - f["h"] ** 2)  # question 17, vector form
        g_w_h = g_h_tilde.T @ x
        g_b_h = g_h_tilde.sum(0)

    logits = model(x)
    logits.retain_grad()
    torch.testing.assert_close(logits, f["y_tilde"], rtol=0, atol=1e-12)  # the model is the report's network
    F.cross_entropy(logits, labels, reduction="sum").backward()  # the report's loss, summed over the batch
    for ours, autograd in [(g_y_tilde, logits.grad), (g_w_y, lin_y.weight.grad), (g_b_y, lin_y.bias.grad),
                           (g_w_h, lin_h.weight.grad), (g_b_h, lin_h.bias.grad)]:
        torch.testing.assert_close(ours, autograd, rtol=1e-10, atol=1e-12)


def test_report004_elementwise_tanh_derivative_is_a_slip() -> None:
    """The report writes dh_i/dh~_i = 1 - h~_i^2 element-wise but 1 - h^2 in its vector form; only the latter is
    the derivative of tanh."""
    model, x, _ = _tanh_mlp_and_batch()
    f = _hand_forward(model, x)
    h_tilde = f["h_tilde"].detach().requires_grad_(True)
    (torch.tanh(h_tilde).sum()).backward()
    torch.testing.assert_close(h_tilde.grad, 1 - torch.tanh(h_tilde.detach()) ** 2)
    assert not torch.allclose(h_tilde.grad, 1 - h_tilde.detach() ** 2, atol=1e-3)


# --------------------------------------------------------------------------------------------------
# Parameter arithmetic of the reports


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return k * k * cin * cout + (cout if bias else 0)


def _fc(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _bn(c: int) -> int:
    return 2 * c


def _vgg(cfg: list[int], *, bn: bool, head: list[int], in_chans: int = 3) -> int:
    total, c = 0, in_chans
    for width in cfg:
        total += _conv(c, width, 3) + (_bn(width) if bn else 0)
        c = width
    widths = [c, *head]
    return total + sum(_fc(a, b) for a, b in zip(widths, widths[1:]))


def _resnet(blocks: list[int], *, bottleneck: bool, num_classes: int = 10) -> int:
    """torchvision-style ResNet with a 3x3 stem: convs without bias, BatchNorm after each, 1x1 projection shortcuts."""
    expansion = 4 if bottleneck else 1
    total = _conv(3, 64, 3, bias=False) + _bn(64)
    c = 64
    for stage, (n, planes) in enumerate(zip(blocks, (64, 128, 256, 512))):
        for i in range(n):
            out = planes * expansion
            if bottleneck:
                total += (_conv(c, planes, 1, False) + _bn(planes) + _conv(planes, planes, 3, False) + _bn(planes)
                          + _conv(planes, out, 1, False) + _bn(out))
            else:
                total += _conv(c, planes, 3, False) + _bn(planes) + _conv(planes, planes, 3, False) + _bn(planes)
            if i == 0 and (c != out or stage > 0):
                total += _conv(c, out, 1, False) + _bn(out)
            c = out
    return total + _fc(c, num_classes)


VGG_A = [64, 128, 256, 256, 512, 512, 512, 512]

ARITHMETIC = {
    # report 000, section 1.1: 784-60-40-20-10 with BatchNorm1d after each hidden Linear
    "mlp_60_40_20_bn": _fc(784, 60) + _bn(60) + _fc(60, 40) + _bn(40) + _fc(40, 20) + _bn(20) + _fc(20, 10),
    # report 000, section 2.1: ConvBlock1 x2 (2 convs), ConvBlock2 x3 (4 convs), Linear 512-512-128-10
    "vgg19_bn": _vgg([64, 64, 128, 128] + [256] * 4 + [512] * 8, bn=True, head=[512, 128, 10]),
    # report 001, section 2.1: the report's own five lines
    "cnn_32_64_mnist": 320 + 18_496 + 1_982_528 + 2_080 + 330,
    # report 002, section 2.1: VGG-A, with and without BatchNorm, classifier 512-512-512-10; VGG-A-Light
    "vgga": _vgg(VGG_A, bn=False, head=[512, 512, 10]),
    "vgga_bn": _vgg(VGG_A, bn=True, head=[512, 512, 10]),
    "vgga_light": _conv(3, 16, 3) + _conv(16, 32, 3) + _fc(32 * 8 * 8, 128) + _fc(128, 128) + _fc(128, 10),
    # report 003, section 1.3: equations (1)-(5), with the 10 biases equation (5) leaves out
    "lenet_cifar": 2_432 + 51_264 + 204_928 + 131_136 + (640 + 10),
    # report 002, Table 3
    "resnet18": _resnet([2, 2, 2, 2], bottleneck=False),
    "resnet34": _resnet([3, 4, 6, 3], bottleneck=False),
    "resnet50": _resnet([3, 4, 6, 3], bottleneck=True),
    "resnet101": _resnet([3, 4, 23, 3], bottleneck=True),
    "resnet152": _resnet([3, 8, 36, 3], bottleneck=True),
}


@pytest.mark.parametrize("name", sorted(ARITHMETIC))
def test_report_parameter_arithmetic_is_what_the_registry_asserts(name: str) -> None:
    assert ARITHMETIC[name] == get_entry(name).expected_params == zoo.model_info(name).params


def test_report_totals_as_printed() -> None:
    assert ARITHMETIC["vgg19_bn"] == 20_365_002  # report 000: "a total of 20,365,002 parameters"
    assert ARITHMETIC["cnn_32_64_mnist"] == 2_003_754  # report 001: "Number of total parameters is 2,003,754"
    # report 003 sums its equations to 390,400: the arithmetic without the last layer's biases
    assert ARITHMETIC["lenet_cifar"] - 10 == 390_400 == zoo.model_info("lenet_cifar").reported_params
    # report 002, Table 3, in millions to three decimals
    table3 = {"resnet18": 11.174, "resnet34": 21.282, "resnet50": 23.521, "resnet101": 42.513, "resnet152": 58.157}
    assert {name: round(ARITHMETIC[name] / 1e6, 3) for name in table3} == table3
