"""Figures (matplotlib, imported lazily: install the ``plot`` extra)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, ZooError
from .fileio import atomic_path

__all__ = ["plot_confusion", "plot_curves", "plot_reliability", "save_figure"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ZooError("plots need matplotlib: pip install 'zoo[plot]'") from None
    return plt


_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Save ``fig`` atomically (temp file, then rename) and close it; a path that is no figure file is refused."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    try:
        if not path.name or path.name in (".", "..") or path.is_dir():
            raise InvalidArgumentError(f"cannot write a figure to {str(path)!r}: give a file name such as plot.png")
        if fmt not in _FORMATS:
            raise InvalidArgumentError(f"cannot write a figure as {str(path)!r}: use one of .{', .'.join(_FORMATS)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight", format=fmt)
    finally:
        _pyplot().close(fig)
    return path


def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | os.PathLike[str], *,
                   title: str = "") -> Path:
    """Confusion matrix as a heat map (rows: true class, columns: predicted), counts written in the cells."""
    plt = _pyplot()
    import numpy as np

    cm = np.asarray(confusion)
    n = len(classes)
    size = max(5.0, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="images")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "Confusion matrix")
    if n <= 20:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > threshold else "black")
    return save_figure(fig, path)


def plot_reliability(bins: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Reliability diagram from ``zoo.calibration.reliability_bins``: accuracy per confidence bin against the
    diagonal of perfect calibration (top), and how many images fall in each bin (bottom)."""
    plt = _pyplot()
    lower = [b["lower"] for b in bins]
    width = [b["upper"] - b["lower"] for b in bins]
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    ax.bar(lower, [b["accuracy"] / 100 for b in bins], width=width, align="edge", color="#4878a8",
           edgecolor="white", label="accuracy")
    filled = [b for b in bins if b["images"]]
    ax.bar([b["lower"] for b in filled], [abs(b["confidence"] - b["accuracy"]) / 100 for b in filled],
           width=[b["upper"] - b["lower"] for b in filled],
           bottom=[min(b["confidence"], b["accuracy"]) / 100 for b in filled], align="edge", fill=False,
           hatch="///", edgecolor="#c44e52", lw=0.8, label="gap to the mean confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or "Reliability diagram")
    counts.bar(lower, [b["images"] for b in bins], width=width, align="edge", color="#888888", edgecolor="white")
    counts.set_yscale("symlog")
    counts.set_xlim(0, 1)
    counts.set_xlabel("confidence (top softmax probability)")
    counts.set_ylabel("images")
    return save_figure(fig, path)


def plot_corruption_heatmap(points: Sequence[dict[str, Any]], path: str | os.PathLike[str], *,
                            title: str = "") -> Path:
    """Top-1 per corruption (rows, in the order given) and severity (columns), each cell written in, with each
    row's mean in a last column (``zoo.robustness``'s points)."""
    plt = _pyplot()
    names = list(dict.fromkeys(p["corruption"] for p in points))
    levels = sorted({p["severity"] for p in points})
    top1 = {(p["corruption"], p["severity"]): p["top1"] for p in points}
    grid = [[top1[n, s] for s in levels] + [sum(top1[n, s] for s in levels) / len(levels)] for n in names]
    fig, ax = plt.subplots(figsize=(1.0 * len(levels) + 3.5, 0.38 * len(names) + 1.6))
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if value < 60 else "black")
    ax.set_xticks(range(len(levels) + 1), [str(s) for s in levels] + ["mean"])
    ax.set_yticks(range(len(names)), [n.replace("_", " ") for n in names])
    ax.set_xlabel("severity")
    ax.axvline(len(levels) - 0.5, color="white", lw=2)
    fig.colorbar(image, ax=ax, label="top-1 (%)")
    ax.set_title(title or "Top-1 under corruption", fontsize=9)
    return save_figure(fig, path)


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Training curves: loss (left) and top-1 accuracy (right), train vs test, per epoch."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = [r["epoch"] for r in history]
    tested = [r for r in history if "test_top1" in r]
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax_loss.plot([r["epoch"] for r in tested], [r["test_loss"] for r in tested], "s-", label="test")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.set_title("Loss")
    ax_acc.plot(epochs, [r["train_top1"] for r in history], "o-", label="train")
    ax_acc.plot([r["epoch"] for r in tested], [r["test_top1"] for r in tested], "s-", label="test")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("top-1 accuracy (%)")
    ax_acc.set_title("Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------------
# Looking inside models (zoo.studies.viz) and the landscape study (zoo.studies.analyze)

__all__ += ["plot_filters", "plot_feature_maps", "plot_bands"]


def _mosaic(tiles: Any, ncols: int, pad: int = 1) -> Any:
    """N x H x W (or N x H x W x 3) tiles in a grid, ``pad`` pixels of NaN (or white, for RGB) between them."""
    import numpy as np

    n, h, w = tiles.shape[:3]
    rows = -(-n // ncols)
    fill = 1.0 if tiles.ndim == 4 else np.nan
    out = np.full((rows * (h + pad) - pad, ncols * (w + pad) - pad, *tiles.shape[3:]), fill, dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, ncols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = tiles[i]
    return out


def _grid_axes(ax: Any, n: int, ncols: int, h: int, w: int, pad: int = 1, what: str = "filter") -> None:
    """Tick each column with its offset and each row with the index of its first tile."""
    rows = -(-n // ncols)
    ax.set_xticks([c * (w + pad) + (w - 1) / 2 for c in range(ncols)], [f"+{c}" for c in range(ncols)], fontsize=7)
    ax.set_yticks([r * (h + pad) + (h - 1) / 2 for r in range(rows)], [str(r * ncols) for r in range(rows)],
                  fontsize=7)
    ax.set_xlabel(f"{what} index = row label + column offset")
    ax.set_ylabel(f"first {what} of the row")
    ax.tick_params(length=0)


def plot_filters(weights: Any, path: str | os.PathLike[str], *, title: str = "", max_filters: int = 64) -> Path:
    """Filters (``out x in x kh x kw``) as an image grid.

    Three input channels: the RGB composite (each filter min-max scaled on its own) and one panel per
    channel on a shared symmetric colour scale (report 003, Figures 10-13). One channel: one panel. Any
    other number: the mean over the input channels. At most ``max_filters`` are shown.
    """
    import numpy as np

    plt = _pyplot()
    w = np.asarray(weights, dtype=np.float64)
    total = w.shape[0]
    w = w[:max_filters]
    n, c, kh, kw = w.shape
    ncols = int(np.ceil(np.sqrt(n)))
    if c == 3:
        panels = [("R", w[:, 0]), ("G", w[:, 1]), ("B", w[:, 2])]
        names = {"R": "red channel", "G": "green channel", "B": "blue channel"}
    elif c == 1:
        panels, names = [("W", w[:, 0])], {"W": "weights"}
    else:
        panels, names = [("M", w.mean(1))], {"M": f"mean over the {c} input channels"}
    limit = float(max(abs(w.min()), abs(w.max()))) or 1.0
    grid = (2, 2) if c == 3 else (1, 1)
    side = max(3.2, min(5.0, 0.09 * ncols * max(kw + 1, 8)))
    fig, axes = plt.subplots(*grid, figsize=(side * grid[1] + 1.4, side * grid[0] + 1.2), squeeze=False)
    axes = list(axes.ravel())
    if c == 3:
        ax = axes.pop(0)
        lo = w.min(axis=(1, 2, 3), keepdims=True)
        hi = w.max(axis=(1, 2, 3), keepdims=True)
        rgb = ((w - lo) / np.where(hi > lo, hi - lo, 1)).transpose(0, 2, 3, 1)
        ax.imshow(_mosaic(rgb, ncols), interpolation="nearest")
        ax.set_title("RGB composite (each filter scaled to [0, 1])", fontsize=10)
        _grid_axes(ax, n, ncols, kh, kw)
    im = None
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")
    for ax, (key, tiles) in zip(axes, panels):
        im = ax.imshow(_mosaic(tiles, ncols), cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(names[key], fontsize=10)
        _grid_axes(ax, n, ncols, kh, kw)
    fig.colorbar(im, ax=axes, fraction=0.046 if c != 3 else 0.035, pad=0.03, label="weight value")
    if n < total:
        title = f"{title}\nfirst {n} of {total} filters shown"
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def plot_feature_maps(maps: Any, image: Any, path: str | os.PathLike[str], *, title: str = "",
                      max_maps: int = 64) -> Path:
    """The input image (H x W x C uint8) next to a layer's output: C x H x W maps as a grid on one colour
    scale (report 003, Figures 8-9), or a bar per unit for a vector output."""
    import numpy as np

    plt = _pyplot()
    a = np.asarray(maps, dtype=np.float64)
    img = np.asarray(image)
    fig = plt.figure(figsize=(12, 6.2))
    gs = fig.add_gridspec(1, 2, width_ratios=(1, 2.6), wspace=0.25)
    ax_in = fig.add_subplot(gs[0])
    ax_in.imshow(img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None,
                 interpolation="nearest")
    ax_in.set_title(f"input, {img.shape[0]}x{img.shape[1]}", fontsize=10)
    ax_in.set_xlabel("x (pixel)")
    ax_in.set_ylabel("y (pixel)")
    ax = fig.add_subplot(gs[1])
    if a.ndim == 1:
        ax.bar(range(len(a)), a, color=["tab:blue" if v >= 0 else "tab:red" for v in a])
        ax.set_xlabel("unit")
        ax.set_ylabel("activation")
        ax.set_title(f"{len(a)} units", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    else:
        if a.ndim != 3:
            a = a.reshape(a.shape[0], -1, a.shape[-1])
        total = a.shape[0]
        a = a[:max_maps]
        n, h, w = a.shape
        ncols = int(np.ceil(np.sqrt(n)))
        cmap = plt.get_cmap("viridis").with_extremes(bad="white")
        im = ax.imshow(_mosaic(a, ncols), cmap=cmap, interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="activation (layer output)")
        shown = f"{n} of {total} channels" if n < total else f"{n} channels"
        ax.set_title(f"{shown}, {h}x{w} each, one colour scale", fontsize=10)
        _grid_axes(ax, n, ncols, h, w, what="channel")
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def plot_bands(panels: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, title: str = "",
               xlabel: str = "training step") -> Path:
    """One or more panels of min-max bands over runs, one band per series (the style of report 002's Figure 13).

    Each panel is ``{"title", "ylabel", "series": {label: (x, lo, hi)}, "logy": bool}``; NaN (a diverged
    run) leaves a gap.
    """
    import numpy as np

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes[0], panels):
        for i, (label, (x, lo, hi)) in enumerate(panel["series"].items()):
            colour = colours[i % len(colours)]
            x, lo, hi = (np.asarray(v, dtype=np.float64) for v in (x, lo, hi))
            ax.fill_between(x, lo, hi, color=colour, alpha=0.35, linewidth=0, label=label)
            ax.plot(x, lo, color=colour, linewidth=0.7)
            ax.plot(x, hi, color=colour, linewidth=0.7)
        if panel.get("logy"):
            ax.set_yscale("log")
        _label_panel(ax, panel, xlabel)
    return _finish_panels(fig, path, title)


def _label_panel(ax: Any, panel: dict[str, Any], xlabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(panel["ylabel"])
    ax.set_title(panel["title"], fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()


def _finish_panels(fig: Any, path: str | os.PathLike[str], title: str) -> Path:
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


__all__ += ["plot_lines"]


def plot_lines(panels: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, title: str = "",
               xlabel: str = "training step", sharey: bool = True) -> Path:
    """Panels of lines side by side (one y scale with ``sharey``): ``{"title", "ylabel", "lines": {label: (x, y)}}``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.4), sharey=sharey, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, (x, y) in panel["lines"].items():
            ax.plot(x, y, linewidth=1, label=label)
        _label_panel(ax, panel, xlabel)
    return _finish_panels(fig, path, title)


__all__ += ["plot_throughput"]


def plot_throughput(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Bar chart of images/s: one panel per model and device, batch sizes along x, one bar per backend
    (and thread count when several were run), labelled with the speed-up over eager fp32. A backend that
    stands for another setting (``auto``) is hatched, and the panel's title says what it stood for.

    ``rows``: ``zoo.benchmark.BenchRow.to_dict()`` rows; rows without numbers (no CUDA device, not
    installed, failed) are left out and listed under the panels.
    """
    plt = _pyplot()
    import numpy as np

    ok = [r for r in rows if r.get("status") == "ok" and r.get("images_per_s")]
    several_threads = len({r.get("threads") for r in ok}) > 1
    panels = list(dict.fromkeys((r["model"], r["device"]) for r in ok))

    def label(r: dict[str, Any]) -> str:
        return f"{r['backend']} @{r['threads']}t" if several_threads and r.get("threads") else r["backend"]

    labels_all = list(dict.fromkeys(label(r) for r in ok))
    cmap = plt.get_cmap("tab20")
    colours = {lab: cmap(i % 20) for i, lab in enumerate(labels_all)}
    fig, axes = plt.subplots(max(1, len(panels)), 1, figsize=(11, 3.4 * max(1, len(panels))), squeeze=False)
    for ax, (model, device) in zip(axes[:, 0], panels):
        sub = [r for r in ok if r["model"] == model and r["device"] == device]
        batches = sorted({r["batch_size"] for r in sub})
        labels = list(dict.fromkeys(label(r) for r in sub))
        width = 0.8 / max(1, len(labels))
        stood_for = sorted({f"{r['backend']} at batch {r['batch_size']} = {r['setting']}" for r in sub
                            if r["backend"] != r["setting"]})
        for i, lab in enumerate(labels):
            hits = [(j, r) for j, b in enumerate(batches) for r in sub if label(r) == lab and r["batch_size"] == b]
            xs = [j - 0.4 + width * (i + 0.5) for j, _ in hits]
            bars = ax.bar(xs, [r["images_per_s"] for _, r in hits], width, label=lab, color=colours[lab],
                          hatch="//" if any(r["backend"] != r["setting"] for _, r in hits) else None,
                          edgecolor="white", linewidth=0.3)
            for bar, (_, r) in zip(bars, hits):
                if r.get("speedup_vs_eager"):
                    ax.annotate(f"{r['speedup_vs_eager']:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                ha="center", va="bottom", fontsize=6, rotation=90, xytext=(0, 2),
                                textcoords="offset points")
        ax.set_xticks(np.arange(len(batches)), [f"batch {b}" for b in batches])
        ax.set_yscale("log")
        ax.margins(y=0.25)
        ax.set_ylabel("images/s (log)")
        ax.set_title(f"{model} on {device}" + (f"\n{'; '.join(stood_for)}" if stood_for else ""), fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    missing = sorted({f"{r['model']} {r['device']} {r['backend']}: {r['status']}"
                      for r in rows if r.get("status") != "ok"})
    if missing:
        shown = missing[:8] + ([f"... and {len(missing) - 8} more"] if len(missing) > 8 else [])
        fig.text(0.01, 0.0, "no numbers: " + "; ".join(shown), fontsize=7, va="top", wrap=True)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)
