"""The static step (gpucnn.static_step) against the layers' own training step, on NumPy with the
host kernel set: the same update for every layer kind, head, optimiser and shape; dropout masks
that depend only on (seed, step, layer); exact continuation after a restart."""

import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from gpucnn import (
    SGD,
    Activation,
    Adam,
    AdamW,
    AvgPool,
    BatchNorm,
    BinaryCrossEntropy,
    Conv,
    CrossEntropy,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    MaxPool,
    Model,
    Momentum,
    backend,
    presets,
)
from gpucnn.errors import ShapeError
from gpucnn.gradcheck import relative_error
from gpucnn.kernels import host
from gpucnn.model import NO_HOOKS
from gpucnn.static_step import StaticStep, products, unsupported
from gpucnn.train import train_step


def _conv_net(n_out, act="relu", k=3, stride=1, pad=1, pool=2, pool_stride=None, c_in=1):
    def make():
        m = Model()
        m.add(Conv(k, c_in, 4, pad=pad, stride=stride))
        m.add(Activation(act))
        m.add(MaxPool(pool, pool_stride))
        m.add(Conv(3, 4, 5, pad=0))
        m.add(Activation(act))
        m.add(Flatten())
        m.add(Dense(m.build((c_in, 13, 11)).output_shape[0], 6))
        m.add(Activation("tanh"))
        m.add(Dense(6, n_out))
        m.add(Activation("sigmoid" if n_out == 1 else "softmax"))
        return m.build((c_in, 13, 11))

    return make


MODELS = {
    "relu_k3": _conv_net(4),
    "sigmoid_k5_stride2": _conv_net(3, "sigmoid", k=5, stride=2, pad=2),
    "tanh_k1_overlapping_pool": _conv_net(4, "tanh", k=1, pad=0, pool=3, pool_stride=1),
    "binary_k7_pad3_stride3": _conv_net(1, k=7, stride=3, pad=3, pool=2, pool_stride=1),
    "three_channels": _conv_net(3, k=4, pad=2, c_in=3),
    "mlp": lambda: presets.mlp((143, 9, 7, 3), "relu", input_shape=(1, 13, 11)),
    # flattened channel by channel, (C, H, W), as the layers' Flatten does
    "mlp_two_channels": lambda: presets.mlp((286, 9, 3), "relu", input_shape=(2, 13, 11)),
    "pool_then_relu": lambda: Model(
        [Conv(3, 1, 3, pad=1), MaxPool(2), Activation("relu"), Flatten(), Dense(90, 2)]
    ).build((1, 13, 11)),
    # A pooled map and a tanh one averaged: the mean of a map that is not square, after an
    # activation fused into the Conv before it.
    "global_pool": lambda: presets.cnn(
        (1, 13, 11), (4, 5), hidden=(6,), activation="tanh", n_outputs=3, global_pool=True
    ),
    # Average pools of windows that tile the map and of windows that overlap (stride 1).
    "avg_pool": lambda: Model(
        [
            Conv(3, 1, 4, pad=1),
            Activation("relu"),
            AvgPool(2),
            Conv(3, 4, 5),
            Activation("tanh"),
            AvgPool(3, 1),
            Flatten(),
            Dense(10, 3),
        ]  # fmt: skip
    ).build((1, 13, 11)),
    # LeNet-5's blocks: unpadded convolutions, tanh and average pools, as presets.cnn builds them.
    "lenet_blocks": lambda: presets.cnn(
        (1, 13, 11),
        (4, 5),
        3,
        2,
        padding="valid",
        activation="tanh",
        hidden=(6,),
        n_outputs=3,
        pool="avg",
    ),  # fmt: skip
    # BatchNorm after each Conv and the hidden Dense, its activation fused into it.
    "batch_norm": lambda: presets.cnn(
        (1, 13, 11), (4, 5), hidden=(6,), n_outputs=3, batch_norm=True
    ),
    "batch_norm_sigmoid": lambda: presets.cnn(
        (1, 13, 11), (3,), hidden=(5,), activation="sigmoid", batch_norm=True
    ),
    "global_pool_unactivated": lambda: Model(
        [Conv(3, 1, 4, pad=1), MaxPool(2), Conv(3, 4, 5), GlobalAvgPool(), Dense(5, 1)]
    ).build((1, 13, 11)),
    # The input normalised by a BatchNorm that learns: the first operation with parameters
    "batch_norm_first": lambda: Model(
        [
            BatchNorm(1),
            Conv(3, 1, 3, pad=1),
            Activation("relu"),
            MaxPool(2),
            Flatten(),
            Dense(90, 3),
        ]
    ).build((1, 13, 11)),  # fmt: skip
}
OPTIMIZERS = {
    "sgd": lambda: SGD(0.05, weight_decay=0.01),
    "momentum": lambda: Momentum(0.02, 0.9, nesterov=True),
    "adam": lambda: Adam(1e-2, weight_decay=0.001),
    "adamw": lambda: AdamW(1e-2, weight_decay=0.1),
    # the gradients scaled down to a norm below theirs, then decayed
    "momentum_clipped": lambda: Momentum(0.02, 0.9, weight_decay=0.01, clip_norm=0.05),
    # a clip_norm above the gradients' norm: nothing is scaled (nor scaled up)
    "sgd_clip_not_reached": lambda: SGD(0.05, clip_norm=1e3),
}


