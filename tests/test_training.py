"""Optimizers against hand-computed updates, losses against direct formulas, and a short
training run that must lower the loss."""

import numpy as np
import pytest

from gpucnn import (
    SGD,
    Activation,
    Adam,
    AdamW,
    BinaryCrossEntropy,
    ConfigError,
    CrossEntropy,
    Dense,
    Dropout,
    Flatten,
    InputError,
    LabelError,
    Model,
    Momentum,
    ShapeError,
    presets,
)
from gpucnn.data import Batches, Split
from gpucnn.optimizers import Optimizer
from gpucnn.static_step import StaticStep
from gpucnn.steps import make_step
from gpucnn.train import (
    check_batches,
    check_head,
    evaluate,
    evaluate_and_predict,
    predict,
    train_step,
)


def _two_steps(opt: Optimizer):
    p = np.array([1.0, -2.0])
    for g in (np.array([0.5, 0.1]), np.array([-0.3, 0.2])):
        opt.step([("p", p, g)])
    return p


def test_sgd_with_weight_decay():
    p = _two_steps(SGD(0.1, weight_decay=0.01))
    p0 = np.array([1.0, -2.0])
    p1 = p0 - 0.1 * (np.array([0.5, 0.1]) + 0.01 * p0)
    assert np.allclose(p, p1 - 0.1 * (np.array([-0.3, 0.2]) + 0.01 * p1))


def test_clipping_scales_all_gradients_together_to_the_norm_and_leaves_smaller_ones():
    p, q = np.array([1.0, -2.0]), np.array([[0.5]])
    g, h = np.array([3.0, 0.0]), np.array([[-4.0]])  # together of norm 5
    SGD(0.1, clip_norm=1.0).step([("p", p, g), ("q", q, h)])
    scale = 1.0 / (5.0 + 1e-6)  # as torch.nn.utils.clip_grad_norm_
    assert np.allclose(g, [3.0 * scale, 0.0]) and np.allclose(h, [[-4.0 * scale]])  # in place
    assert np.allclose(p, [1.0 - 0.3 * scale, -2.0]) and np.allclose(q, [[0.5 + 0.4 * scale]])
    g = np.array([0.3, 0.4])  # of norm 0.5: left as it is
    p = np.array([1.0, -2.0])
    SGD(0.1, weight_decay=0.01, clip_norm=1.0).step([("p", p, g)])
    assert np.array_equal(g, [0.3, 0.4])
    assert np.allclose(p, [1.0 - 0.1 * (0.3 + 0.01), -2.0 - 0.1 * (0.4 - 0.02)])
    for bad in (0, -1.0, float("inf"), "1"):
        with pytest.raises(ConfigError, match="clip_norm must be a finite number > 0"):
            Adam(clip_norm=bad)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum(nesterov):
    g1, g2 = np.array([0.5, 0.1]), np.array([-0.3, 0.2])
    v1 = g1
    p1 = np.array([1.0, -2.0]) - 0.1 * (g1 + 0.9 * v1 if nesterov else v1)
    v2 = 0.9 * v1 + g2
    p2 = p1 - 0.1 * (g2 + 0.9 * v2 if nesterov else v2)
    assert np.allclose(_two_steps(Momentum(0.1, 0.9, nesterov=nesterov)), p2)


def test_adam():
    g1, g2 = np.array([0.5, 0.1]), np.array([-0.3, 0.2])
    m1, v1 = 0.1 * g1, 0.001 * g1**2
    p1 = np.array([1.0, -2.0]) - 0.01 * (m1 / 0.1) / (np.sqrt(v1 / 0.001) + 1e-8)
    m2, v2 = 0.9 * m1 + 0.1 * g2, 0.999 * v1 + 0.001 * g2**2
    p2 = p1 - 0.01 * (m2 / (1 - 0.81)) / (np.sqrt(v2 / (1 - 0.999**2)) + 1e-8)
    assert np.allclose(_two_steps(Adam(0.01)), p2)


