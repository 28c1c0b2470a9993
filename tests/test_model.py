"""Model construction, shape checks, counts, summary, and weights on disk."""

import math
import re

import numpy as np
import pytest

from gpucnn import (
    SGD,
    Activation,
    Adam,
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
    Momentum,
    ShapeError,
    backend,
    presets,
)
from gpucnn.errors import NotEnoughMemory
from gpucnn.train import evaluate, train_step

LAB_COUNTS = {"lab_cnn3": 88_784, "lab_cnn2": 526_024, "lab_mlp4": 131_200, "lab_mlp1": 158_500}


@pytest.mark.parametrize("name", LAB_COUNTS)
def test_lab_presets_have_the_lab_weight_counts(name):
    model = presets.PRESETS[name]()
    assert model.count_params() == LAB_COUNTS[name]
    summary = model.summary()
    assert f"weights: {LAB_COUNTS[name]:,}" in summary
    biases = sum(p.size for n, p, _ in model.parameters() if n.endswith(".b"))
    assert model.count_params(bias=True) == LAB_COUNTS[name] + biases


def test_lenet5_has_its_published_layers_and_each_block_pools_as_asked():
    lenet = presets.lenet5()
    # 5x5 convolutions 1->6 and 6->16 without padding, dense 400-120-84-10 (LeCun et al., 1998)
    assert lenet.count_params() == 6 * 25 + 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10 == 61_470
    pools = [layer for layer in lenet.layers if isinstance(layer, (AvgPool, MaxPool))]
    assert [type(p) for p in pools] == [AvgPool, AvgPool]
    assert [layer.name for layer in lenet.layers if isinstance(layer, Activation)] == [
        "tanh", "tanh", "tanh", "tanh", "softmax"
    ]  # fmt: skip
    assert lenet.shapes[:4] == [(6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10)]
    maxed = presets.cnn((1, 32, 32), (4,), pool="max")
    assert any(isinstance(layer, MaxPool) for layer in maxed.layers)
    with pytest.raises(ConfigError, match="pool=.min. is unknown: choose max or avg") as raised:
        presets.cnn((1, 32, 32), (4,), pool="min")
    assert raised.value.argument == "pool"


def test_multiply_adds_count_every_use_of_a_weight_in_one_images_forward_pass():
    # lab_cnn3 on 1x32x32, by hand: each conv output value is a dot product over C*3*3 inputs
    # (same padding keeps 32, 16 and 8 pixels a side), each dense weight is used once.
    lab = presets.lab_cnn3()
    by_hand = 16 * 32 * 32 * 9 + 32 * 16 * 16 * 16 * 9 + 64 * 8 * 8 * 32 * 9 + 1024 * 64 + 64
    assert lab.count_multiply_adds() == by_hand == 2_572_352
    assert "multiply-adds per image: 2,572,352" in lab.summary() and "1,179,648" in lab.summary()
    assert presets.lab_mlp4().count_multiply_adds() == LAB_COUNTS["lab_mlp4"]
    # Stride 2 and padding 1 make 4x4 outputs of a 7x7 input; the pool does no multiply-adds.
    model = Model([Conv(3, 2, 5, pad=1, stride=2), MaxPool(2), Flatten(), Dense(20, 3)])
    assert model.build((2, 7, 7)).count_multiply_adds() == 5 * 4 * 4 * (2 * 3 * 3) + 20 * 3


def test_summary_lists_every_layer_with_its_output_shape():
    summary = presets.lab_cnn3().summary()
    assert "(64, 4, 4)" in summary and "(1024,)" in summary
    assert summary.count("Conv(") == 3 and summary.count("MaxPool(") == 3


def test_summary_is_a_table_of_the_input_each_layer_and_the_totals():
    # By hand: the Conv has 3*3*1*2 weights and 2 biases, and makes 2*4*4 outputs of 9
    # multiply-adds each; the Dense has 8*3 weights and 3 biases.
    model = Model([Conv(3, 1, 2, pad=1), Activation("relu"), MaxPool(2), Flatten(), Dense(8, 3)])
    conv = "Conv(filter_size=3, input_channel=1, output_channel=2, pad=1, stride=1)"
    lines = model.build((1, 4, 4)).summary().splitlines()
    rule = ["-" * len(lines[0])]
    assert [re.split(r"\s{2,}", line.strip()) for line in lines] == [
        ["#", "layer", "output shape", "weights", "biases", "multiply-adds"],
        rule,
        ["Input", "(1, 4, 4)"],
        ["0", conv, "(2, 4, 4)", "18", "2", "288"],
        ["1", "Activation('relu')", "(2, 4, 4)"],
        ["2", "MaxPool(pool_size=2, stride=2)", "(2, 2, 2)"],
        ["3", "Flatten()", "(8,)"],
        ["4", "Dense(8, 3)", "(3,)", "24", "3", "24"],
        rule,
        ["weights: 42", "biases: 5", "total: 47", "multiply-adds per image: 312"],
    ]
    # Names and shapes start under their headings; counts end under theirs.
    assert lines[2].index("(1, 4, 4)") == lines[0].index("output shape") == lines[7].index("(3,)")
    assert len(lines[3]) == len(lines[7]) == len(lines[0]) and not any(
        s.endswith(" ") for s in lines
    )
    assert lines[3].index(" 18") + 3 == lines[0].index("weights") + len("weights")


