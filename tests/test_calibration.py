"""Calibration: the reliability table and the expected calibration error against their
definitions, on made-up predictions whose calibration is known."""

import numpy as np
import pytest

from gpucnn.app import reliability
from gpucnn.calibration import calibration


def two_classes(confidence, right):
    """Probabilities that predict class 0 with ``confidence``, and the true classes that make
    each prediction ``right`` or not."""
    probs = np.stack([confidence, 1 - confidence], axis=1)
    return probs, np.where(right, 0, 1)


def test_predictions_right_as_often_as_they_are_confident_are_calibrated():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 200_000)
    c = calibration(*two_classes(confidence, rng.random(200_000) < confidence))
    assert c.ece < 0.005 and c.confidence == pytest.approx(c.accuracy, abs=0.005)


def test_constant_confidence_right_half_the_time_is_off_by_the_difference():
    probs, truth = two_classes(np.full(1000, 0.99), np.arange(1000) % 2 == 0)
    c = calibration(probs, truth)
    assert c.ece == pytest.approx(0.49) and c.confidence == pytest.approx(0.99)
    assert c.accuracy == 0.5
    (full,) = [b for b in c.bins if b["images"]]
    assert full["images"] == 1000 and full["low"] < 0.99 <= full["high"]
    assert all(b["confidence"] is None and b["accuracy"] is None for b in c.bins if b is not full)


def test_each_bin_takes_its_upper_edge_and_the_gaps_are_weighted_by_its_share():
    # three classes: confidences 1/3 (its own bin's top edge is 1/3 with 3 bins), 0.5 and 1.0
    probs = np.array([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.3, 0.2], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    truth = np.array([0, 1, 0, 1])  # right, wrong, right, right
    c = calibration(probs, truth, bins=3)
    assert [b["images"] for b in c.bins] == [1, 1, 2]
    assert [b["accuracy"] for b in c.bins] == [1.0, 0.0, 1.0]
    # gaps |1 - 1/3|, |0 - 0.5|, |1 - 1|, each a quarter of the predictions
    assert c.ece == pytest.approx((2 / 3 + 0.5 + 0.0) / 4)


def test_the_printed_line_says_which_way_the_model_errs():
    c = {"confidence": 0.881, "accuracy": 0.849, "ece": 0.032, "bins": [{}] * 15}
    assert reliability.text(c) == (
        "calibration: mean confidence 0.881 against accuracy 0.849 (overconfident by 3.2 "
        "points); expected calibration error 0.032 over 15 bins: calibration.png"
    )
    assert "(underconfident by 1.0 points)" in reliability.text(c | {"confidence": 0.839})
