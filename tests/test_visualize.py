"""python -m gpucnn.visualize: a trained run's filters and one image's feature maps."""

import json

import numpy as np
import pytest

from gpucnn import (
    Activation,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    MaxPool,
    Model,
    backend,
)
from gpucnn.app import evaluate, predict, visualize
from gpucnn.app.experiment import load_splits
from gpucnn.errors import DataError

from .helpers import TINY, app, tool


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished multiclass run, evaluated once."""
    run_dir = tmp_path_factory.mktemp("run")
    proc = app(*TINY, "data.task=multiclass", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    done = tool("evaluate", run_dir)
    assert done.returncode == 0, done.stderr
    return run_dir


def test_a_test_image_is_drawn_as_evaluate_classified_it(run_dir, tmp_path):
    record = json.loads((run_dir / "evaluation.json").read_text())
    test = load_splits(evaluate.load_run(run_dir, [])[0], logged=False).test
    for index in (0, 7):
        out = tmp_path / str(index)
        proc = tool("visualize", run_dir, "--test-image", index, "--out", out)
        assert proc.returncode == 0, proc.stderr
        true = record["classes"][int(test.y[index])]
        guess = record["classes"][record["predicted"][index]]
        assert f"test image {index} ({true}), predicted {guess} (" in proc.stdout
        for name in ("filters.png", "feature_maps.png"):
            assert (out / name).read_bytes().startswith(b"\x89PNG")
    first_bag = int(np.flatnonzero(test.y == record["classes"].index("Bag"))[0])
    for asked in ("Bag", "bag", "8"):
        proc = tool("visualize", run_dir, "--class", asked, "--out", tmp_path / "bag")
        assert f"test image {first_bag} (Bag), predicted " in proc.stdout, proc.stderr
    assert tool("visualize", run_dir).returncode == 0  # into the run's folder, test image 0
    assert (run_dir / "feature_maps.png").is_file() and (run_dir / "filters.png").is_file()


def test_an_image_file_is_prepared_and_classified_as_predict_does(run_dir, tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8))
    drawn = visualize.visualize(run_dir, tmp_path / "out", path)
    (record,) = predict.predict_files(run_dir, [path])
    assert drawn["class"] == record["class"]
    assert drawn["probability"] == pytest.approx(record["probability"], rel=1e-6)
    assert drawn["image"] == str(path)


def test_a_run_whose_images_are_gone_draws_images_of_ones_own(tmp_path):
    """A run of colour arrays, the file then deleted: its test images cannot be loaded, which
    says what to give instead; an image given is drawn."""
    rng = np.random.default_rng(4)
    path = tmp_path / "rgb.npz"
    np.savez(path, x_train=rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8),
             y_train=np.arange(60) % 2)  # fmt: skip
    run_dir = tmp_path / "run"
    proc = app(*TINY, "data=arrays", f"data.path={path}", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    path.unlink()
    proc = tool("visualize", run_dir)
    assert proc.returncode == 2
    assert "the run's test images cannot be loaded (" in proc.stderr
    assert f"python -m gpucnn.visualize {run_dir} IMAGE" in proc.stderr
    np.save(tmp_path / "photo.npy", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    proc = tool("visualize", run_dir, tmp_path / "photo.npy")
    assert proc.returncode == 0, proc.stderr
    assert f"{tmp_path / 'photo.npy'}, predicted " in proc.stdout


def test_bad_inputs_are_one_line_and_exit_2(run_dir, tmp_path):
    np.save(tmp_path / "stack.npy", np.zeros((3, 28, 28), dtype=np.uint8) + 9)
    (tmp_path / "notes.txt").write_text("not a folder")
    for args, says in (
        (("--test-image", 100), "--test-image 100: the run's test split has 100 images: give "
         "a number from 0 to 99"),
        (("--test-image", -1), "give a number from 0 to 99"),
        ((tmp_path / "stack.npy",), "holds 3 images: give one, e.g. np.save('one.npy', x[12])"),
        ((tmp_path,), "a folder: give one image file, or a .npy array of one image"),
        ((tmp_path / "stack.npy", "--test-image", 2), "give an IMAGE or a test image (--test"),
        ((tmp_path / "stack.npy", "--class", "Bag"), "give an IMAGE or a test image (--test"),
        (("--class", "Bag", "--test-image", 2), "--test-image: not allowed with argument --class"),
        (("--class", "Sneakr"), "no such class (did you mean 'Sneaker'?): give one of 0=T-shirt"),
        (("--class", "10"), "--class 10: the run has no such class: give one of 0=T-shirt/top"),
        (("--out", tmp_path / "notes.txt"), "is a file, not a directory"),
    ):  # fmt: skip
        proc = tool("visualize", run_dir, *args)
        assert proc.returncode == 2 and says in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def _model(input_shape, *layers):
    backend.use("numpy", "float64", 0)
    return Model(list(layers)).build(input_shape)


def test_filters_are_drawn_as_the_weights_are():
    model = _model(
        (3, 10, 10),
        Conv(3, 3, 5, pad=1),
        Activation("relu"),
        Conv(3, 5, 20, pad=1),
        MaxPool(2),
        Conv(3, 20, 4),
    )
    first, deeper, last = (layer.params["W"] for i, layer in enumerate(model.layers) if i != 1
                           and i != 3)  # fmt: skip
    titles, tiles = zip(*(visualize._filter_tiles(i, model.layers[i], model) for i in (0, 2, 4)))
    assert tiles[0].shape == (1, 5, 3, 3, 3)  # the colour channels of each filter as one tile
    rgb = first.transpose(0, 2, 3, 1)
    low = rgb.min(axis=(1, 2, 3), keepdims=True)
    assert np.allclose(tiles[0][0], (rgb - low) / (rgb.max(axis=(1, 2, 3), keepdims=True) - low))
    assert np.array_equal(tiles[1], deeper[:8, :5])  # 8 filters of 20, each input channel
    assert "the first 8 of 20 filters (rows), the 5 input channels (columns)" in titles[1]
    assert np.array_equal(tiles[2], last[:4, :16])
    assert "the 4 filters (rows), the first 16 of 20 input channels" in titles[2]


def test_a_network_without_conv_layers_draws_its_first_dense_units_as_images():
    model = _model((1, 4, 5), Flatten(), Dense(20, 40), Activation("relu"), Dense(40, 3))
    title, tiles = visualize._filter_tiles(1, model.layers[1], model)
    assert "the first 32 of 40 units" in title and tiles.shape == (2, 16, 4, 5)
    W = model.layers[1].params["W"]
    assert np.array_equal(tiles[1, 3], W[:, 19].reshape(4, 5))


def test_filters_png_of_a_network_without_conv_layers_shows_its_first_dense_units(
    tmp_path, monkeypatch
):
    model = _model((1, 4, 5), Flatten(), Dense(20, 3), Activation("relu"), Dense(3, 2))
    figures = []
    monkeypatch.setattr(visualize, "save_figure", lambda figure, path: figures.append(figure))
    visualize.plot_filters(tmp_path / "f.png", model)
    ax = figures[0].axes[0]
    assert ax.get_title() == "layer 1 Dense: the weights of the 3 units"
    W = model.layers[1].params["W"]
    tiles = W.T.reshape(1, 3, 4, 5)
    drawn = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert np.array_equal(drawn, visualize.mosaic(tiles), equal_nan=True)


def test_one_conv_layers_filters_fill_rows_and_leave_the_rest_blank():
    model = _model((1, 6, 6), Conv(3, 1, 20), Flatten(), Dense(320, 2))
    _, tiles = visualize._filter_tiles(0, model.layers[0], model)
    assert tiles.shape == (2, 16, 3, 3) and np.isnan(tiles[1, 4:]).all()
    assert np.array_equal(tiles[1, :4], model.layers[0].params["W"][16:, 0])


def test_feature_maps_show_each_layer_that_changes_values_and_the_class_probabilities(
    tmp_path, monkeypatch
):
    model = _model(
        (1, 6, 6),
        Conv(3, 1, 20, pad=1),
        Activation("relu"),
        Dropout(0.5),
        Flatten(),
        Dense(720, 1),
        Activation("sigmoid"),
    )
    x = np.random.default_rng(5).normal(size=(1, 1, 6, 6))
    outputs = model.layer_outputs(x)
    figures = []
    monkeypatch.setattr(visualize, "save_figure", lambda figure, path: figures.append(figure))
    gradient = ("the yes score", visualize.input_gradient(model, x, 1))
    visualize.plot_feature_maps(
        tmp_path / "f.png", model, x[0], outputs, ["no", "yes"], "t", gradient
    )
    axes = figures[0].axes
    labels = [ax.get_ylabel() for ax in axes if ax.get_ylabel()]
    assert labels == [
        "input\n(1, 6, 6)",
        "gradient of\nthe yes score\n(1, 6, 6)",
        "0 Conv\n(20, 6, 6)\n(first 16 of 20)",
        "1 relu\n(20, 6, 6)\n(first 16 of 20)",
        "4 Dense\n(1,)",
        "5 sigmoid\nprobability",
    ]
    drawn = np.ma.filled(axes[2].images[0].get_array(), np.nan)
    assert np.array_equal(drawn, visualize.mosaic(outputs[0][:, :16]), equal_nan=True)
    p = float(outputs[-1][0, 0])
    assert [bar.get_height() for bar in axes[-1].patches] == pytest.approx([1 - p, p])


def test_a_mosaic_holds_each_tile_in_its_place_with_gaps_between():
    tiles = np.random.default_rng(6).normal(size=(2, 3, 16, 8))
    image = visualize.mosaic(tiles)
    gap = 2  # an eighth of a tile's height
    assert image.shape == (2 * 16 + gap, 3 * 8 + 2 * gap)
    assert np.array_equal(image[16 + gap :, 2 * (8 + gap) :], tiles[1, 2])
    assert np.isnan(image[16 : 16 + gap]).all() and np.isnan(image[:, 8 : 8 + gap]).all()
    assert np.isnan(image).sum() == image.size - tiles.size
    rgb = visualize.mosaic(np.random.default_rng(7).uniform(size=(1, 2, 3, 3, 3)), blank=1.0)
    assert rgb.shape == (3, 7, 3) and (rgb[:, 3] == 1.0).all()


def test_a_class_named_by_digits_is_found_by_its_name_first():
    labels = np.array([2, 0, 1, 0])
    assert visualize._first_of_class("10", ["5", "10", "20"], labels) == 2  # the name "10"
    assert visualize._first_of_class("0", ["5", "10", "20"], labels) == 1  # no such name: number
    with pytest.raises(DataError, match="holds no image of it"):
        visualize._first_of_class("b", ["a", "b", "c", "d"], labels[:2])


@pytest.mark.parametrize("head,label", [("softmax", 2), ("sigmoid", 1), ("sigmoid", 0)])
def test_the_input_gradient_is_the_slope_of_the_class_score(head, label):
    """Central differences of the class's logit (minus the one logit for a sigmoid's negative
    class), in evaluation mode: Dropout passes all, BatchNorm uses its running statistics."""
    outputs = 3 if head == "softmax" else 1
    model = _model(
        (2, 5, 5),
        Conv(3, 2, 3, pad=1),
        BatchNorm(3),
        Activation("tanh"),
        Dropout(0.5),
        Flatten(),
        Dense(75, outputs),
        Activation(head),
    )
    rng = np.random.default_rng(9)
    model.forward(rng.normal(size=(4, 2, 5, 5)), training=True)  # running statistics move
    x = rng.normal(size=(1, 2, 5, 5))
    gradient = visualize.input_gradient(model, x, label)

    def score(x):
        logits = model.forward(x, logits=True)[0]
        return logits[label] if outputs > 1 else logits[0] * (1 if label else -1)

    step, slopes = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        slopes[i] = (score(up) - score(down)) / (2 * step)
    assert np.allclose(gradient, slopes[0], atol=1e-7) and np.abs(gradient).max() > 1e-3


def test_smoothgrad_is_the_mean_gradient_of_noisy_copies_of_the_image():
    model = _model((2, 5, 5), Conv(3, 2, 3, pad=1), BatchNorm(3), Activation("relu"), Flatten(),
                   Dense(75, 3), Activation("softmax"))  # fmt: skip
    rng = np.random.default_rng(5)
    model.forward(rng.normal(size=(4, 2, 5, 5)), training=True)  # running statistics move
    x = rng.normal(size=(1, 2, 5, 5))
    smooth = visualize.smooth_gradient(model, x, 2, copies=6, seed=4)
    sigma = visualize.NOISE * (x.max() - x.min())
    noise = np.random.default_rng(4).normal(0, sigma, size=(6, 2, 5, 5))
    one_by_one = [visualize.input_gradient(model, x + n[None], 2) for n in noise]
    assert np.allclose(smooth, np.mean(one_by_one, axis=0), rtol=0, atol=1e-12)
    assert not np.allclose(smooth, visualize.input_gradient(model, x, 2), atol=1e-3)


def test_the_command_draws_a_smoothed_gradient_and_refuses_what_it_cannot(run_dir, tmp_path):
    proc = tool("visualize", run_dir, "--smooth", 8, "--out", tmp_path / "smooth")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "smooth" / "feature_maps.png").read_bytes().startswith(b"\x89PNG")
    proc = tool("visualize", run_dir, "--smooth", -1, "--out", tmp_path / "no")
    assert proc.returncode == 2 and "--smooth -1: give a number of copies" in proc.stderr
    assert not (tmp_path / "no").exists()


def test_a_sweeps_runs_have_their_first_filters_drawn_side_by_side(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    proc = app("-m", *TINY, "model.filter_size=3,5,4", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 8, proc.stderr  # same padding of an even filter: refused
    proc = tool("visualize", sweep)
    assert proc.returncode == 0, proc.stderr
    assert f"{sweep / 'filters.png'}: the first layer's filters of 2 runs" in proc.stdout
    assert (
        "left out, without weights to draw: 2 (" in proc.stderr and "invalid_config" in proc.stderr
    )
    figures = []
    monkeypatch.setattr(visualize, "save_figure", lambda figure, path: figures.append(figure))
    assert visualize.visualize_sweep(sweep, tmp_path / "out") == 2
    axes = figures[0].axes
    assert [ax.get_ylabel() for ax in axes] == [
        "0: model.filter_size=3\nConv 3x3",
        "1: model.filter_size=5\nConv 5x5",
    ]
    model = predict.load_model(sweep / "1")[2]
    W = model.layers[0].params["W"]  # (16, 1, 5, 5)
    drawn = np.ma.filled(axes[1].images[0].get_array(), np.nan)
    assert np.array_equal(drawn, visualize.mosaic(W[None, :16, 0]), equal_nan=True)
    val = {job: json.loads((sweep / job / "summary.json").read_text())["val_accuracy"]
           for job in ("0", "1")}  # fmt: skip
    best = f"e.g. {sweep / max(val, key=val.get)} (its best on validation accuracy "
    for args in (("--class", "Shirt"), ("--test-image", 1)):
        proc = tool("visualize", sweep, *args)
        assert proc.returncode == 2 and "is a sweep's folder, whose runs' filters" in proc.stderr
        assert best in proc.stderr
    proc = tool("evaluate", sweep)  # a command of one run, given the sweep, names its best too
    assert proc.returncode != 0 and "not a run's results: give one run's folder, " + best in (
        proc.stderr
    )


def test_a_sweep_without_a_trained_run_says_so(tmp_path):
    sweep = tmp_path / "sweep"
    proc = app("-m", *TINY, "model.filter_size=4,6", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 8, proc.stderr  # same padding of even filters: both refused
    proc = tool("visualize", sweep)
    assert proc.returncode == 2 and f"no run in {sweep} has weights to draw" in proc.stderr
    assert "left out, without weights to draw: 0 (" in proc.stderr and "1 (" in proc.stderr