def test_activation_bytes_count_each_output_the_columns_and_the_largest_columns_gradient():
    # By hand, for 5 images of 1x4x4: outputs of 2x4x4, 2x4x4, 4x4x4, 4x2x2, 16 and 3 values
    # each; the Convs' columns are (5*4*4) rows of 1*3*3 and of 2*3*3 values.
    convs = [Conv(3, 1, 2, pad=1), Activation("relu"), Conv(3, 2, 4, pad=1)]
    model = Model([*convs, MaxPool(2), Flatten(), Dense(16, 3)]).build((1, 4, 4))
    item = np.dtype(backend.dtype()).itemsize
    outputs = [5 * n * item for n in (32, 32, 64, 16, 16, 3)]
    columns = [5 * 16 * 9 * item, 5 * 16 * 18 * item]
    parts = model.activation_bytes(5)
    assert [b for name, b in parts if name.endswith("output")] == outputs
    assert [b for name, b in parts if name.endswith("columns")] == columns
    assert parts[-1] == (f"layer 2 {model.layers[2]!r}'s im2col columns' gradient", columns[1])
    evaluation = model.activation_bytes(5, training=False)
    assert evaluation == parts[:-1] and len(evaluation) == 8  # all but the columns' gradient
    asked = []

    def gathers_the_second(rows, ckk, output_channels):  # as a kernel set's implicit_conv
        asked.append((rows, ckk, output_channels))
        return output_channels == 4

    parts = model.activation_bytes(5, True, gathers_the_second)
    assert asked == [(80, 9, 2), (80, 18, 4)]
    assert [b for name, b in parts if "columns" in name] == [columns[0], columns[0]]


def test_the_lab_api_builds_the_lab_model():
    model = Model()
    model.add(Conv(filter_size=3, input_channel=1, output_channel=8, pad=1, stride=1))
    model.add(Activation("relu", "cross_entropy"))
    model.add(MaxPool(pool_size=2, stride=2))
    model.add(Flatten())
    model.add(Dense(8 * 16 * 16, 1))
    model.add(Activation("sigmoid", "cross_entropy"))
    x = np.random.default_rng(0).normal(size=(3, 1, 32, 32))
    y = model.forward(x)
    assert y.shape == (3, 1) and np.all((y > 0) & (y < 1))
    assert model.input_shape == (1, 32, 32)
    dx = model.backward(y - 0.5)  # the lab's backward gives the gradient for the input
    assert dx.shape == x.shape and np.abs(dx).max() > 0


def test_dense_width_mismatch_names_the_layer_and_the_fix():
    model = Model([Conv(3, 1, 4, pad=1), MaxPool(2), Flatten(), Dense(1000, 64)])
    with pytest.raises(ShapeError, match=r"layer 3 Dense\(1000, 64\).*1024.*Dense\(1024, 64\)"):
        model.build((1, 32, 32))


def test_strided_convs_stand_in_for_pools():
    """An all-convolutional network: each block's Conv steps 2 pixels and no pool follows."""
    model = presets.cnn((1, 28, 28), channels=(4, 8), stride=2, pool_size=0, n_outputs=3)

    def strides(m):
        return [layer.stride for layer in m.layers if isinstance(layer, Conv)]

    assert strides(model) == [2, 2] and not any(isinstance(x, MaxPool) for x in model.layers)
    assert model.shapes[0] == (4, 14, 14) and model.shapes[2] == (8, 7, 7)
    with pytest.raises(ShapeError, match=r"layer 8 MaxPool.*fewer pooling layers or strided conv"):
        presets.cnn((1, 16, 16), channels=(4, 8, 8), stride=2)  # 16 -> 8, 4 -> 2, 1 -> 1 -> ?
    mixed = presets.cnn((1, 28, 28), channels=(4, 8), stride=[1, 2], pool_size=[2, 0])
    assert strides(mixed) == [1, 2]
    assert mixed.output_shape == (1,) and mixed.shapes[4] == (8, 7, 7)


