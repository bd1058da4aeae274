"""PNG plots of an alignment, mel spectrograms and the stop gate, for run folders and MLflow.

Figures are built with ``matplotlib.figure.Figure`` on an explicit Agg canvas, never
through ``pyplot``: no global figure registry to leak into, no GUI backend picked from
the environment, and safe from worker threads. Each file is rendered to bytes first and
written atomically, so a dashboard never shows half a PNG.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from trainer.fileio import atomic_write_bytes

__all__ = ["plot_alignment", "plot_mels", "plot_gate"]

DPI = 100


def _as_2d(values: Tensor, name: str) -> Tensor:
    values = torch.as_tensor(values).detach().float().cpu()
    while values.dim() > 2 and values.shape[0] == 1:
        values = values[0]  # a batch of one
    if values.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D tensor, got shape {tuple(values.shape)}")
    return values


def _as_1d(values: Tensor, name: str) -> Tensor:
    values = torch.as_tensor(values).detach().float().cpu()
    if values.dim() != 1:
        values = values.squeeze()
    if values.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D tensor, got shape {tuple(values.shape)}")
    return values


def _save(figure: Figure, path: str | Path) -> Path:
    """Render ``figure`` to PNG bytes, write them to ``path`` atomically, and return the path."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_alignment(att: Tensor, path: str | Path, title: str | None = None) -> Path:
    """Write the attention ``att`` (T_out decoder steps, T_in tokens) as a PNG heat map; return ``path``.

    Decoder steps run left to right and tokens bottom to top, so a good alignment is a
    rising diagonal; the colour scale is fixed to [0, 1] (attention weights), so plots of
    different steps compare.
    """
    att = _as_2d(att, "att")
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(att.T.numpy(), aspect="auto", origin="lower", interpolation="none", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes)
    axes.set_xlabel("decoder step")
    axes.set_ylabel("encoder token")
    if title:
        axes.set_title(title)
    return _save(figure, path)


def plot_mels(target: Tensor | None, predicted: Tensor, path: str | Path, title: str | None = None) -> Path:
    """Write the predicted log-mel (80, F) above the target (80, F), if given, as a PNG; return ``path``.

    Both panels share one colour scale (the range of the values shown), so a level
    difference between prediction and target is visible.
    """
    predicted = _as_2d(predicted, "predicted")
    panels = [("predicted", predicted)]
    if target is not None:
        panels.append(("target", _as_2d(target, "target")))
    low = min(float(p.min()) for _, p in panels)
    high = max(float(p.max()) for _, p in panels)
    figure = Figure(figsize=(8, 2.5 * len(panels)), layout="constrained")
    axes_list = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    image = None
    for axes, (name, mel) in zip(axes_list, panels, strict=True):
        image = axes.imshow(mel.numpy(), aspect="auto", origin="lower", interpolation="none", vmin=low, vmax=high)
        axes.set_ylabel(f"{name}\nmel band")
    assert image is not None  # one panel at least
    axes_list[-1].set_xlabel("frame")
    figure.colorbar(image, ax=list(axes_list), label="log magnitude")
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_gate(gate_logits: Tensor, target: Tensor | None, threshold: float | Tensor, path: str | Path,
              title: str | None = None) -> Path:
    """Write the stop probability sigmoid(gate_logits) (S,) per decoder step as a PNG; return ``path``.

    ``threshold`` is a float or a (S,) tensor (the adaptive threshold) drawn as a dashed
    line; ``target`` (S,), if given, marks the true stop steps (where it is > 0.5).
    """
    probability = torch.sigmoid(_as_1d(gate_logits, "gate_logits"))
    steps = torch.arange(probability.numel())
    figure = Figure(figsize=(8, 2.5), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(steps.numpy(), probability.numpy(), label="sigmoid(gate)")
    if isinstance(threshold, Tensor) and threshold.numel() > 1:
        axes.plot(steps.numpy(), _as_1d(threshold, "threshold").numpy(), "--", label="threshold")
    else:
        axes.axhline(float(threshold), linestyle="--", color="tab:orange", label="threshold")
    if target is not None:
        stops = (_as_1d(target, "target") > 0.5).nonzero().flatten()
        for index, step in enumerate(stops.tolist()):
            axes.axvline(step, color="tab:green", linewidth=1, label="true stop" if index == 0 else None)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("decoder step")
    axes.set_ylabel("stop probability")
    axes.legend(loc="upper left")
    if title:
        axes.set_title(title)
    return _save(figure, path)
