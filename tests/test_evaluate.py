"""python -m gpucnn.evaluate and python -m gpucnn.predict on a trained run."""

import dataclasses
import json
import re
import shutil
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib import font_manager
from PIL import Image

from gpucnn import data
from gpucnn.app import evaluate, predict, results
from gpucnn.app.experiment import load_splits
from gpucnn.data import edges
from gpucnn.errors import ConfigError, DataError

from .helpers import TINY, app, tool


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished multiclass run, evaluated once."""
    run_dir = tmp_path_factory.mktemp("run")
    proc = app(*TINY, "data.task=multiclass", "train.epochs=2", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    done = tool("evaluate", run_dir)
    assert done.returncode == 0, done.stderr
    return run_dir


def test_evaluate_reproduces_the_runs_test_accuracy(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    record = json.loads((run_dir / "evaluation.json").read_text())
    assert record["test_accuracy"] == summary["test_accuracy"]  # exactly
    assert record["test_loss"] == pytest.approx(summary["test_loss"], rel=1e-12)
    confusion = np.array(record["confusion"])
    assert confusion.sum() == record["test_images"] == 100
    assert np.trace(confusion) / confusion.sum() == pytest.approx(record["test_accuracy"])
    support = [c["support"] for c in record["per_class"].values()]
    assert support == confusion.sum(axis=1).tolist()
    for k, stats in enumerate(record["per_class"].values()):
        if confusion[:, k].sum():
            assert stats["precision"] == pytest.approx(confusion[k, k] / confusion[:, k].sum())
    assert (run_dir / "confusion.png").is_file() and (run_dir / "mistakes.png").is_file()
    recalls = [c["recall"] for c in record["per_class"].values() if c["support"]]
    assert record["balanced_accuracy"] == pytest.approx(np.mean(recalls))
    calibrated = record["calibration"]  # the same predictions, binned by confidence
    assert sum(b["images"] for b in calibrated["bins"]) == 100 and len(calibrated["bins"]) == 15
    assert calibrated["accuracy"] == pytest.approx(record["test_accuracy"])
    assert (run_dir / "calibration.png").is_file()


def test_the_figures_say_how_many_images_they_show_with_thousands_separated():
    assert evaluate.mistakes_title(24, 1300, 10000) == (
        "The 24 mistakes the model was surest about (of 1,300)"
    )
    assert evaluate.mistakes_title(0, 0, 10000).startswith("No mistakes: every one of the 10,000")
    assert evaluate.confusion_title(10000, 0.87) == (
        "Confusion matrix: 10,000 test images, accuracy 0.8700"
    )
    assert evaluate.mistakes_title(1, 1, 48) == "The 1 mistake, surest first"
    assert evaluate.mistakes_title(0, 0, 48) == (
        "No mistakes: every one of the 48 test images is classified right"
    )


def test_predict_gives_the_classes_evaluate_found(run_dir, tmp_path):
    splits = load_splits(evaluate.load_run(run_dir, [])[0])
    # The first test images as the files they came from: undo the normalisation and padding.
    x = np.asarray(splits.test.x[:12, 0]) * splits.std[0] + splits.mean[0]
    top = (x.shape[1] - 28) // 2
    raw = np.rint(x[:, top : top + 28, top : top + 28] * 255).astype(np.uint8)
    files = []
    for i, image in enumerate(raw):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
    np.save(tmp_path / "all.npy", raw)
    expected = json.loads((run_dir / "evaluation.json").read_text())["predicted"][:12]
    proc = tool("predict", run_dir, *files, "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["label"] for r in json.loads(proc.stdout)] == expected
    from_array = predict.predict_files(run_dir, [tmp_path / "all.npy"])
    assert [r["label"] for r in from_array] == expected
    rows = raw.reshape(len(raw), -1)
    pixels = ",".join(f"pixel{i}" for i in range(784))  # as Kaggle's test files, without labels
    (tmp_path / "test.csv").write_text(
        f"{pixels}\n" + "\n".join(",".join(map(str, r)) for r in rows)
    )
    labelled = "\n".join(",".join(map(str, [7, *r])) for r in rows)  # labels are not read
    (tmp_path / "train.csv").write_text(f"label,{pixels}\n{labelled}\n")
    for name in ("test.csv", "train.csv"):
        from_rows = predict.predict_files(run_dir, [tmp_path / name])
        assert [r["label"] for r in from_rows] == expected
        assert from_rows[3]["image"] == f"{tmp_path / name}[3]"
    (tmp_path / "short.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match=r"3 columns a row, but the run's images have 784 pixels"):
        predict.predict_files(run_dir, [tmp_path / "short.csv"])
    lines = tool("predict", run_dir, files[0]).stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{files[0]}\t")
    np.save(tmp_path / "scaled.npy", raw / np.float32(255))  # floats as training saw them
    from_floats = predict.predict_files(run_dir, [tmp_path / "scaled.npy"])
    assert [r["label"] for r in from_floats] == expected
    np.save(tmp_path / "bytes_as_floats.npy", raw.astype(np.float32))
    proc = tool("predict", run_dir, tmp_path / "bytes_as_floats.npy")
    assert proc.returncode == 2
    assert "values from 0 to 255, but the run's training images were 0 to 1" in proc.stderr
    assert "floats of 0-255? divide them by 255, or give uint8 images" in proc.stderr
    np.save(tmp_path / "ints.npy", raw.astype(np.int64))
    with pytest.raises(DataError, match=r"got int64: their values are 0-255; give x.astype\("):
        predict.predict_files(run_dir, [tmp_path / "ints.npy"])


def test_predict_top_k_gives_the_likeliest_classes_first(run_dir, tmp_path):
    image = tmp_path / "one.npy"
    np.save(image, np.random.default_rng(11).integers(0, 256, (28, 28), dtype=np.uint8))
    (record,) = predict.predict_files(run_dir, [image], top=3)
    (plain,) = predict.predict_files(run_dir, [image])
    assert "top" not in plain and {k: record[k] for k in plain} == plain
    probabilities = [c["probability"] for c in record["top"]]
    assert record["top"][0]["class"] == plain["class"] and len(record["top"]) == 3
    assert probabilities == sorted(probabilities, reverse=True) and probabilities[2] > 0
    line = tool("predict", run_dir, image, "--top", 3).stdout.strip().split("\t")
    assert line[0] == f"{image}[0]" and line[1::2] == [c["class"] for c in record["top"]]
    assert [float(p) for p in line[2::2]] == pytest.approx(probabilities, abs=5e-5)
    for top in (0, 11):
        proc = tool("predict", run_dir, image, "--top", top)
        assert proc.returncode == 2
        assert f"--top {top}: the run tells 10 classes apart: give 1 to 10" in proc.stderr


def _test_images_as_bytes(run_dir, n):
    """The run's first ``n`` test images as uint8 (n, 28, 28), as the files they came from:
    the normalisation and padding undone."""
    splits = load_splits(evaluate.load_run(run_dir, [])[0])
    x = np.asarray(splits.test.x[:n, 0]) * splits.std[0] + splits.mean[0]
    return np.rint(data.unpadded(x[:, None], (1, 28, 28))[:, 0] * 255).astype(np.uint8)


def test_images_light_where_the_training_ones_were_dark_are_warned_about(run_dir, tmp_path):
    """Fashion-MNIST is light clothes on black: a photo of a dark shirt on white paper was
    classified with a high probability and no word of doubt."""
    assert json.loads((run_dir / "summary.json").read_text())["dark_edges"] > 0.9
    raw = _test_images_as_bytes(run_dir, 6)
    files = []
    for i, image in enumerate(raw):
        Image.fromarray(image).save(tmp_path / f"as_trained{i}.png")
        files.append(tmp_path / f"as_trained{i}.png")
    for i, image in enumerate(255 - raw[:3]):  # a tall photo: fitted with black at its sides
        Image.fromarray(image).resize((28, 40)).save(tmp_path / f"on_white{i}.png")
        files.append(tmp_path / f"on_white{i}.png")
    np.save(tmp_path / "on_white.npy", 255 - raw[3:])
    proc = tool("predict", run_dir, *files, tmp_path / "on_white.npy", "--json")
    assert proc.returncode == 0, proc.stderr
    flagged = [r["image"] for r in json.loads(proc.stdout) if r.get("background_unlike_training")]
    inverted = [str(f) for f in files[6:]] + [f"{tmp_path / 'on_white.npy'}[{i}]" for i in range(3)]
    assert flagged == inverted
    named = f"{files[6]}, {files[7]}, {files[8]} and 3 more (6 of 12 images)"
    assert f"warning: light at the edges: {named}, where the run's training" in proc.stderr
    assert "invert them first (255 - value for 8-bit images)" in proc.stderr
    quiet = tool("predict", run_dir, *files[:6])
    assert quiet.returncode == 0 and "at the edges" not in quiet.stderr, quiet.stderr
    more = _test_images_as_bytes(run_dir, 20)  # every class, nine tenths on white
    x, y = np.concatenate([255 - more[:18], more[18:]]), np.arange(20) % 10
    np.savez(tmp_path / "on_white.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    proc = tool("evaluate", copy, "data=arrays", f"data.path={tmp_path / 'on_white.npz'}")
    assert proc.returncode == 0, proc.stderr
    assert "warning: light at the edges: the test images of data arrays (18 of 20 images)" in (
        proc.stderr
    )
    proc = tool("evaluate", copy)
    assert proc.returncode == 0 and "at the edges" not in proc.stderr, proc.stderr


def test_a_warning_needs_training_images_of_one_background():
    """Dark objects on white are the other way round; photos of every background are not
    checked (a light one is no stranger to such a model than a dark one)."""
    rng = np.random.default_rng(8)
    dark = rng.uniform(0, 0.2, (20, 1, 6, 6))
    dark[:, :, 2:4, 2:4] = 0.9  # a light object in the middle of each
    light = 1 - dark
    shares = edges.dark_shares(np.concatenate([dark, light]), (0.0, 1.0))
    assert shares.tolist() == [1.0] * 20 + [0.0] * 20
    assert (
        edges.unlike_training(shares, training_dark_share=0.05).tolist()
        == [True] * 20 + [False] * 20
    )
    assert not edges.unlike_training(shares, training_dark_share=0.5).any()
    warning = edges.warning("x", 3, 4, 0.05)
    assert "dark at the edges: x (3 of 4 images), where the run's training images were light" in (
        warning
    )
    assert "(95% of their edge pixels)" in warning and "objects on light only" in warning


def test_colour_mistakes_are_drawn_on_the_training_images_scale(tmp_path, monkeypatch):
    """RGB floats used as they were in training (0-255) were clipped to [0, 1]: every mistake
    was drawn white."""
    images = np.random.default_rng(9).uniform(0, 255, (3, 3, 4, 5))
    figures = []
    monkeypatch.setattr(evaluate, "save_figure", lambda figure, path: figures.append(figure))
    truth, probs = np.zeros(3, dtype=int), np.array([[0.1, 0.9]] * 3)
    evaluate._plot_mistakes(tmp_path / "m.png", images, truth, probs, ["a", "b"], (0.0, 255.0))
    drawn = figures[0].axes[0].images[0].get_array()
    assert np.allclose(drawn, images[0].transpose(1, 2, 0) / 255)


def test_each_mistake_is_shown_with_its_number_in_the_test_split(tmp_path, monkeypatch):
    images = np.random.default_rng(8).uniform(size=(4, 1, 5, 5))
    figures = []
    monkeypatch.setattr(evaluate, "save_figure", lambda figure, path: figures.append(figure))
    truth, probs = (
        np.array([0, 1, 1, 0]),
        np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]]),
    )
    evaluate._plot_mistakes(tmp_path / "m.png", images, truth, probs, ["a", "b"])
    titles = [ax.get_title() for ax in figures[0].axes if ax.get_title()]
    assert titles == ["#1 true b\npred a (0.80)", "#3 true a\npred b (0.60)"]


def test_bad_inputs_are_one_line_and_exit_2(run_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    for args, says in (
        (("evaluate", tmp_path), "holds no readable run summary"),
        (("predict", run_dir.parent, tmp_path / "broken.png"), "give one run's folder, e.g. "),
        (("predict", run_dir, tmp_path / "notes.txt"), "give image files (.bmp"),
        (("predict", run_dir, tmp_path / "broken.png"), "not a readable image"),
        (
            ("evaluate", run_dir, "data=fashion"),
            "data=fashion: no such data config; choose one of "
            "arrays, fashion_mnist, fashion_mnist_mini, folder, mnist",
        ),
        (
            ("evaluate", run_dir, "data.limit_tset=50"),
            "data.limit_tset is not a setting: nothing reads it (did you mean data.limit_test?)",
        ),
        (("evaluate", run_dir, "eval_batch_size=64"), "(did you mean train.eval_batch_size?)"),
        (("evaluate", run_dir, "data.limit_test=many"), "data.limit_test=many: Value 'many'"),
        (("evaluate", run_dir, "data=folder"), "data=folder needs data.root=DIR"),
        (("evaluate", run_dir, "--out", tmp_path / "notes.txt"), "is a file, not a directory"),
        (
            ("evaluate", run_dir, "data=fashion_mnist_mini", "data.task=binary"),
            "data.task=binary: the run's model was trained for data.task=multiclass",
        ),
        (
            ("evaluate", run_dir, "model.filter_size=5"),
            "model.filter_size=5: evaluation keeps the run's model and training settings",
        ),
        (
            ("evaluate", run_dir, "+data.limit_test=50"),
            "nothing is added or removed: give data.limit_test=50",
        ),
        (
            ("evaluate", run_dir, "data=fashion_mnist", "data.test_fraction=0.5"),
            "data.test_fraction does nothing with data=fashion_mnist: only data=folder or "
            "data=arrays read it",
        ),
    ):
        proc = tool(*args)
        assert proc.returncode == 2, proc.stderr
        assert says in proc.stderr and "Traceback" not in proc.stderr


def test_where_it_runs_is_checked_naming_the_key(run_dir, tmp_path):
    """The library's own checks, later, named no key ("batch_size must be a positive
    integer"), and predict took a setting for a file of a kind it does not read."""
    for override, says in (
        ("backend.dtype=float16", "backend.dtype='float16' is unknown: choose float32 or"),
        ("backend=gpu", "backend.name='gpu' is unknown: choose auto, numpy or cupy"),
        ("backend.kernels=slow", "backend.kernels='slow' is unknown: choose fast or reference"),
        ("train.eval_batch_size=0", "train.eval_batch_size=0 must be a positive integer"),
    ):
        with pytest.raises(ConfigError, match=re.escape(says)):
            evaluate.load_run(run_dir, [override])
    with pytest.raises(DataError, match="backend=numpy: predict takes no settings, only images"):
        predict.image_files([Path("backend=numpy")])
    with pytest.raises(DataError, match="gone.png: no such file or folder"):
        predict.image_files([tmp_path / "gone.png"])