def test_a_max_pool_of_its_own_keeps_negative_maxima(kernel_set):
    """relu=True is for the fused ReLU + pool pair only: a pool alone takes each window's
    maximum, below zero too."""
    x = -np.random.default_rng(3).uniform(1, 2, size=(2, 3, 4, 6))
    windows = x.reshape(2, 3, 2, 2, 3, 2)  # (N, C, OH, 2, OW, 2)
    assert np.array_equal(MaxPool(2).forward(x), windows.max(axis=(3, 5)))


def test_a_global_pool_feeds_the_dense_layers_each_channels_mean():
    flat = presets.cnn((1, 16, 16), channels=(4, 8), hidden=(5,), n_outputs=3)
    pooled = presets.cnn((1, 16, 16), channels=(4, 8), hidden=(5,), n_outputs=3, global_pool=True)
    assert isinstance(pooled.layers[6], GlobalAvgPool) and isinstance(flat.layers[6], Flatten)
    assert pooled.layers[7].params["W"].shape == (8, 5)  # a weight per channel, not per pixel
    assert flat.layers[7].params["W"].shape == (8 * 4 * 4, 5)
    x = np.random.default_rng(2).normal(size=(2, 1, 16, 16))
    maps = pooled.layer_outputs(x)[5]
    assert np.allclose(pooled.layer_outputs(x)[6], maps.mean(axis=(2, 3)))


def test_a_map_shrunk_to_nothing_is_rejected_at_build_time():
    with pytest.raises(ShapeError, match=r"layer 5 MaxPool.*\(16, 1, 1\)"):
        presets.cnn((1, 8, 8), channels=(8, 16), filter_size=3, pool_size=2, padding="valid")


def test_conv_filter_larger_than_the_map_is_rejected():
    with pytest.raises(ShapeError, match=r"layer 0 Conv.*7x7 filter.*5x5 input"):
        Model([Conv(7, 1, 4)]).build((1, 5, 5))


def test_input_channel_mismatch_is_rejected():
    with pytest.raises(ShapeError, match=r"layer 2 Conv.*input_channel=4.*8 channels"):
        Model([Conv(3, 1, 8), Activation("relu"), Conv(3, 4, 8)]).build((1, 12, 12))
    with pytest.raises(ShapeError, match=r"input_channel=3 but the input has 1 channel \(1, 12"):
        Model([Conv(3, 3, 8)]).build((1, 12, 12))


def test_a_batchnorm_of_the_wrong_width_is_rejected_at_build_time():
    with pytest.raises(ShapeError, match=r"layer 1 BatchNorm.*\(8, 12, 12\): use BatchNorm\(8\)"):
        Model([Conv(3, 1, 8, pad=1), BatchNorm(4)]).build((1, 12, 12))
    with pytest.raises(ShapeError, match=r"layer 0 BatchNorm.*\(C, H, W\) .* or \(C,\)"):
        Model([BatchNorm(4)]).build((4, 12))  # the channel count is right, the shape is not
    Model([Dense(6, 4), BatchNorm(4)]).build((6,))


def test_a_global_average_pool_head_builds_and_pools_need_maps():
    """Conv blocks, then the mean of each channel into the dense layer: no Flatten needed."""
    model = Model([Conv(3, 1, 6, pad=1), Activation("relu"), AvgPool(2), Conv(3, 6, 8)])
    model.add(GlobalAvgPool()).add(Dense(8, 3)).add(Activation("softmax")).build((1, 12, 12))
    assert model.shapes[-4:] == [(8, 4, 4), (8,), (3,), (3,)]
    assert model.count_params() == 54 + 432 + 24
    x = np.random.default_rng(4).normal(size=(5, 1, 12, 12)).astype(np.float32)
    assert model.predict(x).shape == (5, 3)
    for pool in (GlobalAvgPool(), AvgPool(2), MaxPool(2)):
        with pytest.raises(ShapeError, match=r"layer 1 .*expects a \(channels, height, width\)"):
            Model([Flatten(), pool]).build((1, 6, 6))


def test_softmax_only_as_the_last_layer():
    with pytest.raises(ShapeError, match="softmax is only allowed as the last layer"):
        Model([Dense(4, 3), Activation("softmax"), Dense(3, 2)]).build((4,))


def test_a_batch_of_the_wrong_shape_is_rejected():
    model = presets.lab_cnn3()
    with pytest.raises(ShapeError, match=r"built for inputs \(1, 32, 32\).*\(2, 1, 28, 28\)"):
        model.forward(np.zeros((2, 1, 28, 28)) + 1)
    image = np.ones((1, 32, 32))  # one image of the right shape, its batch axis left out
    with pytest.raises(ShapeError, match=r"without its batch axis: pass x\[None\]"):
        model.forward(image)
    assert model.forward(image[None]).shape == (1, 1)


