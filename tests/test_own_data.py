"""Users' own data: a folder of images per class (data=folder) and an .npz of arrays
(data=arrays), trained, evaluated and predicted from end to end."""

import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from gpucnn.data import arrays, check_scale, folder, prepare, read_image
from gpucnn.errors import ConfigError, DataError

from .helpers import app, tool

QUICK = ["train.epochs=2", "train.batch_size=16", "backend=numpy", "train.progress=false"]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Decoded folders are cached here, not in the home directory (subprocesses inherit it)."""
    monkeypatch.setenv("GPUCNN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def shape_image(kind, size, rng):
    """A noisy uint8 (size, size) picture of a disc (0), a square (1) or stripes (2)."""
    yy, xx = np.mgrid[:size, :size] / size
    ink = [
        (xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.1,
        (abs(xx - 0.5) < 0.3) & (abs(yy - 0.5) < 0.3),
        np.sin(xx * 20) > 0,
    ][kind]
    return (ink * 180 + rng.integers(0, 70, ink.shape)).astype(np.uint8)


def image_folder(root, per_class=30, names=("disc", "square", "stripes"), seed=0):
    """``root/<class>/<i>.png|jpg``: some RGB, some of other sizes; returns ``root``."""
    rng = np.random.default_rng(seed)
    for kind, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = shape_image(kind, 32 if i % 4 else 40 + i % 5, rng)
            if i % 3 == 0:
                image = np.stack([image, image // 2, image], axis=-1)  # RGB
            Image.fromarray(image).save(root / name / (f"{i}.jpg" if i % 5 == 1 else f"{i}.png"))
    return root


def test_a_folder_with_a_corrupt_file_trains_end_to_end_and_names_the_file(tmp_path):
    root = image_folder(tmp_path / "shapes")
    (root / "disc" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "square" / "notes.txt").write_text("not an image")
    run = tmp_path / "run"
    proc = app("data=folder", f"data.root={root}", *QUICK, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    (warning,) = [line for line in output.splitlines() if "skipped" in line]
    assert "WARNING" in warning and str(root / "disc" / "broken.png") in warning
    assert "square/notes.txt" in output  # ignored, and said so
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert summary["classes"] == ["disc", "square", "stripes"]
    assert summary["image_shape"] == [1, 32, 32] and summary["input_shape"] == [1, 32, 32]
    assert len(summary["skipped_files"]) == 1 and "broken.png" in summary["skipped_files"][0]
    assert sum(sum(counts) for counts in summary["balance"].values()) == 90  # the readable ones


def test_evaluate_and_predict_agree_on_a_folder_run_in_rgb(tmp_path):
    """train/ and test/ folders: the test split is test/'s files, in sorted order."""
    root = tmp_path / "split"
    image_folder(root / "train", per_class=24)
    image_folder(root / "test", per_class=6, seed=1)
    run = tmp_path / "run"
    args = ("data=folder", f"data.root={root}", "data.channels=3", "data.image_size=24")
    proc = app(*args, *QUICK, "model=lab_cnn2", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    done = tool("evaluate", run)
    assert done.returncode == 0, done.stderr
    record = json.loads((run / "evaluation.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert record["test_accuracy"] == summary["test_accuracy"] and record["test_images"] == 18
    assert summary["input_shape"] == [3, 24, 24]
    files = sorted(root.glob("test/*/*"), key=lambda p: (p.parent.name, p.name))
    proc = tool("predict", run, *files, "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["label"] for r in json.loads(proc.stdout)] == record["predicted"]


def test_a_folder_the_run_did_not_train_on_is_evaluated_whole(tmp_path):
    run = tmp_path / "run"
    train_on = image_folder(tmp_path / "shapes", per_class=20)
    proc = app("data=folder", f"data.root={train_on}", *QUICK, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    assert tool("evaluate", run).returncode == 0
    own = json.loads((run / "evaluation.json").read_text())
    assert own["test_images"] == 12  # the run's 20% of each class
    new = image_folder(tmp_path / "new", per_class=7, seed=2)
    done = tool("evaluate", run, f"data.root={new}")
    assert done.returncode == 0, done.stderr
    assert "is not the folder the run trained on: every image in it is a test" in done.stderr
    record = json.loads(next(run.glob("evaluations/data.root=*new/evaluation.json")).read_text())
    assert record["test_images"] == 21
    files = sorted(new.glob("*/*"), key=lambda p: (p.parent.name, p.name))
    predicted = tool("predict", run, *files, "--json")
    assert [r["label"] for r in json.loads(predicted.stdout)] == record["predicted"]
    two = image_folder(tmp_path / "two", per_class=2, seed=3)  # too few to split as the run
    done = tool("evaluate", run, f"data.root={two}")
    assert done.returncode == 0 and "6 images" in done.stdout, done.stderr
    share = tool("evaluate", run, f"data.root={new}", "data.test_fraction=0.5")
    assert share.returncode == 0, share.stderr
    assert "12 images" in share.stdout  # 4 of each class's 7 (3.5 rounded to even)
    assert json.loads((run / "evaluation.json").read_text()) == own  # not replaced


def test_a_runs_folder_moved_elsewhere_is_recognised_and_its_test_split_evaluated(tmp_path):
    """Trained on a cluster, evaluated on a laptop: the same images at another path are the
    run's, and their test split (not every image, training ones included) is evaluated."""
    run, root = tmp_path / "run", image_folder(tmp_path / "shapes", per_class=20)
    proc = app("data=folder", f"data.root={root}", *QUICK, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    moved = root.rename(tmp_path / "moved")
    gone = tool("evaluate", run)
    assert gone.returncode == 2
    assert f"the run's images are no longer in {root} (data.root): if they moved" in gone.stderr
    done = tool("evaluate", run, f"data.root={moved}")
    assert done.returncode == 0, done.stderr
    assert f"{moved} holds the images the run trained on: evaluating its test split" in (
        done.stderr
    )
    record = json.loads(next(run.glob("evaluations/*/evaluation.json")).read_text())
    assert record["test_images"] == 12  # the run's 20% of each class, not all 60
    assert record["test_accuracy"] == summary["test_accuracy"]


def test_a_runs_arrays_moved_elsewhere_are_asked_for_by_name(tmp_path):
    path = saved(tmp_path / "mine.npz", **random_set(np.random.default_rng(3), (40, 12, 12)))
    run = tmp_path / "run"
    proc = app("data=arrays", f"data.path={path}", *QUICK, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    moved = path.rename(tmp_path / "moved.npz")
    gone = tool("evaluate", run)
    assert gone.returncode == 2
    assert f"the run's arrays are no longer at {path} (data.path): if they moved" in gone.stderr
    assert "give data.path=WHERE_THEY_ARE" in gone.stderr
    assert tool("evaluate", run, f"data.path={moved}").returncode == 0


def test_a_folder_changed_since_training_is_evaluated_with_a_warning(tmp_path):
    """Images added since: the seeded split is drawn again over more files, so some images the
    run trained on may now be test images. The evaluation says so instead of passing for the
    run's test accuracy."""
    run, root = tmp_path / "run", image_folder(tmp_path / "shapes", per_class=20)
    proc = app("data=folder", f"data.root={root}", *QUICK, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    same = tool("evaluate", run)
    assert same.returncode == 0 and "not the test images" not in same.stderr, same.stderr
    assert json.loads((run / "evaluation.json").read_text())["not_the_runs_test_images"] is None
    rng = np.random.default_rng(9)
    for kind, name in enumerate(("disc", "square", "stripes")):
        for i in range(5):
            Image.fromarray(shape_image(kind, 32, rng)).save(root / name / f"new{i}.png")
    changed = tool("evaluate", run)
    assert changed.returncode == 0, changed.stderr
    assert "these are not the test images the run was tested on: images per class now " in (
        changed.stderr
    )
    record = json.loads((run / "evaluation.json").read_text())
    assert record["not_the_runs_test_images"].startswith("images per class now train [")


def test_a_run_is_not_resumed_on_a_folder_changed_since_it_began(tmp_path):
    root = image_folder(tmp_path / "shapes", per_class=20)
    first, data = tmp_path / "first", ("data=folder", f"data.root={root}", *QUICK)
    assert app(*data, f"hydra.run.dir={first}").returncode == 0
    added = [root / "disc" / f"new{i}.png" for i in range(3)]
    for path in added:
        Image.fromarray(shape_image(0, 32, np.random.default_rng(1))).save(path)
    longer = (*data, "train.epochs=3", f"train.resume_from={first}")
    proc = app(*longer, f"hydra.run.dir={tmp_path / 'refused'}")
    assert proc.returncode == 2, proc.stderr
    assert "was written for other images than the data gives now (images per class then " in (
        proc.stdout + proc.stderr
    )
    for path in added:
        path.unlink()
    proc = app(*longer, f"hydra.run.dir={tmp_path / 'resumed'}")
    assert proc.returncode == 0, proc.stderr
    assert "resuming from" in proc.stdout + proc.stderr


def test_training_images_replaced_under_the_same_counts_are_told_apart():
    from gpucnn.app.trainer import images_changed

    then = {"balance": {"train": [4, 4]}, "mean": [0.2, 0.4], "std": [0.25, 0.3]}
    assert images_changed(then, {**then, "mean": [0.2, 0.4 * (1 + 1e-7)]}) is None  # rounding
    assert images_changed(then, {**then, "std": [0.25, 0.301]}) == (
        "the training images' std per channel was [0.25, 0.3], is [0.25, 0.301]"
    )
    assert images_changed(then, {**then, "balance": {"train": [5, 4]}}).startswith(
        "images per class then train [4, 4], now train [5, 4]"
    )


def test_the_same_counts_with_another_test_loss_are_not_the_runs_test_images():
    from types import SimpleNamespace

    from gpucnn.app.evaluate import not_the_runs

    balance = {"train": [8, 8], "val": [1, 1], "test": [2, 2]}
    summary = {"balance": balance, "test_loss": 0.5}
    splits = SimpleNamespace(balance=balance)
    assert not_the_runs(summary, splits, 0.50001) is None  # another backend's rounding
    assert not_the_runs(summary, splits, 0.52) == "the test loss is 0.52, in the run 0.5"
    assert not_the_runs({"balance": balance}, splits, 0.52) is None  # an unfinished run


def test_the_second_load_reads_the_cache_and_a_changed_file_is_decoded_again(
    tmp_path, cache, monkeypatch
):
    root = image_folder(tmp_path / "shapes", per_class=8)
    first = folder.load(root, progress=False)
    calls = []
    real = folder.read_image
    monkeypatch.setattr(folder, "read_image", lambda *a: calls.append(a[0]) or real(*a))
    again = folder.load(root, progress=False)
    assert calls == [] and np.array_equal(again.x_train, first.x_train)
    changed = root / "square" / "3.png"
    Image.fromarray(shape_image(2, 32, np.random.default_rng(5))).save(changed)
    os.utime(changed, ns=(1, 1))  # a new modification time, whatever the clock's resolution
    folder.load(root, progress=False)
    assert len(calls) == 24  # every file again: the cache holds the whole folder
    assert len(list((cache / "folders").glob("*.npz"))) == 1  # the stale cache is gone


def test_a_cache_that_does_not_fit_the_folder_is_decoded_again(tmp_path, cache, caplog):
    """A cache whose images had another shape (a file damaged or replaced) was read as it was:
    a run asking for three channels trained on one."""
    root = image_folder(tmp_path / "shapes", per_class=8)
    first = folder.load(root, channels=3, image_size=16, progress=False)
    (path,) = (cache / "folders").glob("*.npz")
    with np.load(path) as f:
        x, kept, skipped = f["x"], f["kept"], f["skipped"]
    for damaged, why in (
        ({"x": x[:, :1], "kept": kept, "skipped": skipped}, "do not match the folder"),
        ({"x": x[:, :, :8], "kept": kept, "skipped": skipped}, "do not match the folder"),
        ({"x": x.astype(np.float32), "kept": kept, "skipped": skipped}, "do not match"),
        ({"x": x, "kept": kept + 100, "skipped": skipped}, "do not match the folder"),
        (None, "are unreadable"),
    ):
        if damaged is None:
            path.write_bytes(b"PK not a zip file")
        else:
            np.savez(path, **damaged)
        caplog.clear()
        again = folder.load(root, channels=3, image_size=16, progress=False)
        assert why in caplog.text and "decoding again" in caplog.text
        assert np.array_equal(again.x_train, first.x_train)
        assert np.array_equal(again.y_test, first.y_test)


def test_a_cache_that_cannot_be_written_is_only_warned_about(tmp_path, monkeypatch, caplog):
    (tmp_path / "cache").write_text("a file where the cache folder would go")
    monkeypatch.setenv("GPUCNN_CACHE", str(tmp_path / "cache"))
    root = image_folder(tmp_path / "shapes", per_class=4)
    data = folder.load(root, progress=False)
    assert len(data.y_train) + len(data.y_test) == 12  # 3 classes of 4
    assert "could not cache the decoded images in" in caplog.text


def test_gif_files_are_images_and_an_animated_one_gives_its_first_frame(tmp_path, caplog):
    root = image_folder(tmp_path / "shapes", per_class=4)
    rng = np.random.default_rng(3)
    first, second = shape_image(0, 32, rng), shape_image(2, 32, rng)
    frames = [Image.fromarray(first).convert("P"), Image.fromarray(second).convert("P")]
    frames[0].save(root / "disc" / "moving.gif", save_all=True, append_images=frames[1:])
    with caplog.at_level("INFO"):
        data = folder.load(root, test_fraction=0.25, progress=False)
    assert len(data.y_train) + len(data.y_test) == 13 and "moving.gif" not in caplog.text
    image, _ = read_image(root / "disc" / "moving.gif", 1, (32, 32))
    assert np.array_equal(image[0], np.asarray(frames[0].convert("L")))


def test_images_beside_the_class_folders_are_said_to_be_unread(tmp_path, caplog):
    root = image_folder(tmp_path / "shapes", per_class=4)
    Image.fromarray(shape_image(1, 32, np.random.default_rng(4))).save(root / "stray.png")
    (root / "._stray.png").write_bytes(b"")  # hidden: another system's metadata, not an image
    with caplog.at_level("WARNING"):
        data = folder.load(root, test_fraction=0.25, progress=False)
    assert len(data.y_train) + len(data.y_test) == 12
    (warning,) = [r.getMessage() for r in caplog.records if "no class folder" in r.getMessage()]
    assert warning.startswith(f"1 image file(s) in {root} are in no class folder and are not read")
    assert warning.endswith(": stray.png; move each into its class's folder")


def test_the_test_split_is_stratified_and_fixed_by_split_seed(tmp_path):
    root = image_folder(tmp_path / "shapes", per_class=20)
    one = folder.load(root, test_fraction=0.25, progress=False)
    assert np.bincount(one.y_test).tolist() == [5, 5, 5] and len(one.y_train) == 45
    same = folder.load(root, test_fraction=0.25, progress=False)
    other = folder.load(root, test_fraction=0.25, split_seed=1, progress=False)
    assert np.array_equal(one.x_test, same.x_test)
    assert not np.array_equal(one.x_test, other.x_test)


def test_images_are_made_gray_or_rgb_and_fitted_as_asked(tmp_path):
    wide = np.zeros((10, 20, 3), dtype=np.uint8)
    wide[..., 0], wide[..., 1] = 200, 40
    Image.fromarray(wide).save(tmp_path / "wide.png")
    rgb, own = read_image(tmp_path / "wide.png", 3, (20, 20), "pad")
    assert own == (10, 20) and rgb.shape == (3, 20, 20)
    assert (rgb[:, :5] == 0).all() and (rgb[:, 15:] == 0).all()  # black above and below
    assert (rgb[0, 5:15] == 200).all() and (rgb[1, 5:15] == 40).all()
    gray, _ = read_image(tmp_path / "wide.png", 1, (20, 20), "stretch")
    expected = np.asarray(Image.fromarray(wide).convert("L"))[0, 0]
    assert gray.shape == (1, 20, 20) and (gray == expected).all()  # stretched: no border


def test_a_photo_is_turned_upright_as_its_exif_orientation_says(tmp_path):
    sideways = np.zeros((10, 20), dtype=np.uint8)
    sideways[:, :5] = 255  # a white band at the left, which is the top once turned
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: turn 90 degrees clockwise to view
    Image.fromarray(sideways).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    image, own = read_image(tmp_path / "phone.jpg", 1, (20, 10), "stretch")
    assert own == (20, 10)
    assert (image[0, :5] > 245).all() and (image[0, 6:] < 10).all()


def test_transparent_pixels_are_black_like_the_padding(tmp_path):
    """A cut-out saved with white under its transparent background: that white is not seen."""
    cutout = np.zeros((8, 8, 4), dtype=np.uint8)
    cutout[..., :3] = 255  # white, but transparent
    cutout[2:6, 2:6] = (200, 100, 50, 255)  # the object, opaque
    half = cutout.copy()
    half[0, 0] = (255, 255, 255, 128)  # half transparent white: half as bright
    Image.fromarray(half, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(half, "RGBA").convert("LA").save(tmp_path / "la.png")
    palette = Image.fromarray(cutout[..., :3]).convert("P")
    palette.save(tmp_path / "palette.png", transparency=palette.getpixel((0, 0)))
    for name in ("rgba.png", "la.png", "palette.png"):
        rgb, _ = read_image(tmp_path / name, 3, (8, 8))
        gray, _ = read_image(tmp_path / name, 1, (8, 8))
        assert (rgb[:, 7, 7] == 0).all() and gray[0, 7, 7] == 0, name
        assert gray[0, 3, 3] > 100, name  # the object is still there
    assert read_image(tmp_path / "rgba.png", 1, (8, 8))[0][0, 0, 0] == 128


def test_16_bit_and_float_images_keep_their_shades(tmp_path):
    """Pillow's own conversion to 8 bits clips: a 16-bit image would come out nearly white."""
    rng = np.random.default_rng(6)
    deep = rng.integers(0, 65536, (12, 12), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    Image.fromarray(deep).save(tmp_path / "deep.tif")
    expected = np.rint(deep / 257).astype(np.uint8)
    for name in ("deep.png", "deep.tif"):
        for channels in (1, 3):
            image, _ = read_image(tmp_path / name, channels, (12, 12))
            assert (image == expected).all(), (name, channels)
    shades = rng.random((12, 12), dtype=np.float32)
    Image.fromarray(shades).save(tmp_path / "shades.tif")
    image, _ = read_image(tmp_path / "shades.tif", 1, (12, 12))
    assert (image[0] == np.rint(shades.astype(np.float64) * 255)).all()
    Image.fromarray(shades * 40).save(tmp_path / "unscaled.tif")
    with pytest.raises(DataError, match=r"unscaled.tif: a F image with values from .* floats in"):
        read_image(tmp_path / "unscaled.tif", 1, (12, 12))


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda r: None, "is not a directory"),
        (lambda r: r.mkdir(), "has no class folders"),
        (lambda r: image_folder(r, names=("only",)), "one class folder (only)"),
        (lambda r: image_folder(r / "train"), "has train/ alone, a folder of class folders: give"),
        (lambda r: (image_folder(r), (r / "empty").mkdir()), "empty holds no image files"),
        (
            lambda r: (image_folder(r / "train"), image_folder(r / "test", names=("x", "disc"))),
            "has classes ['x'] that",
        ),
    ],
)
def test_a_folder_that_cannot_work_is_refused_by_name(tmp_path, make, says):
    make(tmp_path / "root")
    with pytest.raises(DataError) as caught:
        folder.load(tmp_path / "root", progress=False)
    assert says in str(caught.value)


def test_a_class_none_of_whose_images_reads_is_an_error(tmp_path):
    root = image_folder(tmp_path / "root", per_class=3)
    for path in (root / "square").iterdir():
        path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="no image of class square could be read"):
        folder.load(root, progress=False)


def test_a_relative_root_is_read_from_where_the_run_started(tmp_path):
    """hydra.job.chdir=true makes a job's working directory its run directory."""
    image_folder(tmp_path / "shapes", per_class=10)
    run = tmp_path / "run"
    args = ("data=folder", "data.root=shapes", "hydra.job.chdir=true", f"hydra.run.dir={run}")
    proc = app(*args, *QUICK, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((run / "summary.json").read_text())["classes"] == [
        "disc",
        "square",
        "stripes",
    ]


def test_train_and_val_folders_are_the_splits_not_two_classes(tmp_path, caplog):
    root = tmp_path / "root"
    image_folder(root / "train", per_class=5, names=("disc", "square"))
    image_folder(root / "val", per_class=2, names=("disc", "square"), seed=1)
    with caplog.at_level("INFO"):
        raw = folder.load(root, progress=False)
    assert raw.classes == ("disc", "square")  # not ("train", "val")
    assert len(raw.y_train) == 10 and len(raw.y_test) == 4
    assert "val/ is the test split" in caplog.text
    image_folder(root / "test", per_class=3, names=("disc", "square"), seed=2)
    caplog.clear()
    with caplog.at_level("INFO"):
        raw = folder.load(root, progress=False)
    assert len(raw.y_train) == 10 and len(raw.y_test) == 6  # test/ when there is one
    assert f"{root / 'val'} is not read: the validation images are drawn from" in caplog.text


def test_images_on_another_scale_than_trainings_are_refused():
    rng = np.random.default_rng(5)
    z_scores = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)  # floats: used as they are
    check_scale(z_scores, (-3.0, 3.0), "near")  # within the range's width beyond it
    with pytest.raises(DataError, match="far: values from .* give them on the training"):
        check_scale(z_scores * 100, (-3.0, 3.0), "far")
    image = rng.integers(0, 256, (2, 1, 8, 8), dtype=np.uint8)
    check_scale(image, (0.0, 1.0), "bytes")  # scaled to 0-1, as in training
    with pytest.raises(DataError, match="floats of 0-255"):
        check_scale(image.astype(np.float32), (0.0, 1.0), "floats")
    with pytest.raises(DataError, match="files: uint8 images .* were floats of 0 to 255"):
        check_scale(image, (0.0, 255.0), "files")  # a run trained on floats of 0-255
    check_scale(image.astype(np.float32), (0.0, 255.0), "as in training")


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"channels": 2}, "channels"),
        ({"image_size": 0}, "image_size"),
        ({"fit": "crop"}, "fit"),
        ({"test_fraction": 0}, "test_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
    ],
)
def test_impossible_folder_settings_name_the_setting(tmp_path, kwargs, key):
    with pytest.raises(ConfigError) as caught:
        folder.load(image_folder(tmp_path / "root", per_class=2), **kwargs)
    assert caught.value.argument == key


def saved(path, **arrays_):
    np.savez(path, **arrays_)
    return path


def random_set(rng, x_shape, dtype=np.uint8):
    n = x_shape[0]
    x = rng.integers(0, 256, x_shape).astype(dtype)
    return {
        "x_train": x,
        "y_train": rng.integers(0, 3, n),
        "x_test": x[:8],
        "y_test": np.arange(8) % 3,
    }


def test_arrays_in_each_layout_give_the_same_images(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = random_set(rng, (30, 9, 7, 3))
    nchw = {
        **nhwc,
        "x_train": nhwc["x_train"].transpose(0, 3, 1, 2),
        "x_test": nhwc["x_test"].transpose(0, 3, 1, 2),
    }
    a = arrays.load(saved(tmp_path / "a.npz", **nhwc, classes=np.array(["r", "g", "b"])))
    b = arrays.load(saved(tmp_path / "b.npz", **nchw))
    assert a.image_shape == b.image_shape == (3, 9, 7)
    assert np.array_equal(a.x_train, b.x_train) and a.classes == ("r", "g", "b")
    assert b.classes == ("0", "1", "2")
    gray = arrays.load(saved(tmp_path / "c.npz", **random_set(rng, (30, 9, 7), np.float64)))
    assert gray.image_shape == (1, 9, 7) and gray.x_train.dtype == np.float32


def test_float_arrays_are_standardised_as_they_are_and_uint8_ones_scaled(tmp_path):
    rng = np.random.default_rng(1)
    data = random_set(rng, (40, 6, 6), np.float64)
    data["x_train"] = data["x_train"] * 0.01 + 7  # nowhere near [0, 1]
    raw = arrays.load(saved(tmp_path / "f.npz", **{**data, "x_test": data["x_train"][:8]}))
    split = prepare(raw, task="multiclass", pad_to=None, val_fraction=0)
    assert split.mean[0] == pytest.approx(raw.x_train.mean(), rel=1e-6)
    assert abs(float(split.train.x.mean())) < 1e-5 and abs(float(split.train.x.std()) - 1) < 1e-5


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda d: d.pop("y_test"), "lacks y_test"),
        (lambda d: d.pop("x_train"), "lacks x_train (it holds y_train, x_test, y_test): save the"),
        (
            lambda d: d.update(y_train=d["y_train"] - 5),
            "train labels must be class numbers 0 .. K-1, found -5",
        ),
        (
            lambda d: d.update(y_train=np.array(["cat", "dog", "owl"])[d["y_train"]]),
            "got <U3 (30,): they are names, the other split's labels are not: give both names",
        ),
        (
            lambda d: d.update(
                y_train=np.array(["cat", "dog", "owl"])[d["y_train"]],
                y_test=np.array(["cat", "dog", "yak"])[d["y_test"]],
                classes=np.array(["owl", "dog", "cat"]),
            ),
            "labels yak are not among the classes (owl, dog, cat): add them to classes",
        ),
        (
            lambda d: d.update(classes=np.array(["owl", "dog", "owl"])),
            "classes names owl more than once: give each its own name",
        ),
        (lambda d: d.update(classes=np.array(["a", "b"])), "labels must be in 0..1"),
        (
            lambda d: d.update(classes=np.array("abc")),  # a string, not a list of names
            "classes must be a list of names (strings), got the one value 'abc'",
        ),
        (
            lambda d: d.update(y_train=d["y_train"] + 1, y_test=d["y_test"] + 1),
            "the labels are 1, 2, 3, but without a classes array they must be numbered 0 .. K-1",
        ),
        (lambda d: d.update(x_test=d["x_test"][:, :4]), "give both splits the same size"),
        (
            lambda d: d.update(x_train=d["x_train"].astype(np.int32)),
            "must be uint8 (0-255) or floats, got int32: their values are 0-255; give "
            "x.astype(np.uint8)",
        ),
        (
            lambda d: d.update(x_train=d["x_train"].astype(np.int32) * 4),
            "got int32: values up to 1020; give floats divided by the images' white, "
            "(x / 65535).astype(np.float32) for 16-bit images",
        ),
        (  # masks: as uint8 they would be pixels of 1 in 255
            lambda d: d.update(x_train=d["x_train"] > 128),
            "got bool: their values are 0 and 1; give x.astype(np.float32), used as it is",
        ),
        (lambda d: d.update(x_train=np.full((30, 9, 7), np.nan), x_test=d["x_test"] / 255), "NaN"),
        (lambda d: d.update(y_train=d["y_train"][:5]), "30 train images but 5 train labels"),
        (lambda d: d.update(x_train=np.zeros((30, 9, 7, 8, 2), np.uint8)), "at most 4 channels"),
        (
            lambda d: d.update(y_train=d["y_train"][:, None]),
            "train labels must be integer class numbers (N,), got int64 (30, 1): save "
            "y.reshape(-1)",
        ),
        (
            lambda d: d.update(y_test=np.eye(3)[d["y_test"]]),
            "got float64 (8, 3): they are one-hot rows; save y.argmax(axis=1)",
        ),
        (lambda d: d.update(y_train=d["y_train"] * 1.0), "float64 (30,): save y.astype(np.int64)"),
        (lambda d: d.update(y_train=d["y_train"] + 0.5), "must be integer class numbers (N,), got"),
    ],
)
def test_bad_arrays_are_refused_by_name(tmp_path, change, says):
    data = random_set(np.random.default_rng(2), (30, 9, 7))
    change(data)
    with pytest.raises(DataError) as caught:
        arrays.load(saved(tmp_path / "bad.npz", **data))
    assert says in str(caught.value) and "bad.npz" in str(caught.value)


def test_labels_that_are_names_are_numbered_in_the_order_of_the_classes(tmp_path):
    data = random_set(np.random.default_rng(6), (30, 9, 7))
    numbers = {"train": data["y_train"], "test": data["y_test"]}
    names = np.array(["owl", "cat", "dog"])
    for split in numbers:
        data[f"y_{split}"] = names[numbers[split]]
    sorted_out = arrays.load(saved(tmp_path / "names.npz", **data))  # no classes: sorted
    assert sorted_out.classes == ("cat", "dog", "owl")
    assert np.array_equal(sorted_out.y_train, np.array([2, 0, 1])[numbers["train"]])
    given = arrays.load(saved(tmp_path / "ordered.npz", **data, classes=names))
    assert given.classes == ("owl", "cat", "dog")
    assert np.array_equal(given.y_train, numbers["train"])
    assert np.array_equal(given.y_test, numbers["test"])


def test_arrays_in_memory_are_read_as_the_file_holding_them(tmp_path):
    data = random_set(np.random.default_rng(5), (30, 9, 7, 3))
    data["classes"] = np.array(["cat", "dog", "owl"])
    from_file = arrays.load(saved(tmp_path / "set.npz", **data))
    given = {k: v.tolist() for k, v in data.items()}  # lists too, as Python code holds them
    given["x_train"] = np.asarray(given["x_train"], dtype=np.uint8)
    given["x_test"] = np.asarray(given["x_test"], dtype=np.uint8)
    from_memory = arrays.from_arrays(**given, name="my set")
    assert from_memory.classes == from_file.classes == ("cat", "dog", "owl")
    for key in ("x_train", "y_train", "x_test", "y_test"):
        mine, theirs = getattr(from_memory, key), getattr(from_file, key)
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs)
    assert from_memory.image_shape == (3, 9, 7) and from_memory.name == "my set"
    splits = prepare(from_memory, task="multiclass")
    assert splits.classes == ("cat", "dog", "owl") and splits.input_shape == (3, 32, 32)
    with pytest.raises(DataError, match="^my set: 30 train images but 4 train labels"):
        arrays.from_arrays(**{**given, "y_train": [0, 1, 2, 0]}, name="my set")