def test_a_run_that_did_not_finish_is_evaluated_at_its_last_checkpoint(run_dir, tmp_path):
    stopped = tmp_path / "stopped"  # as a run stopped in its last epoch leaves it, say
    shutil.copytree(run_dir, stopped, ignore=shutil.ignore_patterns("model.npz", "evaluation*"))
    proc = tool("evaluate", stopped)
    assert proc.returncode == 0, proc.stderr
    assert (
        "has no model.npz" in proc.stderr
        and "its last checkpoint keeps, checkpoint.npz" in proc.stderr
    )
    record = json.loads((stopped / "evaluation.json").read_text())
    finished = json.loads((run_dir / "evaluation.json").read_text())
    assert record["weights"] == "checkpoint.npz" and finished["weights"] == "model.npz"
    assert record["predicted"] == finished["predicted"]  # the last epoch's weights are the final
    image = tmp_path / "one.npy"
    np.save(image, np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))
    assert tool("predict", stopped, image).stdout == tool("predict", run_dir, image).stdout
    (stopped / "checkpoint.npz").unlink()
    (stopped / "checkpoint.prev.npz").unlink(missing_ok=True)
    proc = tool("evaluate", stopped)
    assert proc.returncode == 2 and "has no model.npz and no checkpoint" in proc.stderr
    refused = tmp_path / "refused"  # a run refused before training says why in its summary
    proc = app(*TINY, "train.batch_size=1000", f"hydra.run.dir={refused}")
    assert proc.returncode == 2
    for command, *images in (("evaluate",), ("predict", image), ("visualize",)):
        proc = tool(command, refused, *images)
        assert proc.returncode == 2 and (
            "the run stopped before writing either (it ended invalid_config: "
            "train.batch_size=1000 is larger than the" in proc.stderr
        ), (command, proc.stderr)


