"""The data layer: IDX files, downloads, the embedded set, tasks, preprocessing and batches."""

import gzip
import hashlib
import http.server
import re
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from gpucnn import ConfigError
from gpucnn.data import (
    Batches,
    RawData,
    Split,
    describe,
    from_arrays,
    gaps,
    idx,
    load,
    prepare,
    sources,
)
from gpucnn.data.prepare import check_task
from gpucnn.errors import DataError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def _fake_set(rng, n_train=60, n_test=20, size=28):
    """Random uint8 images with every class present, as the four IDX arrays."""
    return {
        "train_images": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }


def _write_set(directory, arrays, compress=True):
    directory.mkdir(parents=True, exist_ok=True)
    for key, spec in sources.FASHION_MNIST.files.items():
        name = spec.name + (".gz" if compress else "")
        idx.write(directory / name, arrays[key], compress=compress)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_idx_round_trip(tmp_path, compress, dtype):
    a = (np.random.default_rng(0).normal(size=(3, 4, 5)) * 50).astype(dtype)
    idx.write(tmp_path / "a", a, compress=compress)
    b = idx.read(tmp_path / "a")
    assert b.dtype == a.dtype and np.array_equal(a, b)


def test_idx_bad_magic(tmp_path):
    (tmp_path / "f").write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(DataError, match=r"f: not an IDX file \(bad magic number 504b0304"):
        idx.read(tmp_path / "f")


def test_idx_truncated(tmp_path):
    data = idx.encode(np.ones((10, 28, 28), dtype=np.uint8))
    (tmp_path / "t").write_bytes(data[:-5])
    with pytest.raises(DataError, match=r"t: 7851 bytes but .*\(10, 28, 28\) need 7856.*truncated"):
        idx.read(tmp_path / "t")
    (tmp_path / "h").write_bytes(data[:9])
    with pytest.raises(DataError, match="truncated header"):
        idx.read(tmp_path / "h")