def test_a_batch_shape_given_to_build_an_empty_batch_and_a_number_are_refused():
    with pytest.raises(ShapeError, match=r"\(8, 1, 32, 32\) has 4 axes.*build\(\(1, 32, 32\)\)"):
        presets.lab_cnn3().build((8, 1, 32, 32))
    for given in (784, "1,28,28", (1, 0, 28), (1.0, 28, 28), True):
        with pytest.raises(ShapeError, match=r"is not a shape: .* \(1, 28, 28\) or \(784,\)"):
            Model([Flatten(), Dense(784, 2)]).build(given)
    assert Model([Flatten(), Dense(16, 2)]).build(np.array([1, 4, 4])).input_shape == (1, 4, 4)
    model = Model([Flatten(), Dense(4, 2)])  # not built: the first batch builds it
    assert model.predict(np.ones((3, 1, 2, 2))).shape == (3, 2)
    empty, no_labels = np.ones((0, 1, 2, 2)), np.zeros(0, np.int64)
    for use in (
        model.forward,
        model.predict,
        lambda x: evaluate(model, CrossEntropy(), x, no_labels),
    ):
        with pytest.raises(ShapeError, match=r"an empty batch \(0, 1, 2, 2\)"):
            use(empty)
        with pytest.raises(ShapeError, match=r"got one number, 0.5, not a batch"):
            use(np.float64(0.5))