def test_an_evaluation_that_cannot_be_written_is_one_line_and_exit_7(run_dir, tmp_path):
    (tmp_path / "file").write_text("in the way")
    proc = tool("evaluate", run_dir, "--out", tmp_path / "file" / "inside")
    assert proc.returncode == 7, proc.stderr
    assert "cannot write into" in proc.stderr and "Traceback" not in proc.stderr


def test_another_data_config_keeps_the_task_the_model_was_trained_for(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    own = (copy / "evaluation.json").read_bytes()
    proc = tool("evaluate", copy, "data=fashion_mnist_mini", "data.limit_test=60")
    assert proc.returncode == 0, proc.stderr
    written = copy / "evaluations" / "data=fashion_mnist_mini,data.limit_test=60"
    assert f"{written / 'evaluation.json'}, confusion.png, mistakes.png" in proc.stdout
    record = json.loads((written / "evaluation.json").read_text())
    assert record["overrides"] == ["data=fashion_mnist_mini", "data.limit_test=60"]
    assert record["test_images"] == 60 and len(record["classes"]) == 10  # still multiclass
    assert (written / "confusion.png").is_file() and (written / "mistakes.png").is_file()
    assert (written / "calibration.png").is_file()
    assert "\ncalibration: mean confidence " in proc.stdout
    assert (copy / "evaluation.json").read_bytes() == own  # the run's own evaluation stays
    elsewhere = tool("evaluate", copy, "data.limit_test=40", "--out", tmp_path / "mine")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert json.loads((tmp_path / "mine" / "evaluation.json").read_text())["test_images"] == 40


def test_the_images_are_normalised_as_in_training(run_dir, tmp_path, monkeypatch):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    used = []

    def spy(cfg, normalisation=None, **how):
        splits = load_splits(cfg, normalisation, **how)
        used.append((splits.mean, splits.std))
        return splits

    monkeypatch.setattr(evaluate, "load_splits", spy)
    evaluate.evaluate_run(copy, ["data=fashion_mnist_mini", "data.limit_test=60"])
    norm = json.loads((copy / "summary.json").read_text())["normalisation"]
    assert used == [(tuple(norm["mean"]), tuple(norm["std"]))]  # not the other set's own


def test_a_folder_stands_for_the_images_under_it(run_dir, tmp_path):
    rng = np.random.default_rng(3)
    names = ["b.png", "a.png", "deeper/c.png", ".hidden/d.png", ".e.png"]
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    records = predict.predict_files(run_dir, [tmp_path])
    assert [r["image"] for r in records] == [str(tmp_path / n) for n in sorted(names[:3])]
    one_by_one = predict.predict_files(run_dir, [tmp_path / n for n in sorted(names[:3])])
    assert [r["label"] for r in records] == [r["label"] for r in one_by_one]
    (tmp_path / "empty").mkdir()
    proc = tool("predict", run_dir, tmp_path / "empty")
    assert proc.returncode == 2 and "a folder without image files (.bmp" in proc.stderr
    (tmp_path / "deeper" / "broken.png").write_bytes(b"\x89PNG cut short")
    proc = tool("predict", run_dir, tmp_path, "--json")  # one bad file: skipped, and said so
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)  # every file found, in order, the broken one with why
    broken = str(tmp_path / "deeper" / "broken.png")
    found = [r["image"] for r in records]
    assert [r["image"] for r in listed] == [*found[:2], broken, found[2]]
    assert listed[2].keys() == {"image", "skipped"}
    assert listed[2]["skipped"].startswith(f"{broken}: not a readable image")
    assert [r["label"] for r in listed if "label" in r] == [r["label"] for r in records]
    assert f"warning: skipped {broken}: not a readable" in proc.stderr
    proc = tool("predict", run_dir, tmp_path)
    assert broken not in proc.stdout and len(proc.stdout.splitlines()) == 3


