"""Training images augmented on the device (data.flip, data.shift) and drawn class-balanced
(data.balanced): what each does, that each epoch's draws repeat exactly (a resumed run sees the
same images), and the checks."""

import signal

import numpy as np
import pytest

from gpucnn import backend
from gpucnn.data import Batches
from gpucnn.data.batches import shifted
from gpucnn.data.prepare import Split
from gpucnn.errors import ConfigError

from .helpers import TINY, app
from .test_data import _fake_set, _write_set
from .test_reliability import RUN, stop_mid_epoch, weights


@pytest.fixture(autouse=True)
def numpy_backend():
    backend.use("numpy", "float32", 0)


def split(n=40, size=6, channels=2):
    """Images that are all different, and different from their own mirror images."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, channels, size, size)).astype(np.float32)
    return Split(x, np.arange(n) % 3)


def batches_of(batches, epoch, start=0):
    return [(x.copy(), y.copy()) for x, y in batches.epoch(epoch, start)]


def test_a_shift_moves_the_image_and_fills_in_with_its_edge_pixels():
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    down_left = shifted(x, np.array([[1, -1]]), most=1)[0, 0]
    assert down_left.tolist() == [[1, 2, 2], [1, 2, 2], [4, 5, 5]]
    same = shifted(x, np.array([[0, 0]]), most=2)
    assert np.array_equal(same, x)


def test_each_image_and_channel_of_a_batch_moves_by_its_images_shift():
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3)
    shifts = np.array([[1, -1], [-1, 1]])
    moved = shifted(x, shifts, most=1)
    for i in range(2):
        for c in range(2):
            alone = shifted(x[i : i + 1, c : c + 1], shifts[i : i + 1], most=1)[0, 0]
            assert np.array_equal(moved[i, c], alone), (i, c)


def test_flips_mirror_some_images_and_leave_the_rest_and_the_labels():
    data = split()
    plain = Batches(data, 8, seed=3)
    flipped = Batches(data, 8, seed=3, flip=True)
    mirrored = kept = 0
    for (x, y), (fx, fy) in zip(plain.epoch(0), flipped.epoch(0)):
        assert np.array_equal(y, fy)  # the same order: augmenting draws from its own stream
        for image, seen in zip(x, fx):
            if np.array_equal(seen, image):
                kept += 1
            else:
                assert np.array_equal(seen, image[..., ::-1])
                mirrored += 1
    assert mirrored and kept and mirrored + kept == 40


@pytest.mark.parametrize("device", ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_shifts_stay_within_the_pixels_asked_for_and_go_each_way(device):
    backend.use(device, "float32", 0)
    n, size = 400, 15
    x = np.zeros((n, 1, size, size), dtype=np.float32)
    x[:, 0, 7, 3] = 1.0  # one bright pixel, on the left: mirrored, it is at column 11
    on_device = Split(backend.to_device(x), backend.to_device(np.zeros(n, dtype=np.int64)))
    moves = {False: set(), True: set()}
    for xb, _ in Batches(on_device, 50, seed=1, flip=True, shift=2).epoch(0):
        for image in backend.to_host(xb):
            (row,), (col,) = np.nonzero(image[0])
            mirrored = col > 7
            moves[mirrored].add((row - 7, col - (11 if mirrored else 3)))
    every = {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert moves[False] == moves[True] == every


def test_the_draws_repeat_for_an_epoch_and_change_between_epochs():
    batches = Batches(split(), 8, seed=3, flip=True, shift=1)
    first = batches_of(batches, 0)
    again = batches_of(Batches(split(), 8, seed=3, flip=True, shift=1), 0)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    resumed = batches_of(batches, 0, start=2)  # a run resumed after two batches of epoch 0
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first[2:], resumed))
    second = batches_of(batches, 1)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, second))


def drawn(labels, device, epoch=0, start=0):
    """(the images, the labels) of a balanced epoch of one-pixel images whose pixel is their
    number in ``labels``, on ``device``."""
    backend.use(device, "float32", 0)
    x = np.arange(len(labels), dtype=np.float32).reshape(-1, 1, 1, 1)
    images = Split(backend.to_device(x), backend.to_device(labels))
    batches = Batches(images, 100, seed=2, balanced=True)
    parts = [
        (backend.to_host(xb).ravel(), backend.to_host(yb)) for xb, yb in batches.epoch(epoch, start)
    ]
    return np.concatenate([p[0] for p in parts]).astype(int), np.concatenate([p[1] for p in parts])


@pytest.mark.parametrize("device", ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_balanced_draws_take_each_class_as_often_and_repeat_for_an_epoch(device):
    labels = np.r_[np.zeros(900, np.int64), np.ones(90, np.int64), np.full(10, 3)]  # no 2
    images, ys = drawn(labels, device)
    assert len(images) == 1000 and np.array_equal(labels[images], ys)  # each with its label
    counts = np.bincount(ys, minlength=4)
    spread = 5 * (1000 * (1 / 3) * (2 / 3)) ** 0.5  # five standard deviations of a count
    assert counts[2] == 0 and all(abs(counts[k] - 1000 / 3) < spread for k in (0, 1, 3))
    assert set(images[ys == 3]) == set(range(990, 1000))  # the small class's every image
    assert np.array_equal(drawn(labels, "numpy")[0], images)  # the same draw on each device
    assert np.array_equal(drawn(labels, device, start=3)[0], images[300:])  # resumed
    assert not np.array_equal(drawn(labels, device, epoch=1)[0], images)


def test_a_shift_larger_than_the_images_is_refused():
    with pytest.raises(ConfigError, match="shift=6 would move the 6x6 images out of themselves"):
        Batches(split(), 8, shift=6)
    with pytest.raises(ConfigError, match="shift must be a number of pixels >= 0, got -1"):
        Batches(split(), 8, shift=-1)


def test_augmented_runs_train_and_are_checked_by_key(tmp_path):
    proc = app(*TINY, "data.flip=true", "data.shift=2", "data.balanced=true",
               f"hydra.run.dir={tmp_path / 'ok'}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    too_far = app(*TINY, "data.shift=32", f"hydra.run.dir={tmp_path / 'far'}")
    assert too_far.returncode == 2
    assert "data.shift=32 would move the 32x32 training images" in too_far.stdout + too_far.stderr
    mnist = tmp_path / "mnist"
    _write_set(mnist, _fake_set(np.random.default_rng(0), n_train=200, n_test=40))
    digits = app(
        *TINY, "data=mnist", f"data.root={mnist}", "data.flip=true", "data.task=multiclass",
        f"hydra.run.dir={tmp_path / 'digits'}",
    )  # fmt: skip
    assert digits.returncode == 0, digits.stderr
    assert "data.flip=true mirrors MNIST's digits" in digits.stdout + digits.stderr


@pytest.mark.parametrize("device", ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_an_augmented_run_killed_mid_epoch_resumes_bit_identical(tmp_path, device):
    run = [f"backend={device}", *RUN, "data.flip=true", "data.shift=2"]
    assert app(*run, f"hydra.run.dir={tmp_path / 'whole'}").returncode == 0
    proc, pos = stop_mid_epoch(run, tmp_path / "cut", signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL and pos[0] == 1
    done = app(*run, f"hydra.run.dir={tmp_path / 'cut'}", "train.resume=true")
    assert done.returncode == 0, done.stderr
    whole, resumed = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert all(np.array_equal(resumed[k], whole[k]) for k in whole)
