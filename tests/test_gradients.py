"""float64 numerical gradient checks of every layer and loss (NumPy)."""

import numpy as np
import pytest

from gpucnn import (
    Activation,
    AvgPool,
    BatchNorm,
    BinaryCrossEntropy,
    ConfigError,
    Conv,
    CrossEntropy,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    MaxPool,
    Model,
    ShapeError,
    backend,
    gradcheck,
    presets,
)
from gpucnn.gradcheck import numerical_grad, relative_error

from .helpers import check_layer_gradients, distinct

TOL = 1e-6

# (filter, stride, pad, H, W): filter sizes 1-7, strides 1-3, padding 0-3, odd and even sizes,
# and sizes where the last window does not fit (floored away).
CONV_CASES = [
    (1, 1, 0, 5, 5),
    (1, 2, 1, 6, 7),
    (2, 1, 0, 5, 6),
    (2, 2, 1, 7, 7),
    (3, 1, 1, 7, 9),
    (3, 2, 0, 9, 8),
    (3, 3, 2, 8, 7),
    (4, 1, 3, 5, 5),
    (4, 3, 1, 10, 9),
    (5, 1, 2, 7, 7),
    (5, 2, 0, 11, 9),
    (6, 3, 3, 7, 8),
    (7, 1, 3, 7, 7),
    (7, 2, 1, 9, 11),
]


@pytest.mark.parametrize("k,stride,pad,H,W", CONV_CASES)
def test_conv_gradients(kernel_set, k, stride, pad, H, W):
    rng = np.random.default_rng(k * 100 + stride * 10 + pad)
    layer = Conv(k, 2, 3, pad=pad, stride=stride)
    layer.params["b"][...] = rng.normal(size=3)
    x = rng.normal(size=(2, 2, H, W))
    assert check_layer_gradients(layer, x, rng) < TOL


# (pool, stride, H, W): non-overlapping, overlapping (stride < pool), sizes that do not divide.
POOL_CASES = [
    (2, None, 6, 6),
    (2, None, 7, 5),
    (2, 1, 5, 6),
    (3, None, 9, 7),
    (3, 2, 7, 8),
    (3, 1, 5, 5),
]


@pytest.mark.parametrize("k,stride,H,W", POOL_CASES)
def test_maxpool_gradients(kernel_set, k, stride, H, W):
    rng = np.random.default_rng(k * 10 + (stride or 0))
    x = distinct(rng, (2, 3, H, W))
    assert check_layer_gradients(MaxPool(k, stride), x, rng) < TOL


@pytest.mark.parametrize("k,stride,H,W", POOL_CASES)
def test_avgpool_gradients(kernel_set, k, stride, H, W):
    rng = np.random.default_rng(k * 10 + (stride or 0))
    assert check_layer_gradients(AvgPool(k, stride), rng.normal(size=(2, 3, H, W)), rng) < TOL


def test_global_avgpool_gradients():
    rng = np.random.default_rng(7)
    assert check_layer_gradients(GlobalAvgPool(), rng.normal(size=(3, 4, 5, 6)), rng) < TOL


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (7, 5)])
def test_batch_norm_gradients(kernel_set, shape, training):
    rng = np.random.default_rng(len(shape))
    layer = BatchNorm(shape[1])
    layer.params["gamma"][...] = rng.uniform(0.5, 2, size=shape[1])
    layer.params["beta"][...] = rng.normal(size=shape[1])
    layer.buffers["running_mean"][...] = rng.normal(size=shape[1])
    layer.buffers["running_var"][...] = rng.uniform(0.5, 2, size=shape[1])
    x = rng.normal(loc=1.5, scale=2, size=shape)
    assert check_layer_gradients(layer, x, rng, training=training) < TOL


def test_dense_gradients():
    rng = np.random.default_rng(1)
    layer = Dense(7, 4)
    layer.params["b"][...] = rng.normal(size=4)
    assert check_layer_gradients(layer, rng.normal(size=(5, 7)), rng) < TOL


@pytest.mark.parametrize("name", Activation.NAMES)
def test_activation_gradients(name):
    rng = np.random.default_rng(2)
    x = distinct(rng, (4, 6), scale=3.0)
    assert check_layer_gradients(Activation(name), x, rng) < TOL


def test_flatten_gradients():
    rng = np.random.default_rng(3)
    assert check_layer_gradients(Flatten(), rng.normal(size=(2, 3, 4, 5)), rng) < TOL


def test_dropout_gradients_with_a_fixed_mask():
    rng = np.random.default_rng(4)
    layer = Dropout(0.3)
    x = rng.normal(size=(6, 20))
    err = check_layer_gradients(layer, x, rng, training=True, before=lambda: backend.set_seed(9))
    assert err < TOL


