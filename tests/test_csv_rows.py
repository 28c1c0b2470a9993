"""Images as rows of a CSV file (gpucnn.data.csv_rows), as Kaggle's MNIST-like sets come."""

import json
import logging

import numpy as np
import pytest

from gpucnn.data import arrays, csv_rows
from gpucnn.errors import DataError

from .helpers import app, tool

QUICK = ["train.epochs=1", "train.batch_size=16", "backend=numpy", "train.progress=false"]


def write_csv(path, labels, images, header="label", label_at=0, fmt="%d"):
    """A CSV of one image a row: its label in column ``label_at``, the pixels in the others,
    under a header naming the label column ``header`` (None: no header)."""
    pixels = np.asarray(images).reshape(len(images), -1)
    rows = []
    for label, row in zip(labels, pixels):
        fields = [fmt % v for v in row]
        fields.insert(label_at, str(label))
        rows.append(",".join(fields))
    if header is not None:
        names = [f"pixel{i + 1}" for i in range(pixels.shape[1])]
        names.insert(label_at, header)
        rows.insert(0, ",".join(names))
    path.write_text("\n".join(rows) + "\n")
    return path


def a_set(rng, n, side=4, classes=3):
    return np.arange(n) % classes, rng.integers(0, 256, (n, side, side))


def test_a_train_csv_with_its_test_twin_gives_both_splits_as_written(tmp_path, caplog):
    rng = np.random.default_rng(0)
    y, x = a_set(rng, 30)
    y_test, x_test = a_set(rng, 9)
    path = write_csv(tmp_path / "fashion-mnist_train.csv", y, x)
    write_csv(tmp_path / "fashion-mnist_test.csv", y_test, x_test)
    with caplog.at_level(logging.INFO):
        raw = arrays.load(path)
    assert "its test split is fashion-mnist_test.csv" in caplog.text
    assert raw.x_train.dtype == np.uint8 and raw.x_train.shape == (30, 1, 4, 4)
    assert np.array_equal(raw.x_train[:, 0], x) and np.array_equal(raw.y_train, y)
    assert np.array_equal(raw.x_test[:, 0], x_test) and np.array_equal(raw.y_test, y_test)
    assert raw.classes == ("0", "1", "2")


def test_without_a_twin_a_stratified_share_is_held_out(tmp_path):
    rng = np.random.default_rng(1)
    y, x = a_set(rng, 30)
    raw = arrays.load(write_csv(tmp_path / "all.csv", y, x), test_fraction=0.2, split_seed=3)
    assert len(raw.y_test) == 6 and np.bincount(raw.y_test).tolist() == [2, 2, 2]
    again = arrays.load(tmp_path / "all.csv", test_fraction=0.2, split_seed=3)
    assert np.array_equal(raw.x_test, again.x_test)  # fixed by split_seed


@pytest.mark.parametrize("name, twin", [("Shapes_TRAIN.CSV", "Shapes_TEST.CSV"),
                                        ("train.csv", "test.csv"),
                                        ("Train_train.csv", "Train_test.csv")])  # fmt: skip
def test_the_twin_is_named_with_the_last_train_as_test_in_its_case(tmp_path, name, twin):
    (tmp_path / twin).write_text("")
    assert csv_rows.test_twin(tmp_path / name) == tmp_path / twin
    assert csv_rows.test_twin(tmp_path / "digits.csv") is None


def test_a_twin_without_labels_is_said_and_a_share_held_out_instead(tmp_path, caplog):
    rng = np.random.default_rng(2)
    y, x = a_set(rng, 30)
    path = write_csv(tmp_path / "train.csv", y, x)
    unlabelled = x[:5].reshape(5, -1)
    (tmp_path / "test.csv").write_text("\n".join(",".join(map(str, r)) for r in unlabelled))
    raw = arrays.load(path, test_fraction=0.2)
    assert "has no labels (16 columns, against 17 in train.csv): it is not read" in caplog.text
    assert len(raw.y_test) == 6 and len(raw.y_train) == 24