def test_a_file_name_with_a_tab_or_newline_is_one_line_of_three_columns(run_dir, tmp_path, capsys):
    odd = tmp_path / "a\tb\nc.png"
    Image.fromarray(_test_images_as_bytes(run_dir, 1)[0]).save(odd)
    assert predict.main([str(run_dir), str(odd)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    name, _, probability = line.split("\t")
    assert name == f"{tmp_path}/a\\tb\\nc.png" and 0 < float(probability) <= 1


def test_data_of_other_classes_is_refused_or_warned_about(run_dir, tmp_path):
    rng = np.random.default_rng(4)
    for classes in (3, 10):
        y = np.arange(60) % classes  # every class in both splits
        x = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
        np.savez(tmp_path / f"{classes}.npz", x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    three = tool("evaluate", copy, "data=arrays", f"data.path={tmp_path / '3.npz'}")
    assert three.returncode == 2
    assert "trained on 10 classes (T-shirt/top, Trouser," in three.stderr
    assert "but data arrays has 3 (0, 1, 2): evaluate it on data with the same" in three.stderr
    floats = {
        k: v.astype(np.float32) if k.startswith("x") else v
        for k, v in np.load(tmp_path / "10.npz").items()
    }
    np.savez(tmp_path / "floats.npz", **floats)  # the same images, as floats of 0-255
    unscaled = tool("evaluate", copy, "data=arrays", f"data.path={tmp_path / 'floats.npz'}")
    assert unscaled.returncode == 2
    assert "the test images of data arrays: values from 0 to 255, but the run's" in unscaled.stderr
    ten = tool("evaluate", copy, "data=arrays", f"data.path={tmp_path / '10.npz'}")
    assert ten.returncode == 0, ten.stderr
    assert "\nwarning: the classes of data arrays (0, 1, 2," in ten.stderr
    assert "are not named as the run's (T-shirt/top," in ten.stderr
    assert "labels are compared by number" in ten.stderr


def test_data_without_a_binary_runs_classes_is_refused_saying_so(tmp_path):
    """The refusal advised choosing other classes or task=multiclass, which evaluation keeps."""
    rng = np.random.default_rng(5)
    for name, classes in (("pets", ["cat", "dog", "owl"]), ("letters", ["a", "b"])):
        y = np.arange(60) % len(classes)
        x = rng.integers(0, 256, (60, 12, 12), dtype=np.uint8)
        np.savez(
            tmp_path / f"{name}.npz", x_train=x, y_train=y, x_test=x, y_test=y, classes=classes
        )
    run = tmp_path / "run"
    pets = ("data=arrays", f"data.path={tmp_path / 'pets.npz'}", "data.task=binary")
    proc = app(*TINY, *pets, "data.positive=[dog]", "data.negative=[cat]", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    said = "the run tells dog from cat apart (data.positive=['dog'], data.negative=['cat']), but "
    for data_, classes in (
        (["data=fashion_mnist_mini"], "0=T-shirt/top, 1=Trouser, 2=Pullover, 3=Dress, 4=Coat"),
        ([f"data.path={tmp_path / 'letters.npz'}"], "0=a, 1=b"),
    ):
        proc = tool("evaluate", run, *data_)
        assert proc.returncode == 2, proc.stderr
        assert said in proc.stderr and f"has other classes ({classes}" in proc.stderr
        assert "evaluate it on data with those classes" in proc.stderr
        assert "task=multiclass" not in proc.stderr


def test_a_run_trained_on_cupy_is_evaluated_on_numpy_without_a_gpu(
    run_dir, tmp_path, monkeypatch, caplog
):
    from gpucnn import backend

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["config"]["backend"]["name"] = "cupy"
    (copy / "summary.json").write_text(json.dumps(summary))
    monkeypatch.setattr(backend, "cupy_available", lambda: (False, "no GPU in this test"))
    with caplog.at_level("INFO"):
        record = evaluate.evaluate_run(copy)
    assert record["test_accuracy"] == summary["test_accuracy"]
    assert "trained on CuPy, which cannot run here (no GPU in this test)" in caplog.text
    assert evaluate._backend_name("cupy", ["backend=cupy"]) == "cupy"  # asked for: kept
    proc = tool("evaluate", copy, "backend=numpy")
    assert proc.returncode == 0, proc.stderr


def test_without_a_run_directory_only_that_is_said_to_be_missing(capsys):
    """The overrides are optional: argparse must not list them among the missing arguments."""
    from gpucnn.app.evaluate import main

    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    assert capsys.readouterr().err.strip().endswith("the following arguments are required: run_dir")


def test_settings_the_schema_lacks_are_left_out_and_named(run_dir, tmp_path, caplog):
    """A run saved with keys nothing reads (``+train.lr=...`` once added them) still evaluates;
    a value this version cannot take is one line naming the key."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["config"]["train"]["lr"] = 0.1
    summary["config"]["extras"] = {"note": "x"}
    (copy / "summary.json").write_text(json.dumps(summary))
    with caplog.at_level("WARNING"):
        record = evaluate.evaluate_run(copy)
    assert record["test_accuracy"] == summary["test_accuracy"]
    assert "holds train.lr, extras.note, which this version does not read" in caplog.text
    summary["config"]["train"]["epochs"] = "ten"
    (copy / "summary.json").write_text(json.dumps(summary))
    for command in ("evaluate", "predict"):
        proc = tool(command, copy, *([tmp_path] if command == "predict" else []))
        assert proc.returncode == 2, proc.stderr
        assert "summary.json: train.epochs: Value 'ten'" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_figures_fall_back_to_an_installed_font_for_class_names_in_other_scripts(monkeypatch):
    fonts = font_manager.fontManager.ttflist
    dejavu = next(font for font in fonts if font.name == "DejaVu Sans")
    wide = dataclasses.replace(dejavu, name="WenQuanYi Zen Hei")  # as if it were installed
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [*fonts, wide])
    with matplotlib.rc_context():
        assert results.pyplot().rcParams["font.family"][:2] == ["DejaVu Sans", "WenQuanYi Zen Hei"]


@pytest.mark.skipif(
    not any(f.name in results.WIDE_FONTS for f in font_manager.fontManager.ttflist),
    reason="no font for Chinese installed (apt-get install fonts-wqy-zenhei)",
)
def test_a_chinese_class_name_is_drawn_not_left_as_a_missing_glyph(tmp_path):
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of each glyph no font has
        evaluate._plot_confusion(tmp_path / "c.png", np.eye(2, dtype=int), ("猫", "狗"), 1.0)
    assert (tmp_path / "c.png").stat().st_size > 0


def test_the_line_printed_counts_test_images_with_thousands_separated(
    monkeypatch, tmp_path, capsys
):
    from gpucnn.app import evaluate

    confusion = np.array([[4500, 500], [871, 4129]])
    record = {"test_accuracy": 0.8629, "test_loss": 0.3843, "test_images": 10000}
    record.update(classes=["a", "b"], confusion=confusion.tolist())
    record["per_class"] = evaluate._per_class(confusion, record["classes"])
    record["calibration"] = {"confidence": 0.9, "accuracy": 0.8629, "ece": 0.04, "bins": []}
    monkeypatch.setattr(evaluate, "evaluate_run", lambda *args: record)
    assert evaluate.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy 0.8629, loss 0.3843 on 10,000 images: " in out
    assert "  b        5,000   0.826      0.892  a (17.4%)" in out  # and the classes after it


def test_the_first_line_gives_the_balanced_accuracy_where_classes_are_unequal():
    from gpucnn.app import evaluate

    confusion = np.array([[90, 10, 0], [5, 5, 0], [0, 0, 0]])  # 100 of a, 10 of b, none of c
    per_class = evaluate._per_class(confusion, ["a", "b", "c"])
    assert evaluate.balanced_accuracy(per_class) == pytest.approx((0.9 + 0.5) / 2)  # not c's
    record = {"test_accuracy": 95 / 110, "test_loss": 0.3, "test_images": 110}
    record.update(per_class=per_class, balanced_accuracy=0.7)
    assert evaluate.accuracy_text(record) == (
        "test accuracy 0.8636, loss 0.3000 on 110 images (classes of unequal sizes: balanced "
        "accuracy 0.7000)"
    )
    even = evaluate._per_class(np.array([[9, 1], [3, 7]]), ["a", "b"])
    record.update(per_class=even, test_accuracy=0.8, test_images=20)
    assert evaluate.accuracy_text(record) == "test accuracy 0.8000, loss 0.3000 on 20 images"


def test_the_runs_classes_in_another_order_are_matched_by_name(run_dir, tmp_path):
    """An .npz whose classes array lists the run's classes otherwise: label k there is not
    the run's label k, and comparing by number would score a good model near zero."""
    from gpucnn import data

    raw = data.load("fashion_mnist_mini")
    names = np.array(raw.classes)
    order = np.random.default_rng(5).permutation(len(names))  # this file's class k: order[k]
    relabel = np.argsort(order)  # the run's label -> this file's
    x, y = raw.x_test[:300], raw.y_test[:300]
    np.savez(tmp_path / "same.npz", x_train=x, y_train=y, x_test=x, y_test=y, classes=names)
    np.savez(tmp_path / "other.npz", x_train=x, y_train=relabel[y], x_test=x,
             y_test=relabel[y], classes=names[order])  # fmt: skip
    records = []
    for name in ("same", "other"):
        copy = tmp_path / name / "run"
        shutil.copytree(run_dir, copy)
        proc = tool("evaluate", copy, "data=arrays", f"data.path={tmp_path / name}.npz")
        assert proc.returncode == 0, proc.stderr
        assert "not named as the run's" not in proc.stderr
        (record,) = (copy / "evaluations").glob("*/evaluation.json")
        records.append(json.loads(record.read_text()))
    assert "the classes of data arrays are the run's in another order" in proc.stderr
    same, other = records
    assert other["classes"] == same["classes"] == names.tolist()
    assert other["confusion"] == same["confusion"] and other["predicted"] == same["predicted"]
    assert other["test_accuracy"] == same["test_accuracy"] > 0.3  # chance: 0.1


def test_one_image_saved_with_np_save_is_one_image_in_either_layout(tmp_path):
    """A photo (H, W, C) saved as it is was read as H grayscale images of the wrong size."""
    rng = np.random.default_rng(6)
    photo = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)  # H != W: the layouts differ
    layouts = {"hwc": photo, "chw": photo.transpose(2, 0, 1), "stack": np.stack([photo] * 4)}
    read = {}
    for name, array in layouts.items():
        np.save(tmp_path / f"{name}.npy", array)
        read[name] = predict.read_images(tmp_path / f"{name}.npy", (3, 8, 6), "pad")
    assert [n for n, _, _ in read["hwc"]] == [f"{tmp_path / 'hwc.npy'}[0]"]
    for name in ("hwc", "chw", "stack"):
        assert all(np.array_equal(image, photo.transpose(2, 0, 1)) for _, image, _ in read[name])
    assert len(read["chw"]) == 1 and len(read["stack"]) == 4
    gray = rng.integers(0, 256, (8, 6, 1), dtype=np.uint8)
    np.save(tmp_path / "gray.npy", gray)
    ((_, image, _),) = predict.read_images(tmp_path / "gray.npy", (1, 8, 6), "pad")
    assert np.array_equal(image, gray.transpose(2, 0, 1))
    # Gray images for a colour run need channels, not resizing (which said "resize them").
    np.save(tmp_path / "grays.npy", np.stack([gray[..., 0]] * 4))
    fix = "give them 3 channels (np.stack([x] * 3, axis=-1) for gray ones), or give image files"
    with pytest.raises(DataError, match=re.escape(f"trained on (3, 8, 6): {fix}")):
        predict.read_images(tmp_path / "grays.npy", (3, 8, 6), "pad")
    with pytest.raises(DataError, match=r"trained on \(1, 9, 6\): resize them, or give image"):
        predict.read_images(tmp_path / "grays.npy", (1, 9, 6), "pad")
    np.save(tmp_path / "none.npy", np.empty((0, 8, 6), dtype=np.uint8))  # a traceback before
    with pytest.raises(DataError, match=r"none.npy: holds no images \(an array of shape \(0, 8"):
        predict.read_images(tmp_path / "none.npy", (1, 8, 6), "pad")


def test_the_printed_table_puts_the_least_recognised_class_first_with_what_it_is_taken_for():
    classes = ["T-shirt/top", "Trouser", "Shirt", "Bag"]
    confusion = np.array([[8, 0, 2, 0], [0, 10, 0, 0], [5, 0, 4, 1], [0, 0, 0, 0]])
    record = {
        "classes": classes,
        "confusion": confusion.tolist(),
        "per_class": evaluate._per_class(confusion, classes),
    }
    lines = evaluate.per_class_text(record)
    assert lines[0] == "the classes, least recognised first:"  # Bag has no test image
    rows = [line.split() for line in lines[2:-1]]
    assert [r[0] for r in rows] == ["Shirt", "T-shirt/top", "Trouser"]
    assert rows[0][1:] == ["10", "0.400", "0.667", "T-shirt/top", "(50.0%)"]
    assert rows[2][-1] == "-"  # never mistaken
    mistaken = "Shirt as T-shirt/top (5), T-shirt/top as Shirt (2), Shirt as Bag (1)"
    assert lines[-1] == f"most often mistaken: {mistaken}"
    shown = evaluate.per_class_text(record, shown=1)
    assert shown[0] == "the 1 class least recognised, of 3:" and len(shown) == 4
    perfect = {**record, "confusion": np.diag([3, 3, 3, 0]).tolist()}
    perfect["per_class"] = evaluate._per_class(np.diag([3, 3, 3, 0]), classes)
    assert not evaluate.per_class_text(perfect)[-1].startswith("most often mistaken")
