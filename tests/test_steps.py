"""The CPU step (micro-batches over thread replicas) against the plain whole-batch step."""

import threading

import numpy as np
import pytest

from gpucnn import SGD, Adam, ConfigError, CrossEntropy, Dense, backend, presets
from gpucnn.steps import MicroBatchStep, PlainStep, make_step, micro_batched, replicate
from gpucnn.train import train_step


def _batch(rng, n=20):
    return rng.normal(size=(n, 1, 12, 12)), rng.integers(0, 3, size=n)


def _model():
    backend.set_seed(0)
    return presets.cnn((1, 12, 12), channels=(3, 4), hidden=(6,), n_outputs=3)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("threads,chunk", [(1, 3), (2, 4), (3, 32), (2, 7)])
def test_same_update_as_the_whole_batch(threads, chunk, smoothing):
    """The same step in micro-batches, with the loss given (each thread a copy of it)."""
    rng = np.random.default_rng(0)
    x, y = _batch(rng)
    plain, split = _model(), _model()
    loss = CrossEntropy(label_smoothing=smoothing)
    ref_loss, ref_hits = train_step(plain, loss, SGD(0.1), x, y)
    step = MicroBatchStep(split, loss, SGD(0.1), threads, chunk)
    loss, hits = step(x, y)
    step.close()
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-12)
    assert int(hits) == int(ref_hits)
    for (name, p, g), (_, q, h) in zip(plain.parameters(), split.parameters()):
        assert np.allclose(g, h, rtol=1e-10, atol=1e-13), name
        assert np.allclose(p, q, rtol=1e-10, atol=1e-13), name
    assert not np.allclose(plain.state_dict()["0.W"], _model().state_dict()["0.W"])


@pytest.mark.parametrize("threads,n", [(2, 20), (3, 7), (2, 3), (4, 9)])
@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_batch_norm_on_shares_of_the_batch_is_the_whole_batchs(kind, threads, n):
    """Each thread trains its share, and BatchNorm sums its statistics over the shares: the
    same update, running statistics and loss as the whole batch at once."""

    def model():
        backend.set_seed(0)
        if kind == "cnn":
            return presets.cnn((1, 12, 12), channels=(3, 4), hidden=(6,), n_outputs=3,
                               batch_norm=True)  # fmt: skip
        return presets.mlp((144, 8, 3), input_shape=(1, 12, 12), batch_norm=True)

    rng = np.random.default_rng(n)
    x, y = _batch(rng, n)
    plain, shared = model(), model()
    # SGD: the bias before a BatchNorm has a gradient of rounding noise, which Adam's
    # normalisation would blow up into steps of the learning rate's size.
    step = MicroBatchStep(shared, CrossEntropy(), SGD(0.1), threads, None)  # as make_step's
    opt = SGD(0.1)
    for _ in range(2):
        ref_loss, ref_hits = train_step(plain, CrossEntropy(), opt, x, y)
        loss, hits = step(x, y)
        assert float(loss) == pytest.approx(float(ref_loss), rel=1e-12)
        assert int(hits) == int(ref_hits)
    step.close()
    for name, want in plain.state_dict().items():  # parameters and running statistics
        assert np.allclose(shared.state_dict()[name], want, rtol=1e-10, atol=1e-13), name


def test_a_share_that_fails_frees_the_others_and_its_error_is_raised():
    backend.set_seed(0)
    model = presets.cnn((1, 12, 12), channels=(2,), hidden=(8,), n_outputs=3, batch_norm=True)
    step = make_step(model, CrossEntropy(), SGD(0.1), threads=3)
    broken = [layer for layer in step.replicas[1].layers if isinstance(layer, Dense)][-1]

    def fail(x, training=False):
        raise ValueError("replica 1 failed")

    broken.forward = fail
    x, y = _batch(np.random.default_rng(2), 12)
    raised = []

    def run():
        try:
            step(x, y)
        except Exception as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the other shares still wait in BatchNorm's backward"
    assert [str(e) for e in raised] == ["replica 1 failed"] and isinstance(raised[0], ValueError)
    step.close()