@pytest.mark.parametrize("kind", ["layers", "static"])
@pytest.mark.parametrize("second", [{"filter_size": 5}, {"activation": "sigmoid"}])
def test_an_optimiser_that_trained_another_model_is_refused(kind, second):
    """A comparison in a script with the optimiser made once outside the loop: the second model
    (of other shapes, or the same ones: ReLU against sigmoid) would start from the first's
    moments and step count."""
    x, y = np.random.default_rng(6).normal(size=(4, 1, 8, 8)), np.array([0, 1, 1, 0])
    opt = Adam()

    def train(**settings):
        model = presets.cnn((1, 8, 8), channels=(2,), hidden=(3,), **settings)
        _stepper(kind, model, BinaryCrossEntropy(), opt)(x, y)

    train()
    with pytest.raises(ConfigError, match=r"Adam already trained another model \(1 step\).*"
                       r"\(m, v\) would carry over.*make a new optimiser"):  # fmt: skip
        train(**second)


def test_an_optimiser_without_state_and_one_loaded_from_a_checkpoint_take_a_new_model():
    x, y = np.random.default_rng(7).normal(size=(4, 1, 8, 8)), np.array([0, 1, 1, 0])
    models = [presets.cnn((1, 8, 8), channels=(2,), hidden=(3,)) for _ in range(3)]
    sgd = SGD(0.1)  # plain SGD carries nothing from one model to the next
    for model in models[:2]:
        train_step(model, BinaryCrossEntropy(), sgd, x, y)
    adam = Adam()
    train_step(models[0], BinaryCrossEntropy(), adam, x, y)
    saved = adam.state_dict()
    for resumed in (Adam(), adam):  # loading state says which model it goes on with
        resumed.load_state_dict(saved)
        train_step(models[2], BinaryCrossEntropy(), resumed, x, y)
        assert resumed.steps == 2


def test_an_optimiser_state_of_other_shapes_is_refused_naming_the_parameter():
    model = presets.cnn((1, 8, 8), channels=(2,), hidden=(3,))
    opt = Adam()
    opt.slot("0.W", "m", np.zeros((2, 1, 5, 5)))  # state from a model with 5x5 filters
    for _, _, g in model.parameters():
        g[...] = 1.0
    with pytest.raises(ConfigError, match=r"state for 0.W of shape \(2, 1, 5, 5\) but.*"
                       r"\(2, 1, 3, 3\).*make a new optimiser for each model"):  # fmt: skip
        opt.step(model.parameters())


@pytest.mark.parametrize(
    "make,argument",
    [
        (lambda: SGD(0), "lr"),
        (lambda: Adam(1e-3, beta1=1.0), "beta1"),
        (lambda: Adam(1e-3, beta2=1.0), "beta2"),
        (lambda: Momentum(0.1, momentum=1.0), "momentum"),  # v would never forget
        (lambda: SGD(0.1, clip_norm=-1.0), "clip_norm"),
        (lambda: CrossEntropy(label_smoothing=1.0), "label_smoothing"),  # no target left
    ],
)
def test_bad_hyperparameters_are_rejected_naming_the_argument(make, argument):
    with pytest.raises(ConfigError, match=f"^{argument} must be") as err:
        make()
    assert err.value.argument == argument


@pytest.mark.parametrize("given", ["model.parameters", "the model"])
def test_a_step_given_the_model_or_its_uncalled_parameters_says_to_call_them(given):
    model = presets.cnn((1, 8, 8), channels=(2,), hidden=(3,))
    opt = SGD(0.1)
    with pytest.raises(ConfigError, match=rf"got {given}: pass model.parameters\(\)$"):
        opt.step(model.parameters if given == "model.parameters" else model)
    assert opt.steps == 0


def test_the_optimisers_defaults_are_pytorchs():
    """The lab's ``Adam()`` is torch.optim.Adam(params)'s, and ``AdamW()`` AdamW's."""
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle here: pip install torch")
    for ours, theirs in ((Adam(), torch.optim.Adam), (AdamW(), torch.optim.AdamW)):
        defaults = theirs([torch.zeros(1, requires_grad=True)]).defaults
        assert (ours.lr, ours.eps, ours.weight_decay) == (
            defaults["lr"],
            defaults["eps"],
            defaults["weight_decay"],
        )
        assert (ours.beta1, ours.beta2) == defaults["betas"] and ours.clip_norm is None
    momentum = Momentum(0.1)  # torch's SGD has no momentum by default: the usual 0.9
    assert (momentum.momentum, momentum.nesterov, momentum.weight_decay) == (0.9, False, 0.0)


