"""How far a classifier's confidence can be trusted: the reliability table and the expected
calibration error (C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, "On Calibration of Modern
Neural Networks", ICML 2017). A prediction's confidence is the probability of the class it
predicts; the predictions are put into bins of equal width by confidence, and in a calibrated
model each bin's accuracy equals its mean confidence (of the predictions made with 0.9, nine in
ten are right).

    c = calibration(probs, truth)      # probs: (N, K) class probabilities, truth: (N,)
    c.ece, c.confidence, c.accuracy    # the error, the mean confidence, the accuracy
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BINS = 15  # as Guo et al. report it


@dataclass
class Calibration:
    """``ece``: each bin's gap between accuracy and mean confidence, weighted by its share of
    the predictions; ``confidence`` and ``accuracy``: over all predictions; ``bins``: each bin's
    ``low`` and ``high`` confidence (low excluded, high included), ``images``, and its mean
    ``confidence`` and ``accuracy`` (None where it holds no prediction)."""

    ece: float
    confidence: float
    accuracy: float
    bins: list[dict[str, Any]] = field(default_factory=list)


def calibration(probs: np.ndarray, truth: np.ndarray, bins: int = BINS) -> Calibration:
    """The calibration of predictions ``probs``: (N, K) class probabilities, against the true
    class numbers ``truth``: (N,)."""
    confidence = probs.max(axis=1)
    right = (probs.argmax(axis=1) == truth).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.digitize(confidence, edges[1:-1], right=True)  # bin i: (edges[i], edges[i + 1]]
    table, ece = [], 0.0
    for i in range(bins):
        inside = which == i
        n = int(inside.sum())
        mean_conf = float(confidence[inside].mean()) if n else None
        mean_acc = float(right[inside].mean()) if n else None
        if n:
            ece += n / len(confidence) * abs(mean_acc - mean_conf)
        table.append(
            dict(low=edges[i], high=edges[i + 1], images=n, confidence=mean_conf, accuracy=mean_acc)
        )
    return Calibration(float(ece), float(confidence.mean()), float(right.mean()), table)