def test_micro_batches_for_convolutions_whole_batches_for_an_mlp():
    """Micro-batches keep a convolution's activations in cache; an MLP's step is a few matrix
    products, faster on whole batches with BLAS's threads."""
    with make_step(_model(), CrossEntropy(), SGD(0.1), threads=2) as step:
        assert isinstance(step, MicroBatchStep) and step.chunk == 32
    mlp = presets.mlp((144, 8, 3), input_shape=(1, 12, 12), dropout=0.5)
    assert isinstance(make_step(mlp, CrossEntropy(), SGD(0.1), threads=2), PlainStep)
    assert micro_batched(_model(), 32) and not micro_batched(mlp, 32)


@pytest.mark.parametrize(
    "settings,match",
    [
        ({"threads": 0}, r"threads must be a positive integer, or None for every core, got 0"),
        ({"threads": 2.0}, "threads must be a positive integer.*got 2.0"),
        ({"chunk": -5}, r"chunk must be an integer >= 0 \(0: whole batches\), got -5"),
        ({"chunk": 2.5}, "chunk must be an integer >= 0.*got 2.5"),
    ],
)
def test_thread_and_chunk_counts_that_cannot_work_are_refused(settings, match):
    with pytest.raises(ConfigError, match=match):
        make_step(_model(), CrossEntropy(), SGD(0.1), **settings)


def test_a_step_in_a_with_block_releases_its_threads():
    x, y = _batch(np.random.default_rng(3))
    with make_step(_model(), CrossEntropy(), SGD(0.1), threads=2) as step:
        step(x, y)
        assert not step.pool._shutdown
    assert step.pool._shutdown
    with pytest.raises(RuntimeError, match="this step was closed.*make another with make_step"):
        step(x, y)


def test_replicas_share_parameters_but_not_gradients():
    model = _model()
    twin = replicate(model)
    model.layers[0].params["W"][...] += 1  # an optimiser's in-place update
    assert np.array_equal(twin.layers[0].params["W"], model.layers[0].params["W"])
    assert twin.layers[0].grads["W"] is not model.layers[0].grads["W"]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_repeatable_with_dropout(batch_norm):
    rng = np.random.default_rng(1)
    x, y = _batch(rng, 32)
    results = []
    for _ in range(2):
        backend.set_seed(4)
        model = presets.cnn((1, 12, 12), channels=(3,), hidden=(8,), dropout=0.5, n_outputs=3,
                            batch_norm=batch_norm)  # fmt: skip
        step = make_step(model, CrossEntropy(), Adam(1e-2), threads=2, chunk=8)
        for _ in range(3):
            step(x, y)
        step.close()
        results.append(model.state_dict())
    for key in results[0]:
        assert np.array_equal(results[0][key], results[1][key]), key


@pytest.mark.parametrize("threads,chunk", [(0, 0), (2, 4)])  # 0: the plain step
def test_frozen_layers_keep_their_weights_while_the_rest_learns_as_it_would(threads, chunk):
    """Freezing the first layers changes nothing for the others' gradients and updates, and
    no gradient is computed below the first layer that learns."""
    rng = np.random.default_rng(3)
    x, y = _batch(rng)
    whole, frozen = _model(), _model()
    start = frozen.state_dict()
    assert [repr(layer) for layer in frozen.freeze(2)] == [repr(frozen.layers[i]) for i in (0, 3)]
    for model in (whole, frozen):
        sgd = SGD(0.1, weight_decay=0.1)  # which moves a parameter even where its gradient is 0
        if threads:
            step = MicroBatchStep(model, CrossEntropy(), sgd, threads, chunk)
        else:
            step = PlainStep(model, CrossEntropy(), sgd)
        step(x, y)
        step.close()
    learning = {name for name, _, _ in frozen.trainable_parameters()}
    assert learning and learning < frozen.state_dict().keys()
    ours, theirs = frozen.state_dict(), whole.state_dict()
    for name, _, grad in frozen.parameters():
        if name in learning:
            assert np.array_equal(ours[name], theirs[name]), name
        else:
            assert np.array_equal(ours[name], start[name]), name
            assert not grad.any(), name  # never computed
            assert not np.array_equal(theirs[name], start[name]), name


def test_freezing_leaves_a_layer_to_learn():
    model = _model()
    for count in (-1, 4, 1.5):
        with pytest.raises(ConfigError, match=r"freeze takes a count of layers with parameters "
                                              r"from 0 to 3 \(this model has 4: Conv"):  # fmt: skip
            model.freeze(count)
    model.freeze(3)
    model.freeze(0)
    assert all(layer.trainable for layer in model.layers)