@pytest.mark.parametrize("header, label_at", [(None, 0), ("label", 5), ("Class", 16)])
def test_the_label_column_is_the_one_named_so_else_the_first(tmp_path, header, label_at):
    rng = np.random.default_rng(3)
    y, x = a_set(rng, 12)
    raw = arrays.load(write_csv(tmp_path / "a.csv", y, x, header, label_at), test_fraction=0.5)
    rows = np.concatenate([raw.x_train, raw.x_test])[:, 0].reshape(12, -1)
    labels = np.concatenate([raw.y_train, raw.y_test])
    order = np.lexsort(rows.T[::-1])  # the same images, whatever the split
    assert np.array_equal(rows[order], x.reshape(12, -1)[np.lexsort(x.reshape(12, -1).T[::-1])])
    assert sorted(labels.tolist()) == sorted(y.tolist())


def test_pixels_with_fractions_are_used_as_they_are_and_whole_ones_are_eight_bit(tmp_path):
    rng = np.random.default_rng(4)
    y, x = a_set(rng, 12)
    whole = arrays.load(write_csv(tmp_path / "a.csv", y, x, fmt="%.1f"), test_fraction=0.5)
    assert whole.x_train.dtype == np.uint8  # 17.0 is an 8-bit 17
    scaled = arrays.load(write_csv(tmp_path / "b.csv", y, x / 255, fmt="%.6f"), test_fraction=0.5)
    assert scaled.x_train.dtype == np.float32 and 0 < scaled.x_train.max() <= 1


def test_labels_that_are_names_are_numbered_in_sorted_order(tmp_path):
    rng = np.random.default_rng(5)
    _, x = a_set(rng, 12)
    names = np.array(["dog", "cat", "owl"])[np.arange(12) % 3]
    raw = arrays.load(write_csv(tmp_path / "pets.csv", names, x), test_fraction=0.5)
    assert raw.classes == ("cat", "dog", "owl")
    labels = np.concatenate([raw.y_train, raw.y_test])
    assert np.bincount(labels).tolist() == [4, 4, 4]


def bad(tmp_path, text, name="bad.csv"):
    (tmp_path / name).write_text(text)
    return tmp_path / name


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "is empty"),
        ("label,p1,p2,p3,p4\n", "holds no rows of images, only its header"),
        ("label,p1,p2,p3\n0,1,2,3\n", "3 pixel columns (besides the label, column 1) are not"),
        ("label,p1,p2,p3,p4\n0,1,2,3,4\n1,1,x,3,4\n", "line 3, column 3: 'x' is not a number"),
        ("0,1,2,3,4\n\n1,1,2,3\n", "line 3 has 4 values, against 5 on the first"),
        ("label,p1,p2,p3,p4\n0,1,2,3,4\n1.5,1,2,3,4\n", "line 3: the label 1.5 is not a class"),
    ],
)  # fmt: skip
def test_a_csv_that_cannot_be_read_is_refused_naming_the_problem(tmp_path, text, says):
    with pytest.raises(DataError, match=None) as err:
        arrays.load(bad(tmp_path, text))
    assert says in str(err.value) and str(tmp_path / "bad.csv") in str(err.value)


def test_a_twin_of_other_columns_or_labels_is_refused(tmp_path):
    rng = np.random.default_rng(6)
    y, x = a_set(rng, 12)
    path = write_csv(tmp_path / "train.csv", y, x)
    write_csv(tmp_path / "test.csv", y[:4], rng.integers(0, 256, (4, 5, 5)))
    with pytest.raises(DataError, match="has 26 columns against its 17: give both files"):
        arrays.load(path)
    write_csv(tmp_path / "test.csv", np.array(["a", "b", "c", "a"]), x[:4])
    with pytest.raises(DataError, match="one labels its rows with numbers, the other with names"):
        arrays.load(path)