def test_dropout_zeroes_about_rate_of_the_units_and_scales_the_rest_up():
    """Inverted dropout: each unit is dropped with probability 0.25 and the kept ones are
    divided by 0.75, so the expected output is the input; backward uses the same mask."""
    backend.set_seed(5)
    layer, x = Dropout(0.25), np.random.default_rng(5).uniform(1, 2, size=(200, 100))
    y = layer.forward(x, training=True)
    kept = y != 0
    assert abs(1 - kept.mean() - 0.25) < 0.01  # 20,000 units: sd 0.003
    assert np.allclose(y[kept], x[kept] / 0.75)
    dy = np.random.default_rng(6).normal(size=x.shape)
    assert np.allclose(layer.backward(dy), np.where(kept, dy / 0.75, 0))
    assert layer.forward(x) is x and layer.backward(dy) is dy  # evaluation: the identity


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("loss_cls,shape", [(BinaryCrossEntropy, (8, 1)), (CrossEntropy, (8, 5))])
def test_loss_gradients(loss_cls, shape, smoothing):
    rng = np.random.default_rng(5)
    logits = rng.normal(scale=3, size=shape)
    y = rng.integers(0, max(shape[1], 2), size=shape[0])
    loss = loss_cls(label_smoothing=smoothing)
    loss.forward(logits, y)
    analytic = loss.backward()
    numeric = numerical_grad(lambda: float(loss.forward(logits, y)), logits)
    assert relative_error(analytic, numeric) < TOL


def test_whole_model_gradients_through_the_fused_head(kernel_set):
    """Chaining, the logits path and the loss together: a small CNN ending in softmax."""
    rng = np.random.default_rng(6)
    model = presets.cnn(
        (2, 9, 9),
        channels=(3, 4),
        filter_size=[3, 2],
        pool_size=[2, 3],
        pool_stride=[1, None],
        padding=[1, 0],
        hidden=(5,),
        n_outputs=3,
    )
    for _, p, _ in model.parameters():
        p[...] = rng.normal(scale=0.5, size=p.shape)
    x, y = rng.normal(size=(3, 2, 9, 9)), np.array([0, 2, 1])
    errors = gradcheck.model_errors(model, CrossEntropy(), x, y)
    assert list(errors) == [name for name, _, _ in model.parameters()]
    assert max(errors.values()) < TOL, errors


class _Scale(Layer):
    """A layer of one's own, as the README's gradcheck example: y = x * s per channel."""

    def __init__(self, channels, wrong=False):
        super().__init__()
        self.wrong = wrong
        self.params = {"s": np.linspace(0.5, 2, channels).astype(backend.dtype())}
        self.grads = {"s": np.zeros_like(self.params["s"])}

    def forward(self, x, training=False):
        self._x = x
        return x * self.params["s"][None, :, None, None]

    def backward(self, dy):
        # The wrong one forgets to sum over the batch: only the first image's gradient.
        summed = (dy * self._x)[:1] if self.wrong else dy * self._x
        self.grads["s"][...] = summed.sum(axis=(0, 2, 3))
        return dy * self.params["s"][None, :, None, None]


def test_gradcheck_passes_a_right_layer_and_catches_a_wrong_one():
    x = np.random.default_rng(8).normal(size=(3, 2, 4, 5))
    right = gradcheck.errors(_Scale(2), x)
    assert right.keys() == {"x", "s"} and max(right.values()) < TOL
    wrong = gradcheck.errors(_Scale(2, wrong=True), x)
    assert wrong["x"] < TOL and wrong["s"] > 0.1  # the input gradient is right, s's is not
    model = Model([_Scale(2, wrong=True), Flatten(), Dense(40, 3)]).build((2, 4, 5))
    in_a_model = gradcheck.model_errors(model, CrossEntropy(), x, np.array([0, 2, 1]))
    assert in_a_model["2.W"] < TOL and in_a_model["0.s"] > 0.1  # the wrong one, named


class _ScaleBackwardWrong(_Scale):
    """backward sums dx over the batch (a shape error), or forgets grads (``no_grads``)."""

    def __init__(self, channels, no_grads=False):
        super().__init__(channels)
        if no_grads:
            self.grads = {}

    def backward(self, dy):
        if not self.grads:
            return dy * self.params["s"][None, :, None, None]
        self.grads["s"][...] = (dy * self._x).sum(axis=(0, 2, 3))
        return (dy * self.params["s"][None, :, None, None]).sum(axis=0)


def test_gradcheck_names_a_gradient_of_the_wrong_shape_or_one_missing():
    x = np.random.default_rng(9).normal(size=(3, 2, 4, 5))
    with pytest.raises(ShapeError, match=r"backward returned a gradient of shape \(2, 4, 5\), "
                       r"but x is \(3, 2, 4, 5\)"):  # fmt: skip
        gradcheck.errors(_ScaleBackwardWrong(2), x)
    with pytest.raises(ConfigError, match=r"grads has no 's': give it an array shaped like"):
        gradcheck.errors(_ScaleBackwardWrong(2, no_grads=True), x)


def test_gradcheck_needs_float64_and_refuses_all_zero_comparisons():
    backend.use("numpy", dtype="float32")
    with pytest.raises(ConfigError, match=r"float64 NumPy arrays, but s is not.*backend.use"):
        gradcheck.errors(_Scale(2), np.ones((1, 2, 3, 3)))
    with pytest.raises(ConfigError, match="but x is not"):
        gradcheck.errors(Flatten(), np.ones((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="all zeros: comparing them proves nothing"):
        gradcheck.relative_error(np.zeros(3), np.zeros(3))