@pytest.mark.parametrize(
    "channels,batch,fix",
    [
        (3, (2, 32, 32, 3), r"it looks channels-last.*: pass x.transpose\(0, 3, 1, 2\)"),
        (1, (2, 32, 32), r"it has no channel axis: pass x\[:, None\]"),
        (3, (2, 3, 28, 28), r"pass batches \(N, 3, 32, 32\), or build a model for \(3, 28, 28\)"),
    ],
)
def test_a_batch_of_the_wrong_shape_is_told_how_to_fit(channels, batch, fix):
    model = presets.lab_cnn3(input_shape=(channels, 32, 32))
    with pytest.raises(ShapeError, match=f"got a batch {re.escape(str(batch))}: {fix}"):
        model.forward(np.ones(batch))
    mlp = presets.mlp((784, 10), "relu", input_shape=(784,))
    with pytest.raises(ShapeError, match=r"pass x.reshape\(len\(x\), -1\)"):
        mlp.forward(np.ones((2, 1, 28, 28)))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Conv(0, 1, 8), "filter_size must be a positive integer"),
        (lambda: Conv(3, 1, 8, pad=-1), "pad must be an integer >= 0"),
        (lambda: MaxPool(2, stride=0), "stride must be a positive integer"),
        (lambda: Dense(3.5, 2), "input_size must be a positive integer"),
        (lambda: Activation("gelu"), "choose one of relu, sigmoid, tanh, softmax"),
        (lambda: Activation("ReLU"), r"softmax \(did you mean 'relu'\?\)"),
        (lambda: Conv(5, 1, 8, pad="same"), r"got 'same': for outputs the size .* give pad=2 "),
        (lambda: Conv(3, 1, 8, pad="valid"), "got 'valid': for no padding give pad=0"),
        (lambda: Conv(3, 1, 8, pad=np.array([1, 2])), r"pad must be .*, got array\(\[1, 2\]\)"),
        (lambda: presets.cnn(channels=(8, 16), filter_size=[3]), "filter_size has 1 values"),
        (lambda: presets.cnn(filter_size=4, padding="same"), "same needs an odd filter_size"),
        (lambda: SGD(lr="0.1"), "lr must be a number, got '0.1'"),
        (lambda: Momentum(0.1, momentum=None), "momentum must be a number, got None"),
        (lambda: Adam(eps="1e-8"), "eps must be a number, got '1e-8'"),
        (lambda: SGD(lr=float("inf")), "lr must be a finite number > 0, got inf"),
        (lambda: Adam(weight_decay=math.inf), "weight_decay must be a finite number >= 0, got inf"),
        (lambda: Adam(eps=math.inf), "eps must be a finite number > 0, got inf"),
        (lambda: BatchNorm(4, eps=math.inf), "eps must be a finite positive number"),
        (lambda: Model(Flatten()), r"Model takes a list of layers: Model\(\[Flatten\(\), ...\]\)"),
        (lambda: Model().add(Flatten), r"got the class Flatten: add Flatten\(...\)"),
        (lambda: Model([Dense(3, 2), Activation]), r"got the class Activation: add Activation"),
        (lambda: presets.cnn(channels=8), r"channels takes a list of .*, got 8: .*=\[16, 32\]"),
        (lambda: presets.cnn(hidden=64), r"hidden takes a list of .*, got 64: e.g. hidden=\[64\]"),
        (lambda: presets.mlp(784), r"sizes takes a list of .*, got 784: e.g. sizes=\[784, 1"),
        (lambda: presets.lab_cnn3((1, 32, 32), 10), r"input_shape 10 is not a shape: give one"),
    ],
)
def test_bad_arguments_are_rejected_with_a_clear_message(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_one_layer_object_in_two_places_is_refused():
    """Reused, the first place's backward would read the second place's input."""
    relu = Activation("relu")
    model = Model([Dense(4, 4), relu, Dense(4, 4)])
    with pytest.raises(ConfigError, match=r"Activation\('relu'\) is already layer 1 of this model"):
        model.add(relu)
    assert len(model.layers) == 3


def test_sizes_and_rates_computed_with_numpy_are_taken():
    """Dense(np.prod(shape), 10): a NumPy number is as good as Python's, and shown as one."""
    flat = np.prod((4, 14, 14))
    model = Model([Conv(np.int64(3), 1, 4, pad=np.int64(1)), MaxPool(np.int32(2)), Flatten()])
    model.add(Dense(flat, 10)).add(BatchNorm(np.int64(10), momentum=np.float32(0.5)))
    model.add(Dropout(np.float32(0.25))).build((1, 28, 28))
    assert model.output_shape == (10,) and repr(model.layers[3]) == "Dense(784, 10)"
    assert model.layers[4].momentum == 0.5 and model.layers[5].rate == 0.25
    # float32 values as they print, not as their nearest doubles (0.30000001192092896)
    assert repr(Dropout(np.float32(0.3))) == "Dropout(0.3)" and Adam(np.float32(0.001)).lr == 0.001
    assert repr(BatchNorm(4, momentum=np.float32(0.1))) == "BatchNorm(4, momentum=0.1, eps=1e-05)"
    with pytest.raises(ConfigError, match=r"input_size must be a positive integer, got True"):
        Dense(True, 10)
    with pytest.raises(ConfigError, match=r"Dropout\(True\): rate must be a number"):
        Dropout(True)
    sizes = {"filter_size": np.int64(5), "pool_size": np.int64(2), "padding": np.int64(2)}
    same = presets.cnn(filter_size=5, pool_size=2, padding=2)
    assert presets.cnn(**sizes).count_params() == same.count_params() == 130_000


def test_arguments_outside_their_range_are_refused_naming_the_range():
    for make, said in (
        (lambda: Dropout(1.0), r"Dropout\(1.0\): rate must be a number in \[0, 1\)"),
        (lambda: Dropout(-0.1), r"Dropout\(-0.1\): rate must be a number in \[0, 1\)"),
        (lambda: BatchNorm(4, momentum=1.5), r"momentum=1.5, .*must be a number in \[0, 1\]"),
        (lambda: BatchNorm(4, momentum=-0.5), r"momentum=-0.5, .*must be a number in \[0, 1\]"),
        (lambda: BatchNorm(4, eps=0), r"eps=0\): eps must be a finite positive number"),
        (lambda: BatchNorm(4, eps=math.inf), r"eps=inf\): eps must be a finite positive"),
    ):
        with pytest.raises(ConfigError, match=said):
            make()
    assert BatchNorm(4, momentum=1).momentum == 1 and BatchNorm(4, momentum=0).momentum == 0
    assert Dropout(0).rate == 0


def test_a_layer_whose_weights_cannot_fit_is_refused_before_they_are_made(monkeypatch):
    from gpucnn import cgroup, memory

    # Dense(1000, 1000): 1,000,000 weights and 1,000 biases, and a gradient for each.
    need = 2 * 1_001_000 * np.dtype(backend.dtype()).itemsize
    monkeypatch.setattr(cgroup, "memory_left", lambda: None)
    monkeypatch.setattr(memory, "_machine_available", lambda: need)
    Dense(1000, 1000)
    monkeypatch.setattr(memory, "_machine_available", lambda: need - 1)
    with pytest.raises(NotEnoughMemory, match=r"Dense\(1000, 1000\): 1,001,000 parameters and"):
        Dense(1000, 1000)


def test_glorot_before_sigmoid_and_he_before_relu():
    relu = Model([Dense(400, 300), Activation("relu")]).layers[0].params["W"]
    sig = Model([Dense(400, 300), Activation("sigmoid")]).layers[0].params["W"]
    assert relu.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert sig.std() == pytest.approx(np.sqrt(2 / 700), rel=0.02)  # uniform(+-sqrt(6/700))


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_one_init_scheme_for_every_layer_overrides_the_activations_choice(activation):
    """init=he before sigmoid, or glorot before ReLU: what a sweep over model.init compares."""
    for init, std in (
        ("he", lambda i, o: np.sqrt(2 / i)),
        ("glorot", lambda i, o: np.sqrt(2 / (i + o))),
    ):
        for model in (
            presets.cnn((1, 16, 16), channels=(32, 32), hidden=(300,), activation=activation,
                        n_outputs=3, init=init),
            presets.mlp((256, 300, 200, 3), activation, init=init, input_shape=(1, 16, 16)),
        ):  # fmt: skip
            layers = [layer for layer in model.layers if layer.params]
            assert layers and all(layer.init == init for layer in layers)
            W = layers[1].params["W"]  # 32 x 32 x 3 x 3, or 300 x 200
            fan_in, fan_out = (
                (W.shape[0], W.shape[1]) if W.ndim == 2 else (W.shape[1] * 9, W.shape[0] * 9)
            )
            assert W.std() == pytest.approx(std(fan_in, fan_out), rel=0.05), (init, model)


def test_same_seed_same_initial_weights():
    backend.set_seed(3)
    a = presets.lab_cnn3().state_dict()
    backend.set_seed(3)
    b = presets.lab_cnn3().state_dict()
    backend.set_seed(4)
    c = presets.lab_cnn3().state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.W"], c["0.W"])


def test_weights_round_trip_and_are_checked_on_load(tmp_path):
    model = presets.lab_cnn2()
    model.layers[0].params["W"][...] = 0.5  # the lab's way of setting weights
    path = tmp_path / "w.npz"
    model.save(path)
    other = presets.lab_cnn2()
    other.load(path)
    for (name, p, _), (_, q, _) in zip(model.parameters(), other.parameters()):
        assert np.array_equal(p, q), name
    with pytest.raises(ConfigError, match=r"missing \['12.W'"):
        presets.lab_cnn3().load(path)
    state = model.state_dict()
    with pytest.raises(ConfigError, match=r"missing \['0.b'\], unexpected none"):
        other.load_state_dict({k: v for k, v in state.items() if k != "0.b"})
    with pytest.raises(ConfigError, match=r"missing none, unexpected \['extra'\]"):
        other.load_state_dict({**state, "extra": np.ones(2)})
    np.savez(tmp_path / "bad.npz", **{**model.state_dict(), "0.W": np.ones((8, 1, 5, 5))})
    with pytest.raises(ConfigError, match=r"0.W has shape \(8, 1, 5, 5\).*\(8, 1, 3, 3\)"):
        other.load(tmp_path / "bad.npz")
    (tmp_path / "trunc.npz").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ConfigError, match="cannot read weights"):
        other.load(tmp_path / "trunc.npz")
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_a_layer_whose_output_shape_is_not_what_it_gives_is_named():
    class FirstTwoChannels(Layer):  # of one's own, without output_shape: taken as unchanged
        def forward(self, x, training=False):
            return x[:, :2]

    model = Model([FirstTwoChannels(), Flatten(), Dense(48, 3)]).build((3, 4, 4))
    said = r"gave outputs \(2, 4, 4\) per sample, but its output_shape says \(3, 4, 4\)"
    with pytest.raises(ShapeError, match=rf"layer 0 FirstTwoChannels\(\) {said}.*output_shape"):
        model.forward(np.random.default_rng(0).normal(size=(2, 3, 4, 4)))