# Layers that pass a constant shift of each input channel on as a constant shift of each
# output channel (a Conv too, where it pads nothing).
SHIFTS_THROUGH = (Flatten, Dense, MaxPool, AvgPool, GlobalAvgPool)


def rounding_only(model):
    """The names of the biases whose gradient is zero but for rounding: those whose layer's
    output reaches a BatchNorm through SHIFTS_THROUGH layers only, so that the BatchNorm takes
    out their every change."""
    out, layers = set(), model.layers
    for i, layer in enumerate(layers):
        for after in layers[i + 1 :] if layer.bias_names else []:
            if isinstance(after, BatchNorm):
                out.update(f"{i}.{name}" for name in layer.bias_names)
            unpadded = isinstance(after, Conv) and after.pad == 0
            if not (isinstance(after, SHIFTS_THROUGH) or unpadded):
                break
    return out


def hold_noise_at_zero(model):
    """Put the rounding_only biases back to zero (in place). Their updates follow the rounding
    noise of two sums (Adam turns it into steps of up to its learning rate), and the running
    means after them follow the biases: held at zero on both sides, those compare."""
    params = dict((name, p) for name, p, _ in model.parameters())
    for name in rounding_only(model):
        params[name][...] = 0


def _data(rng, model, n=10):
    x = rng.normal(size=(n, *model.input_shape))
    k = model.output_shape[0]
    return x, rng.integers(0, max(k, 2), size=n)


def _loss(model):
    return BinaryCrossEntropy() if model.output_shape[0] == 1 else CrossEntropy()


@pytest.mark.parametrize("frozen", [0, 1])
@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("key", MODELS)
def test_same_updates_as_the_layers(key, opt, frozen):
    """The static step updates as the layers' step does, for every model and optimiser, and
    with the first layer with parameters frozen (``frozen``): the update and the clipping run
    over the rest, and the optimiser holds state for the rest only."""
    rng = np.random.default_rng(3)
    backend.set_seed(1)
    ref, ours = MODELS[key](), MODELS[key]()
    ours.load_state_dict(ref.state_dict())
    ref.freeze(frozen)
    ours.freeze(frozen)
    start = ours.state_dict()
    step = StaticStep(ours, _loss(ours), OPTIMIZERS[opt]())
    ref_opt, ref_loss = OPTIMIZERS[opt](), _loss(ref)
    for _ in range(3):
        x, y = _data(rng, ref)
        want_loss, want_hits = train_step(ref, ref_loss, ref_opt, x, y)
        loss, hits = step(x, y)
        assert float(loss) == pytest.approx(float(want_loss), rel=1e-10)
        assert int(hits) == int(want_hits)
        hold_noise_at_zero(ref)
        hold_noise_at_zero(ours)
    learning = {name for name, _, _ in ref.trainable_parameters()}
    for (name, p, g), (_, q, h) in zip(ref.parameters(), ours.parameters()):
        if name not in learning:  # frozen: its gradient is never computed
            assert np.array_equal(p, start[name]) and np.array_equal(q, start[name]), name
            assert not np.any(g) and not np.any(h), name
        elif name not in rounding_only(ref):
            assert relative_error(g, h) < 1e-10, name
            assert relative_error(p, q) < 1e-10, name
    for (name, a), (_, b) in zip(ref.buffers(), ours.buffers()):  # BatchNorm's running statistics
        assert relative_error(a, b) < 1e-10, name
    assert ref_opt.steps == step.optimizer.steps == 3
    assert step.optimizer.state.keys() == ref_opt.state.keys()
    if opt == "momentum_clipped":  # clipping was at work: the gradient left has its norm
        norm = float(sum((h * h).sum() for _, _, h in ours.trainable_parameters())) ** 0.5
        assert norm == pytest.approx(ref_opt.clip_norm, rel=1e-4)  # the 1e-6 in its divisor


