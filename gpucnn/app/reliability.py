"""evaluate's calibration: calibration.png (the reliability diagram) and the line it prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..calibration import Calibration
from .results import pyplot, save_figure


def text(c: dict[str, Any]) -> str:
    """The printed line, from evaluation.json's ``calibration``: mean confidence against
    accuracy, which way they differ, and the expected calibration error."""
    gap = c["confidence"] - c["accuracy"]
    way = "overconfident" if gap > 0 else "underconfident"
    return (
        f"calibration: mean confidence {c['confidence']:.3f} against accuracy {c['accuracy']:.3f} "
        f"({way} by {abs(gap) * 100:.1f} points); expected calibration error {c['ece']:.3f} over "
        f"{len(c['bins'])} bins: calibration.png"
    )


def plot(path: Path, c: Calibration) -> None:
    """Accuracy against confidence, bin by bin, beside the diagonal a calibrated model follows,
    and below it each bin's share of the predictions."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    filled = [b for b in c.bins if b["images"]]
    width = c.bins[0]["high"] - c.bins[0]["low"]
    lows = [b["low"] for b in filled]
    top.bar(lows, [b["accuracy"] for b in filled], width=width, align="edge",
            edgecolor="C0", alpha=0.7, label="accuracy of the bin's predictions")  # fmt: skip
    top.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated: accuracy = confidence")
    top.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "C3o", ms=4,
             label="at the bin's mean confidence")  # fmt: skip
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(f"Calibration: expected calibration error {c.ece:.3f}")
    top.legend(fontsize=8, loc="upper left")
    total = sum(b["images"] for b in c.bins)
    bottom.bar(lows, [b["images"] / total for b in filled], width=width, align="edge", color="0.6")
    bottom.set_ylabel("share")
    bottom.set_xlabel("confidence (the predicted class's probability)")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    save_figure(fig, path)