def test_losses_match_their_formulas_and_stay_finite_for_huge_logits():
    z = np.array([[-3.0], [0.5], [2.0]])
    y = np.array([0, 1, 1])
    p = 1 / (1 + np.exp(-z[:, 0]))
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert float(BinaryCrossEntropy().forward(z, y)) == pytest.approx(expected)
    assert float(
        BinaryCrossEntropy().forward(np.array([[1000.0], [-1000.0]]), np.array([0, 1]))
    ) == (pytest.approx(1000.0))
    logits = np.array([[1.0, 2.0, 0.5], [800.0, -800.0, 0.0]])
    ce = CrossEntropy()
    value = float(ce.forward(logits, np.array([1, 1])))
    row0 = -np.log(np.exp(2.0) / np.exp([1.0, 2.0, 0.5]).sum())
    assert value == pytest.approx((row0 + 1600.0) / 2)
    assert np.all(np.isfinite(ce.backward()))


def test_head_and_loss_must_agree():
    with pytest.raises(ConfigError, match="ends in sigmoid but CrossEntropy"):
        check_head(presets.lab_cnn3(n_outputs=1), CrossEntropy())


def test_a_loss_that_would_replace_the_models_own_head_is_refused_by_every_way_in():
    """Three sigmoid outputs trained with CrossEntropy would train a softmax in its place and
    predict sigmoids: train_step, make_step, evaluate and predict all refuse it."""
    rng = np.random.default_rng(0)
    model = Model([Flatten(), Dense(16, 3), Activation("sigmoid")]).build((1, 4, 4))
    x, y = rng.normal(size=(4, 1, 4, 4)), np.array([0, 1, 2, 1])
    said = r"ends in sigmoid .* end the model with Activation\('softmax'\) .*BinaryCrossEntropy"
    for attempt in (
        lambda: train_step(model, CrossEntropy(), SGD(0.1), x, y),
        lambda: make_step(model, CrossEntropy(), SGD(0.1)),
        lambda: evaluate(model, CrossEntropy(), x, y),
        lambda: predict(model, CrossEntropy(), x),
    ):
        with pytest.raises(ConfigError, match=said):
            attempt()


def test_a_loop_of_ones_own_that_feeds_the_loss_probabilities_is_told_to_pass_logits():
    """forward(x, training=True) runs the softmax head; CrossEntropy fuses its own softmax and
    would train a softmax of the softmax. Given the logits, backward must start from them."""
    rng = np.random.default_rng(1)
    model = Model([Flatten(), Dense(16, 3), Activation("softmax")]).build((1, 4, 4))
    x, y, loss = rng.normal(size=(5, 1, 4, 4)), np.array([0, 1, 2, 1, 0]), CrossEntropy()
    with pytest.raises(InputError, match=r"takes logits, but each row .* sums to 1"):
        loss.forward(model.forward(x, training=True), y)
    loss.forward(model.forward(x, training=True, logits=True), y)
    with pytest.raises(ConfigError, match=r"stopped at the logits, .* model.backward\(dy, logits"):
        model.backward(loss.backward())
    with pytest.raises(ShapeError, match=r"output, \(5, 3\), got \(\): the loss's gradient"):
        model.backward(loss.forward(model.forward(x, training=True, logits=True), y), logits=True)
    model.backward(loss.backward(), logits=True)  # the loop done right: train_step's gradients
    mine = {name: g.copy() for name, _, g in model.parameters()}
    train_step(model, loss, SGD(0.1), x, y)
    for name, _, g in model.parameters():
        assert np.allclose(mine[name], g, rtol=1e-12), name
    assert float(loss.forward(rng.normal(size=(5, 3)), y)) > 0  # logits pass


@pytest.mark.parametrize("outputs", [1, 3])
def test_a_step_counts_the_images_its_model_classified_right_before_the_update(outputs):
    rng = np.random.default_rng(5)
    model = presets.mlp((12, 6, outputs), "relu", input_shape=(1, 3, 4))
    loss = BinaryCrossEntropy() if outputs == 1 else CrossEntropy()
    x, y = rng.normal(size=(40, 1, 3, 4)), rng.integers(0, max(outputs, 2), size=40)
    right = int((loss.predict(model.forward(x, logits=True)) == y).sum())
    assert 0 < right < len(y)  # neither count alone can pass
    _, hits = train_step(model, loss, SGD(0.1), x, y)
    assert int(hits) == right