@st.composite
def networks(draw, dropout=False):
    """make(): a random CNN, built anew on the active backend at each call. 1 to 3 blocks of
    Conv (any size, padding and stride), maybe BatchNorm, maybe an activation, maybe a max or
    average pool; Flatten or GlobalAvgPool; up to two hidden Dense layers, each maybe with
    BatchNorm, an activation and (``dropout``) Dropout; then 1 output (sigmoid) or 3
    (softmax). Networks whose maps shrink to nothing are rejected."""
    activations = st.sampled_from([None, "relu", "sigmoid", "tanh"])
    shape = (draw(st.sampled_from([1, 3])), draw(st.integers(5, 13)), draw(st.integers(5, 13)))
    specs = []  # (layer class, arguments)

    def make():
        return Model([kind(*args) for kind, args in specs]).build(shape)

    def then(kind, *args, maybe=True):
        specs.extend([(kind, args)] if maybe else [])

    try:
        c = shape[0]
        for _ in range(draw(st.integers(1, 3))):
            k, o = draw(st.integers(1, 5)), draw(st.integers(1, 4))
            then(Conv, k, c, o, draw(st.integers(0, k // 2)), draw(st.integers(1, 2)))
            then(BatchNorm, o, maybe=draw(st.booleans()))
            act, pool = draw(activations), draw(st.sampled_from([None, MaxPool, AvgPool]))
            then(Activation, act, maybe=act is not None)
            then(pool, draw(st.integers(2, 3)), draw(st.sampled_from([None, 1])), maybe=pool)
            c = o
        then(draw(st.sampled_from([Flatten, GlobalAvgPool])))
        for width in draw(st.lists(st.integers(2, 6), max_size=2)):
            then(Dense, make().output_shape[0], width)
            act = draw(activations)
            then(BatchNorm, width, maybe=draw(st.booleans()))
            then(Activation, act, maybe=act is not None)
            then(Dropout, 0.4, maybe=dropout and draw(st.booleans()))
        n_out = draw(st.sampled_from([1, 3]))
        then(Dense, make().output_shape[0], n_out)
        then(Activation, "sigmoid" if n_out == 1 else "softmax")
        make()
    except ShapeError:
        assume(False)
    return make


def same(a, b, tol):
    """max |a - b| <= tol times the larger of their largest magnitude and 1: relative for
    weights and statistics of ordinary size, absolute for values that are only rounding noise
    (a bias rounding_only names, in networks too odd to list them all)."""
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) <= tol * max(np.max(np.abs(a)), np.max(np.abs(b)), 1.0)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(make=networks(), opt=st.sampled_from(["sgd", "momentum"]), frozen=st.integers(0, 2))
def test_any_network_takes_the_same_steps_as_the_layers(make, opt, frozen):
    """What the GPU runs, on random networks: every layer kind after every other, the first
    ``frozen`` layers with parameters kept as they are where some learn after them. (Not with
    Adam, whose steps are as large for a gradient of rounding noise as for any other.)"""
    model, ours = make(), make()
    frozen = min(frozen, sum(1 for layer in model.layers if layer.params) - 1)
    note(f"{model.input_shape}: {model.layers}, frozen {frozen}")
    ours.load_state_dict(model.state_dict())
    model.freeze(frozen)
    ours.freeze(frozen)
    rng = np.random.default_rng(0)
    step = StaticStep(ours, _loss(ours), OPTIMIZERS[opt]())
    ref_opt, ref_loss = OPTIMIZERS[opt](), _loss(model)
    for _ in range(3):
        x, y = _data(rng, model, 6)
        want_loss, want_hits = train_step(model, ref_loss, ref_opt, x, y)
        loss, hits = step(x, y)
        assert float(loss) == pytest.approx(float(want_loss), rel=1e-9)
        assert int(hits) == int(want_hits)
    want, got = model.state_dict(), ours.state_dict()
    for name in want:
        assert same(want[name], got[name], 1e-9), name


@pytest.mark.parametrize("key", ["relu_k3", "binary_k7_pad3_stride3"])
def test_label_smoothing_takes_the_same_steps_as_the_layers(key):
    rng = np.random.default_rng(3)
    ref, ours = MODELS[key](), MODELS[key]()
    ours.load_state_dict(ref.state_dict())
    loss = type(_loss(ref))(label_smoothing=0.2)
    step, ref_opt = StaticStep(ours, loss, SGD(0.1)), SGD(0.1)
    for _ in range(3):
        x, y = _data(rng, ref)
        want_loss, _ = train_step(ref, loss, ref_opt, x, y)
        assert float(step(x, y)[0]) == pytest.approx(float(want_loss), rel=1e-10)
    for (name, p, _), (_, q, _) in zip(ref.parameters(), ours.parameters()):
        assert relative_error(p, q) < 1e-10, name


def _one_step_each(make, x, y):
    """The loss of one SGD step of the layers and of the static step, each on a ``make()``
    with the same weights; their parameters after it are compared."""
    ref, ours = make(), make()
    ours.load_state_dict(ref.state_dict())
    want, _ = train_step(ref, _loss(ref), SGD(0.1), x, y)
    got, _ = StaticStep(ours, _loss(ours), SGD(0.1))(x, y)
    for (name, p, _), (_, q, _) in zip(ref.parameters(), ours.parameters()):
        assert relative_error(p, q) < 1e-10, name
    return float(want), float(got)


def test_tied_maxima_take_the_same_steps_as_the_layers():
    """3x3 sums of pixels of three levels leave many 2x2 windows with tied maxima, of other
    pixels: the gradient goes to the first, in the static step as in the layers (and in
    PyTorch), and so the Conv's weights learn the same."""

    def make():
        layers = [Conv(3, 1, 2, pad=1), Activation("relu"), MaxPool(2), Flatten(), Dense(60, 3)]
        model = Model(layers).build((1, 12, 10))
        model.layers[0].params["W"][...] = 1  # each output a sum of 9 pixels
        return model

    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 3, size=(6, 1, 12, 10)).astype(float), rng.integers(0, 3, size=6)
    want, got = _one_step_each(make, x, y)
    assert got == pytest.approx(want, rel=1e-10)


def test_logits_far_from_zero_give_the_layers_finite_loss():
    def make():
        model = MODELS["relu_k3"]()
        model.layers[-2].params["W"] *= 1000  # logits in the thousands
        return model

    x, y = _data(np.random.default_rng(2), MODELS["relu_k3"]())
    want, got = _one_step_each(make, x, y)
    assert math.isfinite(got) and got == pytest.approx(want, rel=1e-10) and want > 100


@pytest.mark.parametrize("frozen", [0, 2])
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_steps_sampled_through_the_layers_keep_the_static_step_in_step(opt, frozen):
    # Diagnostics run some steps through the layers (Step.instrumented): the static step's flat
    # buffers, optimiser slots and step counts must carry on from those updates.
    rng = np.random.default_rng(4)
    backend.set_seed(1)
    ref, ours = MODELS["relu_k3"](), MODELS["relu_k3"]()
    ours.load_state_dict(ref.state_dict())
    ref.freeze(frozen)
    ours.freeze(frozen)
    step = StaticStep(ours, _loss(ours), OPTIMIZERS[opt]())
    ref_opt, ref_loss = OPTIMIZERS[opt](), _loss(ref)
    for i in range(6):
        x, y = _data(rng, ref)
        train_step(ref, ref_loss, ref_opt, x, y)
        if i in (1, 2, 4):
            step.instrumented(x, y, defaultdict(float), NO_HOOKS)
        else:
            step(x, y)
    learning = {name for name, _, _ in ref.trainable_parameters()}
    for (name, p, _), (_, q, _) in zip(ref.parameters(), ours.parameters()):
        if name in learning:
            assert relative_error(p, q) < 1e-10, name
        else:  # as they started, on both sides
            assert np.array_equal(p, q), name
    assert step.optimizer.steps == ref_opt.steps == 6 and step.count == 6
    assert step.optimizer.state.keys() == ref_opt.state.keys()


def test_batches_of_another_size_get_their_own_program():
    rng = np.random.default_rng(0)
    model = MODELS["relu_k3"]()
    step = StaticStep(model, CrossEntropy(), SGD(0.1))
    for n in (8, 3, 8):
        x, y = _data(rng, model, n)
        step(x, y)
    assert sorted(step.programs) == [3, 8]
    assert step.programs[8].runs == 2


def _twin_steps(monkeypatch, capture):
    """Two static steps on the same weights; the second takes its CUDA graphs from
    ``capture(run)`` (a stand-in, on NumPy) instead of the GPU."""
    backend.set_seed(1)
    plain, graphed = MODELS["relu_k3"](), MODELS["relu_k3"]()
    graphed.load_state_dict(plain.state_dict())
    steps = [StaticStep(m, CrossEntropy(), Adam(1e-2)) for m in (plain, graphed)]
    monkeypatch.setattr(steps[1].k, "capture", capture, raising=False)
    steps[1].graphs = True
    return steps


def _same_weights(a, b):
    for (name, p, _), (_, q, _) in zip(a.model.parameters(), b.model.parameters()):
        assert np.array_equal(p, q), name


def test_a_batch_size_is_captured_at_its_second_step_and_again_when_the_optimiser_changes(
    monkeypatch,
):
    """A batch size's first step launches its kernels one by one, its second captures them
    (here into a stand-in graph that replays the program), later ones replay; a new learning
    rate (a schedule's) would not be in a graph already made: each is captured again."""
    captured = []

    class Replay:  # as a CUDA graph: capturing runs nothing, launching runs what was captured
        def __init__(self, run):
            captured.append(run)
            self.launch = run

    steps, rng, counts = _twin_steps(monkeypatch, Replay), np.random.default_rng(4), []
    for n, lr in ((8, 1e-2), (8, 1e-2), (8, 1e-2), (3, 1e-2), (3, 1e-2), (8, 5e-3), (8, 5e-3)):
        x, y = _data(rng, steps[0].model, n)
        for step in steps:
            step.optimizer.lr = lr
            step(x, y)
        counts.append(len(captured))
    assert counts == [0, 1, 1, 1, 2, 3, 3]
    _same_weights(*steps)


def test_a_failed_capture_launches_the_kernels_one_by_one_from_then_on(monkeypatch, caplog):
    tries = []

    def fails(run):
        tries.append(run)
        raise RuntimeError("stream capture is unsupported")

    steps, rng = _twin_steps(monkeypatch, fails), np.random.default_rng(4)
    for n in (8, 8, 8, 3, 3):
        x, y = _data(rng, steps[0].model, n)
        for step in steps:
            step(x, y)
    assert len(tries) == 1 and not steps[1].graphs
    assert "CUDA graph capture failed (stream capture is unsupported): launching" in caplog.text
    _same_weights(*steps)


def _dropout_model():
    backend.set_seed(5)
    return presets.cnn((1, 12, 12), channels=(3,), hidden=(16, 8), dropout=0.5, n_outputs=3)


def _train(model, steps, start=0, state=None):
    rng = np.random.default_rng(7)
    batches = [_data(rng, model, 8) for _ in range(steps)]
    opt = Adam(1e-2)
    step = StaticStep(model, CrossEntropy(), opt)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step.count = start
    for x, y in batches[start:]:
        step(x, y)
    return model, opt


def test_dropout_masks_repeat_and_resume_exactly():
    full, _ = _train(_dropout_model(), 6)
    again, _ = _train(_dropout_model(), 6)
    half, opt = _train(_dropout_model(), 3)
    state = {"model": half.state_dict(), "opt": opt.state_dict()}
    resumed, _ = _train(_dropout_model(), 6, start=3, state=state)
    for key, value in full.state_dict().items():
        assert np.array_equal(value, again.state_dict()[key]), key
        assert np.array_equal(value, resumed.state_dict()[key]), key


def test_dropout_mask_rate_scale_and_independence():
    x = np.ones((100, 1000))
    masks = []
    for seed, step, stream in ((0, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0)):
        y = np.empty_like(x)
        host.dropout(x, y, 0.3, seed, np.array([step]), stream)
        assert abs((y == 0).mean() - 0.3) < 0.01
        assert np.allclose(y[y != 0], 1 / 0.7)
        masks.append(y != 0)
    for i in range(len(masks)):
        for j in range(i):
            agree = (masks[i] == masks[j]).mean()
            assert agree < 0.6, (i, j)  # independent masks agree on 0.7^2 + 0.3^2 = 58%


def test_dropout_drops_in_the_static_step_and_a_rate_of_zero_changes_nothing():
    rng = np.random.default_rng(2)
    models = {}
    for rate in (0.0, 0.5, "layers"):
        backend.set_seed(5)
        drop = Dropout(0.0 if rate == "layers" else rate)
        models[rate] = Model(
            [Conv(3, 1, 3, pad=1), Activation("relu"), MaxPool(2), Flatten(), drop, Dense(108, 3)]
        ).build((1, 12, 12))
    x, y = _data(rng, models["layers"], 8)
    for rate in (0.0, 0.5):
        StaticStep(models[rate], CrossEntropy(), SGD(0.1))(x, y)
    train_step(models["layers"], CrossEntropy(), SGD(0.1), x, y)
    after = {rate: model.state_dict()["5.W"] for rate, model in models.items()}
    assert relative_error(after[0.0], after["layers"]) < 1e-10
    assert relative_error(after[0.5], after[0.0]) > 1e-3


def test_an_input_flattened_first_is_read_in_place_and_a_map_is_copied_channel_by_channel():
    mlp, cnn = MODELS["mlp_two_channels"](), MODELS["relu_k3"]()
    kinds = [
        [type(op).__name__ for op in StaticStep(m, CrossEntropy(), SGD(0.1)).program(4).ops]
        for m in (mlp, cnn)
    ]
    assert kinds[0] == ["_Dense", "_Dense"]  # the input buffer (N, C, H, W) is already in order
    assert "_Flatten" in kinds[1]  # from the channels-last maps


@pytest.mark.parametrize("key", ["three_channels", "batch_norm_first", "global_pool", "mlp"])
def test_the_scratch_is_sized_for_every_product_a_step_makes(monkeypatch, key):
    """products() gives the (m, n, k) of each matrix product and the (rows, cols, 0) of each
    column sum of a step: the GPU sizes its split-K scratch from them, so a product left out
    could write past its end. Here each product the kernels are asked for is recorded."""
    made = set()
    shapes = {
        "gemm": lambda a, b, *_: (a.shape[0], b.shape[1], a.shape[1]),
        "colsum": lambda a, *_: (*a.shape, 0),
        "conv_forward": lambda x, w, y, *_: (*y.shape, w.shape[0]),
        "conv_weight_grad": lambda dy, x, dw, *_: (*dw.shape, dy.shape[0]),
        "conv_input_grad": lambda dy, w, *_: (dy.shape[0], w.shape[1], dy.shape[1]),
        "batch_norm_forward": lambda x, *_: (*x.shape, 0),  # column sums on the GPU
        "batch_norm_backward": lambda dy, *_: (*dy.shape, 0),
    }
    for name, shape in shapes.items():
        kernel = getattr(host, name)
        monkeypatch.setattr(
            host, name, lambda *a, k=kernel, s=shape, **kw: made.add(s(*a)) or k(*a, **kw)
        )
    model = MODELS[key]()
    StaticStep(model, _loss(model), SGD(0.1))(*_data(np.random.default_rng(0), model, 6))
    assert len(made) > 2 and made <= set(products(model, 6))
    if key == "three_channels":  # and the GPU's input gradient, its columns gathered: a row
        # per input pixel, a column per channel, the 4x4 filters of its 4 outputs to sum over
        assert (6 * 13 * 11, 3, 4 * 4 * 4) in products(model, 6)


def test_optimizer_state_and_parameters_are_views_of_the_flat_buffers():
    model = MODELS["relu_k3"]()
    opt = Momentum(0.1)
    step = StaticStep(model, CrossEntropy(), opt)
    step(*_data(np.random.default_rng(0), model))
    assert np.shares_memory(model.layers[0].params["W"], step.flat)
    assert np.shares_memory(opt.state["0.W"]["v"], step.slots["v"])
    assert np.any(opt.state["0.W"]["v"] != 0)


def test_unsupported_models_say_why():
    model = MODELS["relu_k3"]()
    assert unsupported(model, CrossEntropy(), SGD(0.1)) == ""
    model.freeze(2)  # the update runs over the parameters after the frozen ones
    assert unsupported(model, CrossEntropy(), SGD(0.1)) == ""
    model.freeze(0)
    model.layers[3].trainable = False  # between layers that learn
    assert unsupported(model, CrossEntropy(), SGD(0.1)) == (
        f"{model.layers[3]!r} is frozen after a layer that learns (freeze the first layers only)"
    )
    for layer in model.layers:
        layer.trainable = False
    why = unsupported(model, CrossEntropy(), SGD(0.1))
    assert why == "none of its layers learns (every one is frozen)"

    class Twice(Layer):
        def forward(self, x, training=False):
            return 2 * x

    bad = Model([Flatten(), Twice(), Dense(143, 2)]).build((1, 13, 11))
    with pytest.raises(TypeError, match="no kernels for Twice"):
        StaticStep(bad, CrossEntropy(), SGD(0.1))
    pooled = Model([MaxPool(2), Flatten(), Dense(60, 2)]).build((2, 13, 11))
    assert unsupported(pooled, CrossEntropy(), SGD(0.1)) == (
        "an input with several channels must go to a Conv or Flatten first"
    )


@pytest.mark.parametrize("opt", ["adam", "momentum_clipped"])
def test_layers_frozen_and_let_learn_between_steps_train_as_the_layers(opt):
    """Layers frozen and let learn between steps of one StaticStep (as fine-tuning in stages
    does): each step updates what learns then, a layer that learns for the first time starts
    with fresh optimiser state and one let learn again goes on with its own, and a step cannot
    be taken once a frozen layer follows one that learns."""
    rng = np.random.default_rng(5)
    ref, ours = MODELS["batch_norm"](), MODELS["batch_norm"]()
    ours.load_state_dict(ref.state_dict())
    step = StaticStep(ours, _loss(ours), OPTIMIZERS[opt]())
    ref_opt, ref_loss = OPTIMIZERS[opt](), _loss(ref)
    for frozen in (3, 3, 0, 0, 3, 0):
        ref.freeze(frozen)
        ours.freeze(frozen)
        x, y = _data(rng, ref)
        train_step(ref, ref_loss, ref_opt, x, y)
        step(x, y)
        hold_noise_at_zero(ref)
        hold_noise_at_zero(ours)
    assert step.optimizer.state.keys() == ref_opt.state.keys()
    for (name, p, _), (_, q, _) in zip(ref.parameters(), ours.parameters()):
        if name not in rounding_only(ref):
            assert relative_error(p, q) < 1e-10, name
    [*_, output] = (layer for layer in ours.layers if layer.params)
    output.trainable = False
    with pytest.raises(TypeError, match="is frozen after a layer that learns"):
        step(x, y)


def test_the_profile_times_each_piece_and_counts_its_steps(monkeypatch):
    from types import SimpleNamespace

    from gpucnn import profile

    clock = iter(np.arange(0, 1, 0.0005))  # each reading half a millisecond after the last
    monkeypatch.setattr(profile, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    rng = np.random.default_rng(0)
    model = MODELS["relu_k3"]()
    step = StaticStep(model, CrossEntropy(), Adam(1e-2))
    ms = step.profile([_data(rng, model) for _ in range(4)], steps=2)
    # The max pool applies the convolution's bias and ReLU to its maxima.
    pieces = {
        "   optimizer",
        "   loss forward+backward",
        " 0 Conv forward",
        " 1 MaxPool+bias+relu forward",
    }
    assert pieces <= ms.keys()
    assert ms == pytest.approx(dict.fromkeys(ms, 0.5))  # each piece's mean, in milliseconds
    assert step.count == step.optimizer.steps == 3  # the warm-up and two timed steps