def test_idx_corrupt_gzip(tmp_path):
    packed = gzip.compress(idx.encode(np.arange(100, dtype=np.uint8)))
    (tmp_path / "z.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"z.gz: the gzip stream is corrupt or truncated"):
        idx.read(tmp_path / "z.gz")


def test_idx_dir_mismatched_lengths_and_bad_labels(tmp_path):
    arrays = _fake_set(np.random.default_rng(0))
    _write_set(tmp_path / "a", {**arrays, "train_labels": arrays["train_labels"][:-1]})
    with pytest.raises(DataError, match="60 train images but 59 train labels"):
        load("fashion_mnist", root=tmp_path / "a", download_ok=False)
    bad = arrays["test_labels"].copy()
    bad[3] = 12
    _write_set(tmp_path / "b", {**arrays, "test_labels": bad})
    with pytest.raises(DataError, match=r"test labels must be in 0..9, found 0..12"):
        load("fashion_mnist", root=tmp_path / "b", download_ok=False)


def test_data_root_is_searched_first_and_raw_files_work(tmp_path, caplog):
    arrays = _fake_set(np.random.default_rng(1))
    _write_set(tmp_path, arrays, compress=False)
    raw = load("fashion_mnist", root=tmp_path, download_ok=False)
    assert np.array_equal(raw.x_train[:, 0], arrays["train_images"])
    assert raw.y_test.dtype == np.int64
    assert "train-images is not the published Fashion-MNIST file" in caplog.text
    caplog.clear()
    load("mnist", root=tmp_path, download_ok=False)  # MNIST's files are not known by content
    assert caplog.text == ""


@pytest.mark.parametrize("compress", [False, True])
def test_files_named_with_a_dot_before_idx_are_read(tmp_path, compress):
    """Copies of MNIST unpacked elsewhere name the files train-images.idx3-ubyte: the root
    holding them was said not to hold the files."""
    arrays = _fake_set(np.random.default_rng(6))
    _write_set(tmp_path, arrays, compress=compress)
    for path in tmp_path.iterdir():
        path.rename(tmp_path / path.name.replace("-idx", ".idx"))
    assert (tmp_path / ("train-images.idx3-ubyte" + ".gz" * compress)).is_file()
    raw = load("mnist", root=tmp_path, download_ok=False)
    assert np.array_equal(raw.x_train[:, 0], arrays["train_images"])
    assert np.array_equal(raw.y_test, arrays["test_labels"])


@pytest.mark.parametrize("name,ways", [("mnist", "two"), ("fashion_mnist", "three")])
def test_missing_set_names_the_ways_to_get_it(tmp_path, monkeypatch, name, ways):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GPUCNN_DATA", raising=False)
    monkeypatch.setattr(sources, "candidate_dirs", lambda source: [tmp_path / source.dirname])
    with pytest.raises(DataError) as err:
        load(name, download_ok=False)
    message = str(err.value)
    dirname = name.replace("_", "-")
    assert "MNIST was not found (downloading is off" in message
    assert f"Get it one of {ways} ways:" in message and "pass it as root" in message
    assert f"or in $GPUCNN_DATA/{dirname}\n" in message  # the folder that holds the files
    assert "download=True" in message and str(tmp_path / dirname) in message
    # Debian packages Fashion-MNIST alone
    assert ("apt-get install dataset-fashion-mnist" in message) == (name == "fashion_mnist")


def test_gpucnn_data_is_searched_for_a_folder_named_for_the_set(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("GPUCNN_DATA", str(tmp_path / "sets"))
    monkeypatch.setenv("GPUCNN_CACHE", str(tmp_path / "cache"))  # nothing there
    arrays = _fake_set(np.random.default_rng(8))
    _write_set(tmp_path / "sets" / "mnist", arrays)
    with caplog.at_level("INFO"):
        raw = load("mnist", download_ok=False)
    assert np.array_equal(raw.x_train[:, 0], arrays["train_images"])
    assert f"MNIST from {tmp_path / 'sets' / 'mnist'}" in caplog.text


def test_a_root_given_is_the_only_place_looked_in(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUCNN_DATA", str(tmp_path / "elsewhere"))  # a copy that must not be used
    with pytest.raises(DataError, match=f"root {tmp_path / 'nowhere'} is not a directory"):
        load("mnist", root=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="does not hold MNIST's train-images-idx3-ubyte, "):
        load("mnist", root=tmp_path / "empty")


def test_a_root_above_the_files_names_the_folder_that_holds_them(tmp_path):
    """torchvision keeps MNIST in <root>/MNIST/raw and Fashion-MNIST in
    <root>/FashionMNIST/raw, with files of the same names: the root it was given is named."""
    arrays = _fake_set(np.random.default_rng(7))
    _write_set(tmp_path / "FashionMNIST" / "raw", arrays)
    fashion = f"they are in {tmp_path / 'FashionMNIST' / 'raw'}: give that"
    with pytest.raises(DataError, match=re.escape(fashion)):
        load("fashion_mnist", root=tmp_path)
    with pytest.raises(DataError, match="put the files there"):  # not Fashion-MNIST's folder
        load("mnist", root=tmp_path)
    _write_set(tmp_path / "MNIST" / "raw", arrays)
    with pytest.raises(DataError, match=re.escape(f"they are in {tmp_path / 'MNIST' / 'raw'}:")):
        load("mnist", root=tmp_path)


@pytest.fixture
def http_dir(tmp_path):
    """A directory served over HTTP on 127.0.0.1; yields (directory, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _source_for(arrays, tamper=None):
    """A Source like Fashion-MNIST whose checksums are those of ``arrays``."""
    files = {}
    for key, spec in sources.FASHION_MNIST.files.items():
        digest = hashlib.sha256(idx.encode(arrays[key])).hexdigest()
        if key == tamper:
            digest = "0" * 64
        files[key] = sources.FileSpec(spec.name, sha256=digest)
    return sources.Source("fake", "fake", "Fake", "unused", sources.FASHION_CLASSES, files)


def test_download_accepts_verified_files(tmp_path, http_dir):
    served, url = http_dir
    arrays = _fake_set(np.random.default_rng(2))
    _write_set(served, arrays)
    source = _source_for(arrays)
    dest = sources.download(source, tmp_path / "cache", url)
    raw = sources.load_idx_dir(source, dest)
    assert np.array_equal(raw.x_test[:, 0], arrays["test_images"])


def test_download_with_a_bad_checksum_leaves_nothing_behind(tmp_path, http_dir):
    served, url = http_dir
    arrays = _fake_set(np.random.default_rng(3))
    _write_set(served, arrays)
    source = _source_for(arrays, tamper="test_images")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: SHA-256 .* does not match"):
        sources.download(source, tmp_path / "cache", url)
    left = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert "t10k-images-idx3-ubyte.gz" not in left
    assert not [name for name in left if name.endswith(".tmp")]


def test_a_failed_download_says_where_it_looked_and_the_other_ways(tmp_path, http_dir, monkeypatch):
    _, url = http_dir  # serves nothing
    monkeypatch.delenv("GPUCNN_DATA", raising=False)
    monkeypatch.setattr(sources, "candidate_dirs", lambda source: [tmp_path / source.dirname])
    monkeypatch.setattr(sources, "cache_dir", lambda source: tmp_path / "cache")
    with pytest.raises(DataError) as err:
        load("mnist", url=url)
    message = str(err.value)
    assert message.startswith("MNIST was not found (the download failed: cannot download ")
    assert f"{url}train-images-idx3-ubyte.gz: HTTP Error 404" in message
    assert "pass it as root" in message and str(tmp_path / "mnist") in message
    (tmp_path / "served").joinpath("train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b cut short")
    with pytest.raises(DataError, match="the download is not a valid gzip file"):
        sources.download(_source_for(_fake_set(np.random.default_rng(2))), tmp_path / "c", url)


def test_download_md5_checked_for_mnist_style_sources(tmp_path, http_dir):
    served, url = http_dir
    idx.write(served / "a.gz", np.arange(10, dtype=np.uint8), compress=True)
    good = hashlib.md5((served / "a.gz").read_bytes()).hexdigest()
    sources.verify((served / "a.gz").read_bytes(), sources.FileSpec("a", md5_gz=good), "a")
    with pytest.raises(DataError, match="MD5"):
        sources.verify(b"junk", sources.FileSpec("a", md5_gz=good), "a")


def test_the_embedded_set_is_stratified_uint8_fashion_mnist():
    raw = load("fashion_mnist_mini")
    assert raw.x_train.shape == (10_000, 1, 28, 28) and raw.x_test.shape == (2_000, 1, 28, 28)
    assert raw.x_train.dtype == np.uint8 and raw.classes[6] == "Shirt"
    assert np.bincount(raw.y_train).tolist() == [1000] * 10
    assert np.bincount(raw.y_test).tolist() == [200] * 10
    assert sources.mini_path().with_name("FASHION_MNIST_LICENSE.txt").is_file()


def test_binary_task_labels_and_preprocessing():
    raw = load("fashion_mnist_mini")
    data = prepare(raw, task="binary", positive=[6], negative=[0], val_fraction=0.1, seed=1)
    assert data.classes == ("T-shirt/top", "Shirt") and data.n_outputs == 1
    assert data.input_shape == (1, 32, 32)
    assert data.balance == {"train": [900, 900], "val": [100, 100], "test": [200, 200]}
    # Test labels: 1 exactly where the raw label was Shirt.
    shirts = raw.x_test[raw.y_test == 6, 0]
    ones = data.test.x[data.test.y == 1][:, 0, 2:30, 2:30] * data.std[0] + data.mean[0]
    assert np.allclose(np.sort(ones.ravel()), np.sort(shirts.ravel() / 255), atol=1e-5)
    # Standardised with the training split's own statistics.
    inner = data.train.x[:, :, 2:30, 2:30]
    assert abs(float(inner.mean())) < 1e-3 and abs(float(inner.std()) - 1) < 1e-3
    # The padding is the background (raw 0).
    assert np.allclose(data.train.x[:, :, :2, :], -data.mean[0] / data.std[0])
    low, high = data.value_range  # what new images are checked against
    scaled = data.train.x * data.std[0] + data.mean[0]
    assert low == pytest.approx(float(scaled.min()), abs=1e-6) and low >= 0
    assert high == pytest.approx(float(scaled.max()), abs=1e-6) and high <= 1


def test_binary_classes_can_be_named_or_given_alone():
    raw = load("fashion_mnist_mini")
    by_number = prepare(raw, positive=[6, 2], negative=[0], limit_train=200, limit_test=40)
    for positive, negative in ((["Shirt", "Pullover"], "T-shirt/top"), ([6, "Pullover"], 0)):
        named = prepare(raw, positive=positive, negative=negative, limit_train=200, limit_test=40)
        assert named.classes == by_number.classes == ("T-shirt/top", "Shirt+Pullover")
        assert np.array_equal(named.train.y, by_number.train.y)
    with pytest.raises(ConfigError, match=r"'shirt' is no class \(did you mean 'Shirt'\?\); "):
        prepare(raw, positive=["shirt"])
    with pytest.raises(ConfigError, match=r"'Hat' is no class; give .*names \(T-shirt/top"):
        prepare(raw, positive=["Hat"])  # nothing close: no guess
    with pytest.raises(
        DataError, match=r"'fashion-mnist' is unknown \(did you mean 'fashion_mnist'"
    ):
        load("fashion-mnist")
    with pytest.raises(ConfigError, match=r"negative: 0.5 is no class; give class numbers 0..9"):
        prepare(raw, negative=[0.5])
    check_task("binary", [np.int64(6), "Shirt"], [0], 10)  # what prepare takes, check_task does
    with pytest.raises(ConfigError, match=r"negative lists \[0.5\]: give class numbers or names"):
        check_task("binary", [6], [0.5])


def test_a_validation_share_that_leaves_no_training_image_is_refused():
    raw = load("fashion_mnist_mini")
    with pytest.raises(ConfigError, match="val_fraction=0.99 takes all 30 training images") as e:
        prepare(raw, val_fraction=0.99, limit_train=30)
    assert e.value.argument == "val_fraction"
    evaluated = prepare(raw, val_fraction=0.99, limit_train=30, normalisation=([0.5], [0.2]))
    assert len(evaluated.train) == 0 and len(evaluated.test) == 400  # evaluation needs none


def test_a_trained_models_normalisation_is_used_when_given():
    raw = load("fashion_mnist_mini")
    own = prepare(raw, limit_train=300, limit_test=50, seed=2)
    given = (0.25, 0.5)
    data = prepare(raw, limit_train=300, limit_test=50, seed=2, normalisation=([0.25], [0.5]))
    assert (data.mean, data.std) == ((0.25,), (0.5,)) and own.mean != data.mean
    assert data.value_range is None  # evaluated images are checked against the run's range
    for mine, theirs in ((data.test.x, own.test.x), (data.train.x, own.train.x)):
        images = theirs * own.std[0] + own.mean[0]  # the same images, before normalising
        assert np.allclose(mine, (images - given[0]) / given[1], atol=1e-5)
    with pytest.raises(ConfigError, match=r"trained on images with 3 channel\(s\), these have 1"):
        prepare(raw, normalisation=([0.5] * 3, [0.2] * 3))


def test_multiclass_task_and_limits():
    data = prepare(
        load("fashion_mnist_mini"),
        task="multiclass",
        pad_to=None,
        limit_train=500,
        limit_test=100,
        val_fraction=0.2,
    )
    assert data.n_outputs == 10 and data.input_shape == (1, 28, 28)
    assert data.balance["train"] == [40] * 10 and data.balance["val"] == [10] * 10
    assert data.balance["test"] == [10] * 10


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"positive": [6, 0], "negative": [0]}, r"share classes \[0\]"),
        (
            {"positive": [10]},
            r"^positive has classes \[10\] outside 0..9, the data's: .* or task=multiclass",
        ),
        ({"negative": []}, "^negative must list at least one class"),
        ({"task": "regression"}, "^task='regression' is unknown"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\)"),
        ({"pad_to": 20}, "pad_to=20 is smaller than the 28x28 images"),
        ({"limit_train": 0}, "limit_train must be a positive number"),
        ({"limit_test": 9, "task": "multiclass"}, "limit_test=9 is fewer than the 10 classes"),
    ],
)
def test_bad_data_settings_are_rejected(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        prepare(load("fashion_mnist_mini"), **kwargs)


@pytest.mark.parametrize(
    "task,limit,counts", [("multiclass", 25, {2, 3}), ("binary", 25, {12, 13})]
)
def test_a_limit_takes_exactly_that_many_images_with_each_class_in_proportion(task, limit, counts):
    """25 of 10 equal classes: 2.5 each, so five classes get 3 (drawn at random), not 2 or 3
    each as rounding gives (20 or 30 images)."""
    raw = load("fashion_mnist_mini")
    drawn = []
    for seed in range(5):
        data = prepare(raw, task=task, limit_train=limit, limit_test=limit, seed=seed)
        for split in (data.test, Split(np.concatenate([data.train.x, data.val.x]),
                                       np.concatenate([data.train.y, data.val.y]))):  # fmt: skip
            per_class = np.bincount(split.y)
            assert len(split.y) == limit and set(per_class) == counts
        drawn.append(tuple(np.bincount(data.test.y)))
    assert len(set(drawn)) > 1  # which classes get the extra image is drawn


def test_a_limit_above_the_images_there_are_is_warned_about(caplog):
    raw = load("fashion_mnist_mini")  # 2,000 training images of Shirt and T-shirt/top
    with caplog.at_level("WARNING"):
        data = prepare(raw, limit_train=2000, val_fraction=0.0)
        assert caplog.text == "" and len(data.train.y) == 2000
        prepare(raw, limit_train=4000, val_fraction=0.0)
    assert "limit_train=4000 is more than the 2000 images: all of them are used" in caplog.text


def test_a_class_missing_from_a_split_is_warned_about():
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, (n, 1, 6, 6), dtype=np.uint8)  # noqa: E731
    y_train = np.array([0] * 9 + [1, 2] * 9, dtype=np.int64)  # every class to train on
    y_test = np.array([0, 0, 2], dtype=np.int64)  # no "b" to test on
    raw = RawData("toy", ("a", "b", "c"), images(27), y_train, images(3), y_test)
    splits = prepare(raw, "multiclass", pad_to=None, val_fraction=0.2)
    assert splits.balance["test"] == [2, 0, 1] and min(splits.balance["val"]) > 0
    assert gaps(splits) == [
        "the test split holds no images of b: test accuracy leaves it out; use more images of it"
    ]
    assert gaps(splits, {"test": "data.limit_test=3"})[0].endswith(
        "use more images of it (or a larger data.limit_test=3)"
    )
    no_c = np.where(y_train == 2, 1, y_train)  # no "c" to learn from, nor to validate on
    raw = RawData("toy", ("a", "b", "c"), raw.x_train, no_c, raw.x_test, y_test)
    splits = prepare(raw, "multiclass", pad_to=None, val_fraction=0.2)
    assert [w.split(":")[0] for w in gaps(splits)] == [
        f"the {split} split holds no images of {missing}"
        for split, missing in (("training", "c"), ("validation", "c"), ("test", "b"))
    ]
    assert "c: the model never learns it; use more images of it" in gaps(splits)[0]


def test_batches_cover_the_split_in_a_new_order_each_epoch():
    data = prepare(load("fashion_mnist_mini"), limit_train=110, val_fraction=0.0)
    batches = Batches(data.train, 32, seed=5)
    assert len(batches) == 4 and len(Batches(data.train, 32, drop_last=True)) == 3

    def firsts(epoch):
        return [float(x[0, 0, 16, 16]) for x, _ in batches.epoch(epoch)]

    sizes = [len(y) for _, y in batches.epoch(0)]
    assert sizes == [32, 32, 32, 14]
    seen = np.sort(np.concatenate([x.reshape(len(x), -1).sum(1) for x, _ in batches.epoch(0)]))
    assert np.allclose(seen, np.sort(data.train.x.reshape(110, -1).sum(1)))
    assert firsts(0) == firsts(0) and firsts(0) != firsts(1)
    assert [float(x[0, 0, 16, 16]) for x, _ in batches.epoch(0, start=2)] == firsts(0)[2:]
    for epoch, start in ((-1, 0), (0, -1)):  # a batch -1 would be an empty one
        with pytest.raises(ConfigError, match=f"epoch={epoch} and start={start} must be >= 0"):
            next(batches.epoch(epoch, start))
    with pytest.raises(TypeError, match=r"iterate the batches of one epoch, batches.epoch\(n\)"):
        for _ in batches:  # which epoch's order? name it
            pass
    with pytest.raises(ConfigError, match="batch_size=200 is larger than the 110"):
        Batches(data.train, 200, drop_last=True)
    assert len(Batches(data.train, 110, drop_last=True)) == 1  # one batch of them all
    in_order = [(x, y) for x, y in Batches(data.train, 32, shuffle=False).epoch(3)]
    assert [len(y) for _, y in in_order] == [32, 32, 32, 14]  # the stored order, every epoch
    assert np.array_equal(np.concatenate([x for x, _ in in_order]), data.train.x)
    assert np.array_equal(np.concatenate([y for _, y in in_order]), data.train.y)
    with pytest.raises(DataError, match="a split of 110 images but 109 labels: give one label"):
        Split(data.train.x, data.train.y[:109])  # a split of one's own, its labels cut short


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="apt-get install dataset-fashion-mnist first")
def test_full_fashion_mnist_from_debian():
    for spec in sources.FASHION_MNIST.files.values():
        raw_bytes = gzip.decompress((DEBIAN / (spec.name + ".gz")).read_bytes())
        assert hashlib.sha256(raw_bytes).hexdigest() == spec.sha256, spec.name
    raw = load("fashion_mnist", download_ok=False)
    assert raw.x_train.shape == (60_000, 1, 28, 28) and raw.x_test.shape == (10_000, 1, 28, 28)
    assert np.bincount(raw.y_train).tolist() == [6000] * 10


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="apt-get install dataset-fashion-mnist first")
def test_the_embedded_subset_is_regenerated_byte_for_byte(tmp_path):
    script = Path(__file__).parents[1] / "scripts" / "make_fashion_mnist_mini.py"
    out = tmp_path / "mini.npz"
    done = subprocess.run(
        [sys.executable, script, "--root", DEBIAN, "--out", out], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == sources.mini_path().read_bytes()


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="apt-get install dataset-fashion-mnist first")
def test_fashion_mnist_files_are_not_taken_for_another_set():
    with pytest.raises(DataError, match="holds Fashion-MNIST's images, not MNIST's: choose"):
        load("mnist", root=DEBIAN, download_ok=False)


def test_a_missing_set_is_downloaded_into_the_cache(tmp_path, http_dir, monkeypatch):
    served, url = http_dir
    arrays = _fake_set(np.random.default_rng(4))
    _write_set(served, arrays)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GPUCNN_DATA", raising=False)
    monkeypatch.setitem(sources.SOURCES, "fashion_mnist", _source_for(arrays))
    raw = load("fashion_mnist", url=url)
    assert np.array_equal(raw.y_train, arrays["train_labels"])
    assert (tmp_path / ".cache/gpucnn/fake/train-images-idx3-ubyte.gz").is_file()
    assert load("fashion_mnist", download_ok=False).x_train.shape == (60, 1, 28, 28)  # now cached


def test_the_log_describes_each_split_and_says_none_for_an_empty_one():
    text = describe(prepare(load("fashion_mnist_mini"), val_fraction=0))
    assert text.splitlines() == [
        "classes: 0=T-shirt/top, 1=Shirt",
        "train: 2,000 images; per label: 1,000 (50%), 1,000 (50%)",
        "val: none",
        "test: 400 images; per label: 200 (50%), 200 (50%)",
    ]
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (5, 8, 8), dtype=np.uint8), np.array([0, 1, 0, 1, 0])
    one_test = describe(prepare(from_arrays(x[:4], y[:4], x[4:], y[4:]), "multiclass", pad_to=None))
    assert "test: 1 image; per label: 1 (100%), 0 (0%)" in one_test.splitlines()
