"""The CPU step (micro-batches over thread replicas) against the plain whole-batch step."""

import numpy as np
import pytest

from gpucnn import SGD, Adam, CrossEntropy, backend, presets
from gpucnn.steps import MicroBatchStep, make_step, replicate
from gpucnn.train import train_step


def _batch(rng, n=20):
    return rng.normal(size=(n, 1, 12, 12)), rng.integers(0, 3, size=n)


def _model():
    backend.set_seed(0)
    return presets.cnn((1, 12, 12), channels=(3, 4), hidden=(6,), n_outputs=3)


@pytest.mark.parametrize("threads,chunk", [(1, 3), (2, 4), (3, 32), (2, 7)])
def test_same_update_as_the_whole_batch(threads, chunk):
    rng = np.random.default_rng(0)
    x, y = _batch(rng)
    plain, split = _model(), _model()
    ref_loss, ref_hits = train_step(plain, CrossEntropy(), SGD(0.1), x, y)
    step = MicroBatchStep(split, CrossEntropy(), SGD(0.1), threads, chunk)
    loss, hits = step(x, y)
    step.close()
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-12)
    assert int(hits) == int(ref_hits)
    for (name, p, g), (_, q, h) in zip(plain.parameters(), split.parameters()):
        assert np.allclose(g, h, rtol=1e-10, atol=1e-13), name
        assert np.allclose(p, q, rtol=1e-10, atol=1e-13), name
    assert not np.allclose(plain.state_dict()["0.W"], _model().state_dict()["0.W"])


def test_replicas_share_parameters_but_not_gradients():
    model = _model()
    twin = replicate(model)
    model.layers[0].params["W"][...] += 1  # an optimiser's in-place update
    assert np.array_equal(twin.layers[0].params["W"], model.layers[0].params["W"])
    assert twin.layers[0].grads["W"] is not model.layers[0].grads["W"]


def test_repeatable_with_dropout():
    rng = np.random.default_rng(1)
    x, y = _batch(rng, 32)
    results = []
    for _ in range(2):
        backend.set_seed(4)
        model = presets.cnn((1, 12, 12), channels=(3,), hidden=(8,), dropout=0.5, n_outputs=3)
        step = make_step(model, CrossEntropy(), Adam(1e-2), threads=2, chunk=8)
        for _ in range(3):
            step(x, y)
        step.close()
        results.append(model.state_dict())
    for key in results[0]:
        assert np.array_equal(results[0][key], results[1][key]), key