@pytest.mark.parametrize("grads", [{}, {"s": np.zeros(2)}])
def test_a_parameter_without_a_gradient_array_of_its_shape_is_named_at_build(grads):
    class Scale(Layer):  # of one's own, with grads forgotten or of another shape
        def __init__(self):
            super().__init__()
            self.params, self.grads = {"s": np.full(3, 0.5)}, grads

    had = "none" if not grads else r"one of shape \(2,\)"
    with pytest.raises(ConfigError, match=rf"layer 0 Scale\(\): params\['s'\] \(3,\) has {had}"):
        Model([Scale(), Flatten(), Dense(48, 3)]).build((3, 4, 4))


@pytest.mark.parametrize("layer", [Conv(3, 1, 2), MaxPool(2), Dense(4, 2), Activation("relu")])
def test_backward_before_forward_says_to_call_forward_first(layer):
    shapes = {Dense: (2, 2)}
    dy = np.random.default_rng(0).normal(size=shapes.get(type(layer), (2, 1, 4, 4)))
    with pytest.raises(AttributeError, match=r"yet: forward sets it, so call forward\(x, training"):
        layer.backward(dy)
    with pytest.raises(AttributeError, match="'Conv' object has no attribute 'nonesuch'"):
        _ = Conv(3, 1, 2).nonesuch  # a misspelt attribute keeps Python's own message

    class Mask(Layer):  # of one's own, with a misspelt name in backward
        def forward(self, x, training=False):
            self._mask = x > 0
            return x * self._mask

        def backward(self, dy):
            return dy * self._msk

    layer = Mask()
    layer.forward(dy)
    with pytest.raises(AttributeError, match=r"^Mask has no _msk \(did you mean '_mask'\?\)$"):
        layer.backward(dy)