def test_logits_that_look_like_probabilities_only_in_part_are_taken_as_logits():
    """Refused: rows that are each in [0, 1] and sum to 1, a softmax's even where it saturated
    to exact zeros and ones. Taken: rows that are only one or the other, and a single row."""
    loss, y = CrossEntropy(), np.array([0, 1])
    for logits in (
        np.array([[0.2, 0.1], [0.6, 0.3]]),  # in [0, 1], not summing to 1
        np.array([[0.8, 0.7, -0.5], [0.9, 0.6, -0.5]]),  # summing to 1, not in [0, 1]
        np.array([[0.3, 0.7]]),  # one row: by a fluke
    ):
        assert float(loss.forward(logits, y[: len(logits)])) > 0
    with pytest.raises(InputError, match=r"takes logits, but each row .* sums to 1"):
        loss.forward(np.array([[1.0, 0.0], [0.0, 1.0]]), y)


def test_each_loss_predicts_and_gives_probabilities_from_the_logits_it_trained():
    """A binary model's one logit z says positive where z > 0 (p = sigmoid(z) > 1/2), with
    probabilities (1 - p, p); a softmax model's class is its largest logit."""
    z = np.array([[-2.0], [-0.25], [0.0], [0.25], [0.75], [3.0]])
    binary = BinaryCrossEntropy()
    assert binary.predict(z).tolist() == [0, 0, 0, 1, 1, 1]
    p = 1 / (1 + np.exp(-z))
    assert np.allclose(binary.probabilities(z), np.hstack([1 - p, p]), rtol=1e-12)
    logits = np.random.default_rng(4).normal(size=(6, 4))
    softmax = CrossEntropy()
    assert softmax.predict(logits).tolist() == logits.argmax(axis=1).tolist()
    e = np.exp(logits)
    assert np.allclose(softmax.probabilities(logits), e / e.sum(axis=1, keepdims=True))


def test_backward_after_an_evaluation_pass_of_a_model_with_dropout_is_refused():
    """model.forward(x) defaults to evaluation mode: trained on its gradients, Dropout would
    never drop and BatchNorm never learn its statistics."""
    rng = np.random.default_rng(2)
    model = Model([Flatten(), Dropout(0.5), Dense(16, 3)]).build((1, 4, 4))
    x, y, loss = rng.normal(size=(5, 1, 4, 4)), np.array([0, 1, 2, 1, 0]), CrossEntropy()
    loss.forward(model.forward(x), y)
    with pytest.raises(ConfigError, match=r"evaluation mode .*model.forward\(x, training=True"):
        model.backward(loss.backward())
    model.backward(loss.backward(), evaluation=True)  # on purpose, as gradcheck does
    loss.forward(model.forward(x, training=True), y)
    model.backward(loss.backward())
    for layers in ([Flatten(), Dense(16, 3)], [Flatten(), Dropout(0.0), Dense(16, 3)]):
        plain = Model(layers).build((1, 4, 4))  # the same either way
        loss.forward(plain.forward(x), y)
        plain.backward(loss.backward())


def test_an_optimiser_given_the_model_or_its_method_says_to_call_parameters():
    model, opt = Model([Flatten(), Dense(16, 3)]).build((1, 4, 4)), SGD(0.1)
    for given, said in ((model.parameters, "model.parameters"), (model, "the model")):
        with pytest.raises(ConfigError, match=f"got {said}: pass model.parameters\\(\\)"):
            opt.step(given)
    assert opt.steps == 0
    opt.step(model.parameters())
    assert opt.steps == 1


def _bars(rng, n):
    """A small synthetic task: is the bright bar vertical (1) or horizontal (0)?"""
    x = rng.normal(0, 0.3, size=(n, 1, 12, 12))
    y = rng.integers(0, 2, size=n)
    pos = rng.integers(2, 10, size=n)
    for i in range(n):
        if y[i]:
            x[i, 0, :, pos[i]] += 2
        else:
            x[i, 0, pos[i], :] += 2
    return x.astype(np.float32), y


