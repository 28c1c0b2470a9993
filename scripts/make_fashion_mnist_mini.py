"""Regenerate gpucnn/data/fashion_mnist_mini.npz from the full official Fashion-MNIST.

A stratified subset: the first 1,000 training and 200 test images of each class in a seeded
random order, so 10,000 training and 2,000 test images. The output is byte-for-byte the same on
every run (fixed seed, fixed zip timestamps).

    python scripts/make_fashion_mnist_mini.py [--root DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from gpucnn.data import sources

PER_CLASS = {"train": 1000, "test": 200}
SEED = 0


def stratified(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``per_class`` random examples of every class."""
    picks = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(picks))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, but with fixed timestamps so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="directory with the full Fashion-MNIST IDX files")
    parser.add_argument("--out", default=str(sources.mini_path()))
    args = parser.parse_args()
    full = sources.load("fashion_mnist", root=args.root, download_ok=False)
    rng = np.random.default_rng(SEED)
    arrays = {}
    for split, x, y in (("train", full.x_train, full.y_train), ("test", full.x_test, full.y_test)):
        keep = stratified(y, PER_CLASS[split], rng)
        arrays[f"{split}_images"] = x[keep, 0].astype(np.uint8)  # (N, 28, 28), as in the IDX
        arrays[f"{split}_labels"] = y[keep].astype(np.uint8)
    out = Path(args.out)
    write_npz(out, arrays)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"wrote {out} ({out.stat().st_size:,} bytes, sha256 {digest})")


if __name__ == "__main__":
    main()