def test_load_takes_a_checkpoint_and_names_what_a_file_is_instead(tmp_path):
    from gpucnn.app import checkpoint

    trained = presets.lab_cnn3()
    trained.layers[0].params["W"][...] = 0.25
    checkpoint.save(tmp_path, trained, Adam(), {"epoch": 1})
    model = presets.lab_cnn3()
    model.load(tmp_path / "checkpoint.npz")  # an interrupted run has no model.npz yet
    assert all(np.array_equal(v, trained.state_dict()[k]) for k, v in model.state_dict().items())
    np.save(tmp_path / "w.npy", np.ones(3))
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n")
    for name in ("w.npy", "metrics.csv"):
        with pytest.raises(ConfigError, match=f"{name}: it is not an .npz file.*model.npz"):
            model.load(tmp_path / name)
    trained.save(tmp_path / "model.npz")
    with pytest.raises(ConfigError, match=f"it is a folder: pass {re.escape(str(tmp_path))}/model"):
        model.load(tmp_path)
    trained.save(tmp_path / "weights")  # the name as given; np.savez would add .npz
    np.savez(tmp_path / "arrays", **trained.state_dict())  # arrays.npz
    for asked, meant in (("weights.npz", "weights"), ("arrays", "arrays.npz")):
        with pytest.raises(ConfigError, match=rf"No such file.*did you mean .*/{meant}\?"):
            model.load(tmp_path / asked)
    with pytest.raises(ConfigError, match="No such file") as raised:  # and no file near it
        model.load(tmp_path / "nothing.npz")
    assert "did you mean" not in str(raised.value)


def test_predict_gives_probabilities_in_batches_without_dropout():
    rng = np.random.default_rng(0)
    model = presets.cnn((1, 12, 12), channels=(3,), hidden=(8,), dropout=0.5, n_outputs=4)
    x = rng.normal(size=(7, 1, 12, 12))
    probs = model.predict(x, batch_size=3)
    assert probs.shape == (7, 4) and np.allclose(probs.sum(axis=1), 1)
    assert np.allclose(probs, model.forward(x))  # evaluation mode: no dropout, one batch
    assert np.array_equal(probs, model.predict(x, batch_size=3))


def test_layer_outputs_are_each_layers_own_in_evaluation_mode():
    rng = np.random.default_rng(1)
    model = presets.cnn(
        (1, 12, 12), channels=(3, 4), hidden=(6,), dropout=0.5, n_outputs=3, batch_norm=True
    )
    x = rng.normal(size=(2, 1, 12, 12))
    model.forward(x, training=True)  # batch statistics move away from the initial ones
    outputs = model.layer_outputs(x)
    assert [tuple(y.shape[1:]) for y in outputs] == model.shapes
    inputs = [x, *outputs[:-1]]
    for layer, given, y in zip(model.layers, inputs, outputs, strict=True):
        assert np.array_equal(layer.forward(given), y), layer  # not fused, not training
    relu = [i for i, layer in enumerate(model.layers) if getattr(layer, "name", "") == "relu"]
    assert relu and all(outputs[i].min() == 0 < outputs[i].max() for i in relu)  # before pools
    assert np.array_equal(outputs[-1], model.forward(x))


def test_batch_norm_buffers_are_saved_loaded_and_counted(tmp_path):
    model = presets.cnn((1, 12, 12), channels=(3, 4), hidden=(6,), n_outputs=2, batch_norm=True)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[:3] == ["Conv", "BatchNorm", "Activation"] and kinds.count("BatchNorm") == 3
    x = np.random.default_rng(0).normal(size=(5, 1, 12, 12))
    model.forward(x, training=True)  # moves the running statistics away from 0 and 1
    state = model.state_dict()
    assert {"1.gamma", "1.beta", "1.running_mean", "1.running_var"} <= state.keys()
    model.save(tmp_path / "m.npz")
    again = presets.cnn((1, 12, 12), channels=(3, 4), hidden=(6,), n_outputs=2, batch_norm=True)
    again.load(tmp_path / "m.npz")
    assert all(np.array_equal(state[k], v) for k, v in again.state_dict().items())
    assert np.allclose(again.forward(x), model.forward(x))
    # gamma counts as a weight and beta as a bias; the running statistics are not learned.
    assert model.count_params(bias=True) - model.count_params() == 3 + 4 + 6 + 2 + 3 + 4 + 6
    assert "buffered statistics, not learned" in model.summary()