@pytest.mark.parametrize("opt", [lambda: Adam(3e-3), lambda: Momentum(0.05)])
def test_short_training_run_lowers_the_loss(opt):
    from gpucnn import backend

    backend.use("numpy", dtype="float32", seed=0)
    rng = np.random.default_rng(0)
    x, y = _bars(rng, 256)
    model = presets.cnn((1, 12, 12), channels=(4, 8), hidden=(16,), dropout=0.2)
    loss, optimizer = BinaryCrossEntropy(), opt()
    before, _ = evaluate(model, loss, x, y)
    for _epoch in range(3):
        for i in range(0, 256, 32):
            train_step(model, loss, optimizer, x[i : i + 32], y[i : i + 32])
    after, acc = evaluate(model, loss, x, y)
    assert after < 0.5 * before
    assert acc > 0.9


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_evaluate_and_predict_is_evaluate_and_predict_in_one_pass(n_outputs):
    from gpucnn import backend

    backend.use("numpy", dtype="float32", seed=0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(23, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, max(2, n_outputs), size=23)
    model = presets.cnn((1, 12, 12), channels=(4,), hidden=(8,), n_outputs=n_outputs)
    loss = BinaryCrossEntropy() if n_outputs == 1 else CrossEntropy()
    test_loss, accuracy, probs = evaluate_and_predict(model, loss, x, y, batch_size=5)
    whole = model.forward(x, logits=True)  # one batch: the same up to float32 rounding
    assert test_loss == pytest.approx(float(loss.forward(whole, y)), rel=1e-5)
    assert accuracy == np.mean(loss.predict(whole) == y)
    assert np.array_equal(probs, predict(model, loss, x, batch_size=5))
    assert probs.shape == (23, max(2, n_outputs)) and 0 < accuracy < 1
    assert evaluate_and_predict(model, loss, x, y, batch_size=5, keep=False)[2] is None


def _stepper(kind, model, loss, opt=None):
    """A function (x, y) -> one training step of ``model`` with ``opt`` (SGD by default): the
    layers' step, or the static program (on the host kernels)."""
    opt = opt or SGD(0.1)
    if kind == "static":
        return StaticStep(model, loss, opt)
    return lambda x, y: train_step(model, loss, opt, x, y)


@pytest.mark.parametrize("kind", ["layers", "static"])
@pytest.mark.parametrize(
    "outputs,labels,match",
    [
        (3, lambda y: np.eye(3, dtype=np.int64)[y], r"labels \(6, 3\).*one-hot.*y.argmax"),
        (2, lambda y: np.eye(2, dtype=np.int64)[y % 2], r"labels \(6, 2\).*one-hot.*y.argmax"),
        (3, lambda y: y.astype(np.float32), "integer class indices.*float32.*y.astype"),
        (3, lambda y: y + 1, r"labels 0 to 2 \(one for each of the model's 3 outputs\).*1 to 3"),
        (3, lambda y: y[:4], r"one label per image, \(6,\), but got labels \(4,\)$"),
        (1, lambda y: y[:, None] % 2, r"labels \(6, 1\): pass y.reshape\(-1\)"),
        (1, lambda y: y, r"labels 0 to 1 \(negative and positive\).*0 to 2"),
        (1, lambda y: (y % 2) * 0.5, "integer class indices.*float64"),
        (3, lambda y: y.tolist(), r"labels as an array \(N,\), got a list: pass np.asarray\(y\)"),
    ],
)
def test_labels_that_do_not_fit_the_loss_are_refused_naming_the_fix(kind, outputs, labels, match):
    model = presets.mlp((12, 5, outputs), "relu", input_shape=(1, 3, 4))
    loss = BinaryCrossEntropy() if outputs == 1 else CrossEntropy()
    x, y = np.random.default_rng(3).normal(size=(6, 1, 3, 4)), np.array([0, 1, 2, 2, 1, 0])
    step = _stepper(kind, model, loss)
    with pytest.raises(LabelError, match=match):
        step(x, labels(y))
    step(x, y % max(outputs, 2))  # the same batch with fitting labels trains


@pytest.mark.parametrize("kind", ["layers", "static"])
@pytest.mark.parametrize(
    "images,match",
    [
        (
            lambda x: (x * 255).astype(np.uint8),
            r"batch of uint8: pass x.astype\(np.float32\) / 255",
        ),
        (
            lambda x: (x * 255).astype(np.int64),
            r"batch of int64: pass x.astype\(np.float32\) / 255",
        ),
        (lambda x: x > 0.5, r"batch of bool: pass x.astype\(np.float32\)$"),
        (lambda x: x.tolist(), r"array \(N, C, H, W\).*got a list: pass np.asarray\(x, dtype="),
    ],
)
def test_inputs_that_are_not_float_arrays_are_refused_naming_the_fix(kind, images, match):
    model = presets.mlp((12, 5, 3), "relu", input_shape=(1, 3, 4))
    x, y = np.random.default_rng(5).random(size=(6, 1, 3, 4)), np.array([0, 1, 2, 2, 1, 0])
    step, loss = _stepper(kind, model, CrossEntropy()), CrossEntropy()
    for use in (
        lambda x: step(x, y),
        model.predict,
        lambda x: evaluate(model, loss, x, y),
    ):
        with pytest.raises(InputError, match=match):
            use(images(x))
    step(x, y)  # the same images as floats train


@pytest.mark.parametrize("batch_size", [0, -2, 2.5])
def test_evaluation_batch_sizes_that_cannot_work_are_refused(batch_size):
    model = presets.mlp((12, 5, 3), "relu", input_shape=(1, 3, 4))
    x, y = np.random.default_rng(7).random(size=(6, 1, 3, 4)), np.array([0, 1, 2, 2, 1, 0])
    for use in (  # a negative size took no slice: evaluate said loss 0, accuracy 0
        lambda: model.predict(x, batch_size),
        lambda: evaluate(model, CrossEntropy(), x, y, batch_size),
        lambda: predict(model, CrossEntropy(), x, batch_size),
    ):
        with pytest.raises(ConfigError, match="batch_size must be a positive integer, got"):
            use()


@pytest.mark.parametrize("kind", ["layers", "static"])
def test_a_loss_that_does_not_fit_the_outputs_is_refused(kind):
    x, y = np.random.default_rng(4).normal(size=(6, 1, 3, 4)), np.array([0, 1, 1, 0, 1, 0])
    ten = Model([Flatten(), Dense(12, 10)]).build((1, 3, 4))
    with pytest.raises(LabelError, match=r"one output per image.*\(6, 10\).*use CrossEntropy"):
        _stepper(kind, ten, BinaryCrossEntropy())(x, y)
    one = Model([Flatten(), Dense(12, 1)]).build((1, 3, 4))  # CrossEntropy over 1 output is 0
    with pytest.raises(LabelError, match=r"2 or more classes.*\(6, 1\).*BinaryCrossEntropy"):
        _stepper(kind, one, CrossEntropy())(x, y)


@pytest.mark.parametrize("hidden", [(), (6,)])
def test_batch_sizes_a_batch_norm_cannot_train_on_are_refused_before_training(hidden):
    """After a Dense, BatchNorm needs two images; after a Conv one image has a whole map."""
    model = presets.cnn((1, 8, 8), channels=(3,), hidden=hidden, n_outputs=2, batch_norm=True)
    split = Split(np.zeros((9, 1, 8, 8), np.float32) + 1, np.zeros(9, np.int64))
    check_batches(model, Batches(split, 3))  # no last batch of one
    if not hidden:
        assert model.min_training_batch() == (1, "")
        check_batches(model, Batches(split, 4))
        return
    assert model.min_training_batch() == (2, f"layer 6 {model.layers[6]!r}")
    with pytest.raises(ConfigError, match=r"batch_size=4 leaves a last batch of 1 of the 9 .*"):
        check_batches(model, Batches(split, 4))
    with pytest.raises(ConfigError, match=r"batch_size=1 is too small: layer 6 BatchNorm"):
        check_batches(model, Batches(split, 1))
    check_batches(model, Batches(split, 2, drop_last=True))  # two images are enough
    check_batches(model, Batches(split, 4, drop_last=True))
