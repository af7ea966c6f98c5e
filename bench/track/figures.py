"""Figures for cell runs and grid reports (matplotlib, no display needed).

Per cell: sigma per epoch, training loss and validation metric per epoch, prediction overlays.
Per grid: every cell's validation metric per epoch (the paper's Fig. 4) and sigma per epoch, per
face region for faces (the paper's Figs 6-7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

Curve = tuple[Sequence[float], Sequence[float]]  # (epochs, values)
MANY_LANDMARKS = 8  # above this, single landmarks are drawn faint and only their mean stands out
LINESTYLES = ("-", "--", ":", "-.")


def save(figure: Figure, path: Path) -> Path:
    """Writes `figure` as PNG. Figures are built without pyplot: no global state to release."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def spans_decades(values: Sequence[float]) -> bool:
    """Whether positive values span more than a factor 10: only then does a log axis help."""
    finite = [value for value in values if np.isfinite(value)]
    return bool(finite) and min(finite) > 0 and max(finite) > 10 * min(finite)


def log_scale(axis: Axes) -> None:
    """A log y axis labelled with plain numbers (4, 10, 60) rather than powers of ten."""
    axis.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.yaxis.set_major_formatter(plain)
    axis.yaxis.set_minor_formatter(plain)


def history_curve(history: Sequence[Mapping[str, float]], key: str) -> Curve:
    """(epochs, values) of `key` over per-epoch dicts (epoch numbers are 1-based positions)."""
    pairs = [(i + 1, row[key]) for i, row in enumerate(history) if key in row]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def cell_sigma(history: Sequence[Mapping[str, float]], *, title: str) -> Figure:
    """Sigma of every landmark per epoch (from `sigma/<landmark>` keys) and their mean."""
    names = [key[len("sigma/") :] for key in history[0] if key.startswith("sigma/")]
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    axis = figure.subplots()
    many = len(names) > MANY_LANDMARKS
    for name in names:
        epochs, values = history_curve(history, f"sigma/{name}")
        if many:
            axis.plot(epochs, values, color="0.7", linewidth=0.7)
        else:
            axis.plot(epochs, values, marker=".", label=name)
    if many or not names:
        epochs, values = history_curve(history, "sigma_mean")
        axis.plot(epochs, values, color="C3", linewidth=2.2, label="mean over landmarks")
    axis.set(
        xlabel="epoch",
        ylabel="sigma (px of the sigma_ref frame)",
        title=f"sigma per epoch\n{title}",
    )
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure


def cell_validation(history: Sequence[Mapping[str, float]], metric: str, *, title: str) -> Figure:
    """Training loss (left) and the validation metric (right) per epoch."""
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    loss_axis, val_axis = figure.subplots(1, 2)
    epochs, loss = history_curve(history, "train_loss")
    loss_axis.plot(epochs, loss, marker=".", color="C0")
    if spans_decades(loss):
        log_scale(loss_axis)
    loss_axis.set(xlabel="epoch", ylabel="train loss", title="training loss")
    epochs, values = history_curve(history, metric)
    val_axis.plot(epochs, values, marker=".", color="C1")
    val_axis.set(xlabel="epoch", ylabel=metric, title=f"{metric} (lower is better)")
    for axis in (loss_axis, val_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title)
    return figure


