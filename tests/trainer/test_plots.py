"""Plots: valid PNG files of the expected size, written atomically, no figure left open."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from trainer.evaluation.plots import plot_alignment, plot_gate, plot_mels

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Return (width, height) from a PNG's IHDR chunk, failing if the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    assert data[-8:-4] == b"IEND"  # complete file
    return struct.unpack(">II", data[16:24])


def test_alignment_plot(tmp_path: Path) -> None:
    att = torch.softmax(torch.randn(40, 12), dim=1)
    path = plot_alignment(att, tmp_path / "plots" / "alignment.png", title="step 100")
    assert path == tmp_path / "plots" / "alignment.png"
    assert png_size(path) == (600, 400)
    assert path.stat().st_size > 5000
    assert plt.get_fignums() == []
    assert [p.name for p in path.parent.iterdir()] == ["alignment.png"]  # no temp file left behind


def test_mel_plots_with_and_without_target(tmp_path: Path) -> None:
    predicted = torch.randn(80, 60)
    one = plot_mels(None, predicted, tmp_path / "one.png")
    two = plot_mels(predicted + 1.0, predicted, tmp_path / "two.png", title="val")
    assert png_size(one)[1] == 250 and png_size(two)[1] == 500  # one panel vs two
    assert one.stat().st_size > 5000 and two.stat().st_size > one.stat().st_size
    assert plt.get_fignums() == []


def test_gate_plot_fixed_and_adaptive_threshold(tmp_path: Path) -> None:
    logits = torch.linspace(-6, 6, 50)
    target = torch.zeros(50)
    target[-1] = 1.0
    fixed = plot_gate(logits, target, 0.5, tmp_path / "fixed.png")
    adaptive = plot_gate(logits, None, torch.linspace(0.3, 0.8, 50), tmp_path / "adaptive.png", title="gate")
    for path in (fixed, adaptive):
        assert png_size(path) == (800, 250) and path.stat().st_size > 5000
    assert fixed.read_bytes() != adaptive.read_bytes()
    assert plt.get_fignums() == []


def test_bad_shapes_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2-D"):
        plot_alignment(torch.rand(3, 4, 5), tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()
    plot_alignment(torch.rand(1, 4, 5), tmp_path / "batch_of_one.png")  # a batch of one is fine