def test_arrays_without_a_test_split_have_a_stratified_share_held_out(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, (50, 9, 7)).astype(np.uint8)
    y = np.repeat([0, 1, 2], [20, 20, 10])
    raw = arrays.load(saved(tmp_path / "xy.npz", x_train=x, y_train=y))
    assert np.bincount(raw.y_test).tolist() == [4, 4, 2]  # 20% of each class
    assert np.bincount(raw.y_train).tolist() == [16, 16, 8]
    assert sorted(map(bytes, [*raw.x_train[:, 0], *raw.x_test[:, 0]])) == sorted(map(bytes, x))
    again = arrays.load(tmp_path / "xy.npz")
    assert np.array_equal(again.x_test, raw.x_test) and np.array_equal(again.y_test, raw.y_test)
    other = arrays.load(tmp_path / "xy.npz", test_fraction=0.2, split_seed=1)
    assert not np.array_equal(other.x_test, raw.x_test)
    half = arrays.from_arrays(x, y, test_fraction=0.5)
    assert np.bincount(half.y_test).tolist() == [10, 10, 5]
    with pytest.raises(DataError, match="^mine: x_test without y_test: give both, or neither"):
        arrays.from_arrays(x, y, x_test=x, name="mine")
    with pytest.raises(DataError, match=r"test_fraction=0 must be in \(0, 1\]"):
        arrays.from_arrays(x, y, test_fraction=0)