def test_batch_norm_needs_two_values_per_channel_in_training():
    layer = BatchNorm(3)
    with pytest.raises(ShapeError, match="batches of at least 2.*drop_last=True"):
        layer.forward(np.ones((1, 3)), training=True)
    assert layer.forward(np.ones((1, 3))).shape == (1, 3)  # evaluation: running statistics
    maps = np.random.default_rng(0).normal(size=(1, 3, 2, 1))  # one image of 2 values a channel
    y = layer.forward(maps, training=True)
    assert np.allclose(y.mean(axis=(0, 2, 3)), 0) and np.allclose(y.var(axis=(0, 2, 3)), 1, 1e-3)


def test_a_whole_batch_layer_is_never_split_into_micro_batches():
    from gpucnn.steps import MicroBatchStep, PlainStep, make_step

    model = presets.cnn((1, 12, 12), channels=(2,), hidden=(8,), n_outputs=3, batch_norm=True)
    step = make_step(model, CrossEntropy(), SGD(0.1), threads=2)
    assert isinstance(step, MicroBatchStep) and step.chunk is None  # a share per thread
    step.close()
    with pytest.raises(ConfigError, match="BatchNorm.*whole batch.*chunk=0"):
        MicroBatchStep(model, CrossEntropy(), SGD(0.1), threads=2, chunk=4)

    class BatchStatistics(BatchNorm):  # a whole-batch layer that cannot sum over shares
        sums_shards = False

    layers = [
        Conv(3, 1, 1),
        Flatten(),
        Dense(100, 8),
        BatchNorm(8),
        Dense(8, 8),
        BatchStatistics(8),
    ]
    mine = Model([*layers, Dense(8, 3)]).build((1, 12, 12))  # BatchNorm first, then mine
    assert isinstance(make_step(mine, CrossEntropy(), SGD(0.1), threads=2), PlainStep)

    class WholeBatch(Layer):  # of one's own, saying nothing of shares: it cannot sum them
        whole_batch = True

        def forward(self, x, training=False):
            return x - x.mean(axis=0)

        def backward(self, dy):
            return dy - dy.mean(axis=0)

    own = Model([Conv(3, 1, 1), WholeBatch(), Flatten(), Dense(100, 3)]).build((1, 12, 12))
    assert isinstance(make_step(own, CrossEntropy(), SGD(0.1), threads=2), PlainStep)
    with pytest.raises(ConfigError, match="BatchNorm.*whole batch"):
        MicroBatchStep(mine, CrossEntropy(), SGD(0.1), threads=2, chunk=None)


def test_inputs_of_another_float_dtype_run_in_the_weights_dtype():
    """x / 255.0 of uint8 pixels is float64: a float32 model runs on it in float32, with the
    results it gives x.astype(np.float32), not every layer in float64 at half the speed."""
    backend.use("numpy", dtype="float32", seed=0)
    rng = np.random.default_rng(3)
    pixels, y = rng.integers(0, 256, (6, 1, 8, 8), dtype=np.uint8), np.array([0, 1, 1, 0, 1, 0])
    models = [presets.cnn((1, 8, 8), channels=(2,), hidden=(3,)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    for model, x in zip(models, (pixels / 255.0, (pixels / 255.0).astype(np.float32))):
        assert model.forward(x).dtype == np.float32 and model.predict(x).dtype == np.float32
        train_step(model, BinaryCrossEntropy(), Adam(), x, y)
    for (name, a, _), (_, b, _) in zip(models[0].parameters(), models[1].parameters()):
        assert a.dtype == np.float32 and np.array_equal(a, b), name


def test_saving_onto_a_folder_names_the_folder_not_a_temporary_file(tmp_path):
    model = presets.lab_mlp1()
    (tmp_path / "outputs").mkdir()
    with pytest.raises(IsADirectoryError) as err:
        model.save(tmp_path / "outputs")
    assert err.value.filename == str(tmp_path / "outputs") and err.value.filename2 is None
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]  # no temporary file left


def test_a_batch_norm_before_the_first_conv_learns_too():
    """The input needs no gradient, but a BatchNorm in front of the first Conv does: backward
    stops below the first layer that learns, not below the first Conv or Dense."""
    backend.set_seed(0)
    model = Model([BatchNorm(1), Conv(3, 1, 2), Flatten(), Dense(2 * 4 * 4, 3)])
    model.add(Activation("softmax")).build((1, 6, 6))
    x = np.random.default_rng(0).normal(size=(8, 1, 6, 6))
    y = np.arange(8) % 3
    before = model.state_dict()
    train_step(model, CrossEntropy(), SGD(0.1), x, y)
    after = model.state_dict()
    assert not np.array_equal(after["0.gamma"], before["0.gamma"])
    assert not np.array_equal(after["0.beta"], before["0.beta"])
