"""Diagnostics against values computed by hand on a tiny model."""

import csv

import numpy as np
import pytest

from gpucnn import SGD, Activation, BatchNorm, BinaryCrossEntropy, Dense, Model
from gpucnn.app.diagnostics import Diagnostics
from gpucnn.steps import PlainStep

ACT = {
    "relu": lambda h: np.maximum(h, 0),
    "sigmoid": lambda h: 1 / (1 + np.exp(-h)),
    "tanh": np.tanh,
}
DACT = {
    "relu": lambda h, a: (h > 0).astype(float),
    "sigmoid": lambda h, a: a * (1 - a),
    "tanh": lambda h, a: 1 - a * a,
}
SATURATED = {
    "relu": None,
    "sigmoid": lambda a: np.mean((a < 0.01) | (a > 0.99)),
    "tanh": lambda a: np.mean(np.abs(a) > 0.99),
}


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_one_sample_matches_hand_computation(tmp_path, name):
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(scale=3, size=(3, 4)), rng.normal(size=4)
    w2, b2 = rng.normal(size=(4, 1)), rng.normal(size=1)
    x, y = rng.normal(size=(5, 3)), np.array([0, 1, 1, 0, 1])
    model = Model([Dense(3, 4), Activation(name), Dense(4, 1)]).build((3,))
    for layer, (w, b) in zip(model.layers[::2], ((w1, b1), (w2, b2))):
        layer.params["W"][...], layer.params["b"][...] = w, b

    # By hand: forward, loss gradient, backward, SGD update.
    h = x @ w1 + b1
    a = ACT[name](h)
    z = a @ w2 + b2
    dz = (1 / (1 + np.exp(-z)) - y[:, None]) / len(y)
    dw2, db2 = a.T @ dz, dz.sum(0)
    dh = (dz @ w2.T) * DACT[name](h, a)
    dw1, db1 = x.T @ dh, dh.sum(0)

    diag = Diagnostics(model, tmp_path)
    step = PlainStep(model, BinaryCrossEntropy(), SGD(0.1))
    diag.sample(step, x, y)
    diag.end_epoch(0)
    rows = {int(r["layer_index"]): r for r in csv.DictReader((tmp_path / "diagnostics.csv").open())}

    def close(row, key, expected):
        assert float(row[key]) == pytest.approx(expected, rel=1e-9), key

    close(rows[0], "grad_norm_W", np.linalg.norm(dw1))
    close(rows[0], "grad_norm_b", np.linalg.norm(db1))
    close(rows[2], "grad_norm_W", np.linalg.norm(dw2))
    close(rows[0], "update_ratio_W", 0.1 * np.linalg.norm(dw1) / np.linalg.norm(w1))
    close(rows[2], "update_ratio_b", 0.1 * np.linalg.norm(db2) / np.linalg.norm(b2))
    close(rows[1], "zero_fraction", np.mean(a == 0))
    if SATURATED[name] is None:
        assert rows[1]["saturated_fraction"] == ""
    else:
        assert 0 < SATURATED[name](a) < 1  # the weights above do saturate some units
        close(rows[1], "saturated_fraction", SATURATED[name](a))
    assert float(rows[0]["forward_ms"]) > 0 and float(rows[1]["backward_ms"]) > 0
    assert rows[0]["epoch"] == "1" and rows[1]["kind"] == name


def test_batch_norms_gamma_and_beta_are_its_weights_and_biases(tmp_path):
    rng = np.random.default_rng(1)
    model = Model([Dense(3, 4), BatchNorm(4), Activation("relu"), Dense(4, 1)]).build((3,))
    norm = model.layers[1]
    norm.params["gamma"][...] = rng.uniform(0.5, 2, size=4)
    norm.params["beta"][...] = rng.normal(size=4)
    x, y = rng.normal(size=(6, 3)), np.array([0, 1, 1, 0, 1, 0])
    diag = Diagnostics(model, tmp_path)
    step = PlainStep(model, BinaryCrossEntropy(), SGD(0.1))
    gamma, beta = norm.params["gamma"].copy(), norm.params["beta"].copy()
    diag.sample(step, x, y)
    diag.end_epoch(0)
    row = {int(r["layer_index"]): r for r in csv.DictReader((tmp_path / "diagnostics.csv").open())}[
        1
    ]
    assert float(row["grad_norm_W"]) == pytest.approx(np.linalg.norm(norm.grads["gamma"]))
    assert float(row["grad_norm_b"]) == pytest.approx(np.linalg.norm(norm.grads["beta"]))
    moved = np.linalg.norm(norm.params["beta"] - beta) / np.linalg.norm(beta)
    assert float(row["update_ratio_b"]) == pytest.approx(moved)
    assert float(row["update_ratio_W"]) > 0 and not np.array_equal(norm.params["gamma"], gamma)