def test_a_csv_trains_from_the_command_line_and_a_new_one_is_evaluated_whole(tmp_path):
    rng = np.random.default_rng(7)
    y, x = a_set(rng, 60, side=10)
    path = write_csv(tmp_path / "digits_train.csv", y, x)
    write_csv(tmp_path / "digits_test.csv", *a_set(rng, 15, side=10))
    run = tmp_path / "run"
    limits = ["data.limit_train=40", "data.limit_test=9"]
    proc = app("data=arrays", f"data.path={path}", *limits, *QUICK, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert sum(summary["balance"]["test"]) == 9  # of the twin's 15 rows
    new = write_csv(tmp_path / "more.csv", *a_set(rng, 30, side=10))
    done = tool("evaluate", run, f"data.path={new}")
    assert done.returncode == 0, done.stderr
    assert "a CSV named with train has its twin named with test evaluated" in done.stderr
    assert "30 images" in done.stdout  # every one: the run's limits were for its own images
    assert "the classes, least recognised first:" in done.stdout  # with their recall
    assert "all of them are used" not in done.stderr
    share = tool("evaluate", run, f"data.path={new}", "data.limit_test=12")
    assert share.returncode == 0 and "12 images" in share.stdout, share.stderr


def test_a_spreadsheets_csv_with_a_byte_order_mark_and_quotes_reads_as_a_plain_one(tmp_path):
    rng = np.random.default_rng(8)
    y, x = a_set(rng, 6)
    plain = arrays.load(write_csv(tmp_path / "plain.csv", y, x, header=None), test_fraction=0.5)
    rows = [",".join(f'"{v}"' for v in (label, *row)) for label, row in zip(y, x.reshape(6, -1))]
    (tmp_path / "sheet.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode())
    sheet = arrays.load(tmp_path / "sheet.csv", test_fraction=0.5)
    assert np.array_equal(sheet.x_train, plain.x_train) and len(sheet.y_train) == 3
    assert np.array_equal(sheet.y_train, plain.y_train)


def test_class_numbers_that_skip_one_are_warned_about_and_kept(tmp_path, caplog):
    rng = np.random.default_rng(9)
    y = np.array([c for c in range(25) if c != 9] * 2)  # Sign Language MNIST: no J
    x = rng.integers(0, 256, (len(y), 4, 4))
    raw = arrays.load(write_csv(tmp_path / "signs.csv", y, x), test_fraction=0.5)
    assert "the labels run from 0 to 24 without 9" in caplog.text
    assert "no image is of class 9" in caplog.text
    assert raw.classes == tuple(str(k) for k in range(25))
    assert sorted(np.concatenate([raw.y_train, raw.y_test]).tolist()) == sorted(y.tolist())


def colour_images(rng, n, side=12):
    """(n, 3, side, side) uint8 pictures: blocks of 3x3 pixels of one colour, with noise, as
    neighbouring pixels of a photograph are alike."""
    blocks = rng.integers(0, 200, (n, 3, side // 3, side // 3))
    noise = rng.integers(0, 40, (n, 3, side, side))
    return (np.kron(blocks, np.ones((3, 3), dtype=blocks.dtype)) + noise).astype(np.uint8)


@pytest.mark.parametrize(
    "order, said",
    [((0, 2, 3, 1), "each pixel's red, green and blue in turn"),  # an (H, W, 3) image flattened
     ((0, 1, 2, 3), "all red values, then the green, then the blue")],  # a (3, H, W) one: CIFAR's
)  # fmt: skip
def test_rgb_rows_are_read_in_the_order_that_keeps_neighbouring_pixels_alike(
    tmp_path, caplog, order, said
):
    rng = np.random.default_rng(10)
    x, y = colour_images(rng, 40), np.arange(40) % 4
    path = write_csv(tmp_path / "skin.csv", y, x.transpose(order), header="label", label_at=432)
    with caplog.at_level(logging.INFO):
        raw = arrays.load(path, test_fraction=0.25)
    assert f"432 pixel columns a row, read as 12x12 RGB images, {said}" in caplog.text
    assert raw.x_train.shape[1:] == (3, 12, 12) and raw.x_train.dtype == np.uint8
    every = np.concatenate([raw.x_train, raw.x_test])
    assert sorted(map(bytes, every)) == sorted(map(bytes, x))  # each image as it was
    assert np.array_equal(csv_rows.images_for(path, (3, 12, 12)), x)  # prediction reads alike


def test_rgb_rows_whose_order_the_pixels_do_not_tell_are_refused(tmp_path):
    rng = np.random.default_rng(11)
    path = write_csv(tmp_path / "noise.csv", np.arange(20) % 2, rng.integers(0, 256, (20, 432)))
    with pytest.raises(DataError, match="12x12 RGB images, but their pixels do not tell"):
        arrays.load(path)
    with pytest.raises(DataError, match="2 pixel columns .* not a square image"):
        arrays.load(write_csv(tmp_path / "two.csv", [0, 1], [[1, 2], [3, 4]]))


def test_an_rgb_csv_trains_and_predicts_from_the_command_line(tmp_path):
    rng = np.random.default_rng(12)
    path = write_csv(tmp_path / "colours.csv", np.arange(60) % 3, colour_images(rng, 60))
    run = tmp_path / "run"
    proc = app("data=arrays", f"data.path={path}", *QUICK, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run / "summary.json").read_text())["input_shape"][0] == 3
    new = write_csv(tmp_path / "new.csv", np.arange(5) % 3, colour_images(rng, 5))
    done = tool("predict", run, new)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 5
    gray = write_csv(tmp_path / "gray.csv", np.arange(5) % 3, rng.integers(0, 256, (5, 12, 12)))
    refused = tool("predict", run, gray)
    assert refused.returncode != 0
    assert "145 columns a row, but the run's images have 432 pixels (12x12 RGB)" in refused.stderr


def test_rgb_rows_of_one_colour_each_are_refused_rather_than_guessed(tmp_path):
    pixels = np.repeat(np.arange(20)[:, None] * 10, 432, axis=1)  # every pixel alike either way
    path = write_csv(tmp_path / "flat.csv", np.arange(20) % 2, pixels)
    with pytest.raises(DataError, match="their pixels do not tell"):
        arrays.load(path)


def test_classes_numbered_by_a_file_are_named_by_data_classes(tmp_path):
    rng = np.random.default_rng(13)
    path = write_csv(tmp_path / "pets.csv", *a_set(rng, 30))
    raw = arrays.named(arrays.load(path), ["cat", "dog", "fox"], path)
    assert raw.classes == ("cat", "dog", "fox")
    with pytest.raises(DataError, match=r"classes gives 2 names, but .* has 3 classes, numbered"):
        arrays.named(arrays.load(path), ["cat", "dog"], path)
    named = write_csv(
        tmp_path / "named.csv", np.array(["cat", "dog"] * 5), rng.integers(0, 9, (10, 4, 4))
    )
    with pytest.raises(
        DataError, match=r"names its classes itself \(cat, dog\): leave data.classes"
    ):
        arrays.named(arrays.load(named), ["a", "b"], named, "data.classes")
    kept = arrays.named(arrays.load(named), ["a", "b"], named, own_names_stand=True)
    assert kept.classes == ("cat", "dog")


def test_data_classes_names_a_csvs_classes_from_the_command_line(tmp_path):
    rng = np.random.default_rng(14)
    y, x = a_set(rng, 60, side=10)
    path = write_csv(tmp_path / "pets.csv", y, x)
    run = tmp_path / "run"
    names = ["data=arrays", f"data.path={path}", "data.classes=[cat,dog,fox]"]
    binary = ["data.task=binary", "data.positive=[fox]", "data.negative=[cat]"]
    proc = app(*names, *binary, *QUICK, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run / "summary.json").read_text())["classes"] == ["cat", "fox"]
    done = tool("evaluate", run)
    assert done.returncode == 0, done.stderr
    assert "fox" in done.stdout and "cat" in done.stdout
    new = write_csv(tmp_path / "more.csv", *a_set(rng, 30, side=10))
    more = tool("evaluate", run, "data=arrays", f"data.path={new}")  # the run's names kept
    assert more.returncode == 0 and "fox" in more.stdout, more.stderr
    own = tmp_path / "own.npz"  # a file that names its classes: they stand, matched by name
    np.savez(own, x_train=x.astype(np.uint8), y_train=y, classes=np.array(["fox", "cat", "dog"]))
    theirs = tool("evaluate", run, f"data.path={own}")
    assert theirs.returncode == 0 and "fox" in theirs.stdout, theirs.stderr
    twice = app(*names[:2], "data.classes=[cat,cat,fox]", *QUICK, f"hydra.run.dir={tmp_path / 'b'}")
    said = twice.stdout + twice.stderr
    assert twice.returncode == 2 and "data.classes names cat more than once" in said
    short = app(*names[:2], "data.classes=[cat,dog]", *QUICK, f"hydra.run.dir={tmp_path / 'c'}")
    said = short.stdout + short.stderr
    assert short.returncode == 5 and "data.classes gives 2 names, but" in said
    other = app("data.classes=[a,b]", *QUICK, f"hydra.run.dir={tmp_path / 'd'}")
    said = other.stdout + other.stderr
    assert other.returncode == 2 and "data.classes does nothing" in said, said