def test_arrays_without_a_test_split_train_and_evaluate_from_the_command_line(tmp_path):
    rng = np.random.default_rng(9)
    x = rng.integers(0, 256, (60, 10, 10)).astype(np.uint8)
    path = saved(tmp_path / "xy.npz", x_train=x, y_train=np.arange(60) % 3)
    run = tmp_path / "run"
    proc = app("data=arrays", f"data.path={path}", *QUICK, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert sum(summary["balance"]["test"]) == 12  # 20% of 60
    new = saved(tmp_path / "new.npz", x_train=x[:30], y_train=np.arange(30) % 3)
    done = tool("evaluate", run, f"data.path={new}")
    assert done.returncode == 0, done.stderr
    assert "is not the file the run trained on: every image in it is a test image" in done.stderr
    assert "30 images" in done.stdout
    share = tool("evaluate", run, f"data.path={new}", "data.test_fraction=0.5")
    assert share.returncode == 0 and "15 images" in share.stdout, share.stderr


def test_arrays_the_file_holds_besides_the_splits_are_said_to_be_unread(tmp_path, caplog):
    data = random_set(np.random.default_rng(4), (30, 9, 7))
    arrays.load(saved(tmp_path / "val.npz", **data, x_val=data["x_test"], y_val=data["y_test"]))
    assert "val.npz: x_val, y_val not read" in caplog.text and "data.val_fraction" in caplog.text


def test_an_array_of_python_objects_is_not_unpickled(tmp_path):
    data = random_set(np.random.default_rng(3), (30, 9, 7))
    data["y_train"] = np.array([{"label": 1}] * 30, dtype=object)
    with pytest.raises(DataError, match="save plain number and string arrays"):
        arrays.load(saved(tmp_path / "pickled.npz", **data))


def test_files_of_another_kind_are_named_for_what_they_are(tmp_path):
    """An .npy given as data.path ended in a traceback (np.load gave an array, not a file of
    them), and any file that is not a zip was called a pickle."""
    data = random_set(np.random.default_rng(5), (30, 9, 7))
    np.save(tmp_path / "x.npy", data["x_train"])
    (tmp_path / "notes.txt").write_text("x_train, y_train")
    npz = saved(tmp_path / "set.npz", **data)
    (tmp_path / "cut.npz").write_bytes(npz.read_bytes()[:-100])
    for name, says in (
        ("x.npy", "x.npy holds one array (an .npy file): give an .npz made with np.savez("),
        ("notes.txt", "notes.txt is not an .npz file (or a damaged one): give an .npz made"),
        ("cut.npz", "cut.npz is not an .npz file (or a damaged one)"),
    ):
        with pytest.raises(DataError, match=re.escape(says)):
            arrays.load(tmp_path / name)
    from gpucnn.app.predict import read_images

    (tmp_path / "notes.npy").write_text("not an array")
    with pytest.raises(DataError, match="notes.npy: not a .npy file: save the images with np.save"):
        read_images(tmp_path / "notes.npy", (1, 9, 7), "pad")
    assert len(read_images(tmp_path / "x.npy", (1, 9, 7), "pad")) == 30


def test_binary_task_on_arrays_trains_and_predicts(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 60, (120, 12, 12, 3)).astype(np.uint8)
    y = np.arange(120) % 3
    x[y == 2, 3:9, 3:9] = 250  # class 2 has a bright centre
    path = saved(tmp_path / "set.npz", x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:])
    run = tmp_path / "run"
    proc = app(
        "data=arrays", f"data.path={path}", "data.task=binary", "data.positive=[2]",
        "data.negative=[0,1]", "model=lab_mlp1", *QUICK, "train.epochs=4", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["classes"] == ["0+1", "2"] and summary["test_accuracy"] > 0.9
    np.save(tmp_path / "new.npy", x[90:96])
    proc = tool("predict", run, tmp_path / "new.npy", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["label"] for r in json.loads(proc.stdout)] == (y[90:96] == 2).astype(int).tolist()


def test_image_files_cannot_stand_for_images_of_other_channel_counts(tmp_path):
    from gpucnn.app.predict import read_images

    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(tmp_path / "one.png")
    assert read_images(tmp_path / "one.png", (3, 8, 8), "pad")[0][1].shape == (3, 8, 8)
    with pytest.raises(DataError, match="images of 2 channels, which image files do not have"):
        read_images(tmp_path / "one.png", (2, 8, 8), "pad")


def test_a_folder_too_big_to_decode_is_refused_before_decoding(tmp_path, monkeypatch):
    from gpucnn import memory
    from gpucnn.errors import NotEnoughMemory

    monkeypatch.setattr(memory, "_machine_available", lambda: 5_000)  # < 6 images x 1 KB
    root = image_folder(tmp_path / "root", per_class=2)
    monkeypatch.setattr(folder, "read_image", lambda *a: pytest.fail("decoded anyway"))
    with pytest.raises(NotEnoughMemory, match=r"image_size=32: 6 images of 1x32x32 bytes"):
        folder.load(root, progress=False)