def prediction_overlay(overlay: Mapping[str, Any], *, title: str, columns: int = 4) -> Figure:
    """Test images with true points (green circles) and predictions (red crosses).

    overlay: "images" (n, C, H, W) in [0, 1]; "true" and "pred" points in image pixels,
    (n, K, 2) or (n, K, M, 2) with NaN for absent ones.
    """
    images = np.asarray(overlay["images"], dtype=np.float32)
    true = np.asarray(overlay["true"], dtype=np.float32)
    pred = np.asarray(overlay["pred"], dtype=np.float32)
    count = images.shape[0]
    columns = min(columns, count)
    rows = -(-count // columns)
    figure = Figure(figsize=(3.0 * columns, 3.0 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        image = images[index]
        if image.shape[0] == 1:
            axis.imshow(image[0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            axis.imshow(np.clip(image[:3].transpose(1, 2, 0), 0.0, 1.0))
        gt = true[index].reshape(-1, 2)
        guess = pred[index].reshape(-1, 2)
        axis.scatter(gt[:, 0], gt[:, 1], s=40, facecolors="none", edgecolors="lime", linewidths=1.3)
        axis.scatter(guess[:, 0], guess[:, 1], s=30, marker="x", color="red", linewidths=1.3)
    figure.suptitle(f"{title}\ngreen o: ground truth, red x: prediction")
    return figure


def grid_curves(
    curves: Mapping[tuple[str, str], Sequence[Curve]], *, ylabel: str, title: str
) -> Figure:
    """One line per (method, lr): the mean over its seeds, with the seeds' min-max range shaded
    when there are several; colour = method, line style = learning rate; legend on the right.

    curves: (method, lr label) -> one (epochs, values) curve per seed. A seed whose run stopped
    early (diverged) counts only in the epochs it has.
    """
    methods = list(dict.fromkeys(method for method, _ in curves))
    lrs = list(dict.fromkeys(lr for _, lr in curves))
    figure = Figure(figsize=(7.5, 4.6), layout="constrained")
    axis = figure.subplots()
    for (method, lr), seeds in curves.items():
        by_epoch: dict[float, list[float]] = {}
        for epochs, values in seeds:
            for epoch, value in zip(epochs, values, strict=True):
                by_epoch.setdefault(epoch, []).append(value)
        epochs = sorted(by_epoch)
        colour = f"C{methods.index(method) % 10}"
        label = f"{method} lr={lr}" + (f" ({len(seeds)} seeds)" if len(seeds) > 1 else "")
        axis.plot(
            epochs,
            [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs],
            color=colour,
            linestyle=LINESTYLES[lrs.index(lr) % len(LINESTYLES)],
            linewidth=1.6,
            label=label,
        )
        if len(seeds) > 1:
            low = [min(by_epoch[e]) for e in epochs]
            high = [max(by_epoch[e]) for e in epochs]
            axis.fill_between(epochs, low, high, color=colour, alpha=0.15, linewidth=0)
    values = [value for seeds in curves.values() for _, vals in seeds for value in vals]
    if spans_decades(values):
        log_scale(axis)
    axis.set(xlabel="epoch", ylabel=ylabel, title=title)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return figure


def region_sigma(curves: Mapping[str, Curve], *, title: str) -> Figure:
    """Mean sigma per landmark group (face region) per epoch, one line per region."""
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    axis = figure.subplots()
    for index, (region, (epochs, values)) in enumerate(curves.items()):
        axis.plot(epochs, values, color=f"C{index % 10}", linewidth=1.8, label=region)
    axis.set(xlabel="epoch", ylabel="mean sigma (px of the sigma_ref frame)", title=title)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure


def landmark_bars(
    landmarks: Sequence[str], values: Mapping[str, Sequence[float]], *, ylabel: str, title: str
) -> Figure:
    """Grouped bars: one group per landmark, one bar per setting (`values`: label -> one value
    per landmark, NaN drawn as no bar)."""
    figure = Figure(figsize=(max(6.0, 0.6 * len(landmarks) * max(1, len(values)) ** 0.5), 4.0))
    axis = figure.subplots()
    width = 0.8 / max(1, len(values))
    positions = np.arange(len(landmarks))
    for index, (label, heights) in enumerate(values.items()):
        axis.bar(positions + (index - (len(values) - 1) / 2) * width, heights, width, label=label)
    axis.set_xticks(positions, list(landmarks), rotation=45 if len(landmarks) > 6 else 0)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(fontsize="small", ncols=2)
    figure.tight_layout()
    return figure
