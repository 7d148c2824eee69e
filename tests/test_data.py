"""gan_core.data on tiny fixtures written in each library's own on-disk format (no network)."""
import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from gan_core.config import ConfigError, from_dict
from gan_core.data import DEBIAN_FASHION_MNIST, DataError, ImageData, data_spec, load_data, read_idx

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load(root: Path | None = None, batch_size: int = 4, seed: int = 0, **data) -> ImageData:
    """``load_data`` on a config built from ``data.*`` keys, with a small batch for subset checks;
    ``data_spec`` agrees with it."""
    if root is not None:
        data["root"] = str(root)
    config = from_dict({"data": data, "train": {"batch_size": batch_size, "seed": seed}}, "test")
    loaded = load_data(config)
    assert data_spec(config) == (loaded.shape, loaded.classes)  # what a model is built from, without loading
    return loaded


def unit(images: np.ndarray) -> torch.Tensor:
    """uint8 pixels -> [-1, 1], as load_data scales them."""
    return torch.from_numpy(images).float() / 127.5 - 1


def assert_images(images: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(images.shape) == shape
    assert images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1 and torch.isfinite(images).all()


def all_batches(data: ImageData, batch_size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x, y) for x, y in data.batches(batch_size, seed)]


# --- fixtures in the libraries' formats -------------------------------------------------------

def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX as LeCun's MNIST ships it: magic 0x0000_08_ndim (uint8), big-endian dims, raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist_like(folder: Path, suffix: str = "", n_train: int = 40, n_test: int = 12) -> dict:
    """``{train,t10k}-{images-idx3,labels-idx1}-ubyte[suffix]``; returns {prefix: (images, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        out[prefix] = images, labels
    return out


def write_cifar10(root: Path, per_batch: int = 4) -> dict:
    """cifar-10-batches-py as torchvision reads it; returns {"train"/"test": (N,3,32,32) uint8, labels}."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def dump(name: str, obj: dict) -> None:
        # CIFAR's Python-2 pickles have str keys once torchvision loads them with encoding="latin1"
        with open(base / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    out = {"train": ([], []), "test": ([], [])}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)  # rows: R plane, G plane, B plane
        labels = rng.integers(0, 10, per_batch).tolist()
        dump(name, {"batch_label": name, "data": data, "labels": labels,
                    "filenames": [f"{name}_{i}.png" for i in range(per_batch)]})
        images, targets = out["test" if name == "test_batch" else "train"]
        images.append(data.reshape(-1, 3, 32, 32))
        targets.extend(labels)
    dump("batches.meta", {"label_names": CIFAR_NAMES, "num_cases_per_batch": per_batch, "num_vis": 3072})
    return {split: (np.concatenate(images), targets) for split, (images, targets) in out.items()}


def write_random_image(path: Path, height: int, width: int, rng: np.random.Generator) -> None:
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def write_flowers102(root: Path) -> np.ndarray:
    """flowers-102/jpg/image_NNNNN.jpg, imagelabels.mat, setid.mat (1-based ids); returns labels 1..102."""
    base = root / "flowers-102"
    (base / "jpg").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 13):
        write_random_image(base / "jpg" / f"image_{i:05d}.jpg", 30 + i, 40, rng)
    labels = rng.integers(1, 103, 12)
    savemat(base / "imagelabels.mat", {"labels": labels})
    savemat(base / "setid.mat", {"trnid": np.arange(1, 9), "valid": np.array([9, 10]),
                                 "tstid": np.array([11, 12])})
    return labels


def write_image_folder(root: Path) -> Path:
    """ROOT/CLASS/*.png with non-square sizes: 5 of 24x40 in class_a, 3 of 50x20 in class_b."""
    rng = np.random.default_rng(0)
    for name, count, (h, w) in (("class_a", 5, (24, 40)), ("class_b", 3, (50, 20))):
        (root / name).mkdir(parents=True)
        for i in range(count):
            write_random_image(root / name / f"{i}.png", h, w, rng)
    return root


# --- one test per data set ---------------------------------------------------------------------

@pytest.mark.parametrize("image_size", [28, 32, 64])
def test_mnist_from_torchvision_root(tmp_path, image_size):
    raw = write_mnist_like(tmp_path / "MNIST" / "raw")
    data = load(tmp_path, name="mnist", image_size=image_size)
    images, labels = raw["train"]
    assert len(data) == 40 and data.shape == (1, image_size, image_size)
    assert_images(data.images, (40, 1, image_size, image_size))
    assert data.labels.tolist() == labels.tolist()
    if image_size == 28:
        assert torch.allclose(data.images, unit(images)[:, None])
    assert len(load(tmp_path, name="mnist", split="test")) == 12
    assert_images(load(tmp_path, name="mnist", image_size=image_size, channels=3).images,
                  (40, 3, image_size, image_size))


@pytest.mark.parametrize("channels", [None, 1])
def test_cifar10_local_copy_without_md5(tmp_path, channels):
    images, labels = write_cifar10(tmp_path)["train"]
    data = load(tmp_path, name="cifar10", image_size=32, channels=channels)
    assert list(data.classes) == CIFAR_NAMES and data.labels.tolist() == labels
    expected = unit(images)
    if channels == 1:
        expected = expected.mean(1, keepdim=True)
    assert_images(data.images, (20,) + tuple(expected.shape[1:]))
    assert torch.allclose(data.images, expected, atol=1e-6)
    assert len(load(tmp_path, name="cifar10", split="test")) == 4


def test_flowers102_streams_batches(tmp_path):
    labels = write_flowers102(tmp_path)
    data = load(tmp_path, batch_size=3, name="flowers102", image_size=32)
    assert data.images is None and len(data) == 8 and data.shape == (3, 32, 32)
    batches = all_batches(data, 3, seed=0)
    assert len(batches) == 2  # 8 images: full batches only
    for x, y in batches:
        assert_images(x, (3, 3, 32, 32))
        assert set(y.tolist()) <= set((labels[:8] - 1).tolist())  # 0-based in torchvision
    assert len(load(tmp_path, batch_size=2, name="flowers102", split="test")) == 2


def test_imagefolder_resize_crop_and_class_filter(tmp_path):
    root = write_image_folder(tmp_path / "images")
    data = load(root, name="imagefolder", image_size=32)
    assert list(data.classes) == ["class_a", "class_b"] and len(data) == 8
    for i in range(len(data)):
        assert_images(data.dataset[i][0], (3, 32, 32))
    grey = load(root, name="imagefolder", image_size=64, channels=1)
    assert grey.shape == (1, 64, 64)
    assert_images(grey.dataset[7][0], (1, 64, 64))
    only_b = load(root, batch_size=2, name="imagefolder", classes=["class_b"])
    assert len(only_b) == 3 and {only_b.dataset[i][1] for i in range(3)} == {1}


@pytest.mark.parametrize("flip, dim", [("hflip", -1), ("vflip", -2)])
def test_imagefolder_flips(tmp_path, flip, dim):
    root = write_image_folder(tmp_path / "images")
    plain = load(root, name="imagefolder", image_size=32)
    flipped = load(root, name="imagefolder", image_size=32, **{flip: True})
    torch.manual_seed(0)
    outcomes = []
    for i in range(len(plain)):
        x, want = flipped.dataset[i][0], plain.dataset[i][0]
        assert torch.equal(x, want) or torch.equal(x, want.flip(dim))
        outcomes.append(torch.equal(x, want))
    assert len(set(outcomes)) == 2  # some flipped, some not


def test_imagefolder_batches_are_deterministic(tmp_path):
    data = load(write_image_folder(tmp_path / "images"), name="imagefolder", image_size=32)
    first, second = all_batches(data, 4, seed=3), all_batches(data, 4, seed=3)
    assert len(first) == 2
    for (x1, y1), (x2, y2) in zip(first, second):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


@pytest.mark.parametrize("split, size", [("train", 1500), ("test", 297)])
@pytest.mark.parametrize("image_size", [28, 32])
def test_digits_upsampled(split, size, image_size):
    data = load(name="digits", split=split, image_size=image_size)
    assert len(data) == size and data.classes == [str(i) for i in range(10)]
    assert_images(data.images, (size, 1, image_size, image_size))
    assert data.images.min() == -1 and data.images.max() > 0.9
    assert set(data.labels.tolist()) == set(range(10))


def test_fashion_mnist_from_root(tmp_path):
    raw = write_mnist_like(tmp_path / "fmnist", suffix=".gz")  # Debian's layout
    data = load(tmp_path / "fmnist", name="fashion-mnist")
    images, labels = raw["train"]
    assert data.classes[1] == "Trouser" and data.labels.tolist() == labels.tolist()
    assert torch.allclose(data.images, unit(images)[:, None])
    test = load(tmp_path / "fmnist", name="fashion-mnist", split="test", image_size=32)
    assert_images(test.images, (12, 1, 32, 32))


def test_idx_files_are_read_once_until_they_change(tmp_path):
    """A run's notebooks each load the data set: the decoded file is kept while it is unchanged,
    read-only (load_data copies it), and read again once it changes."""
    path = tmp_path / "images-idx3-ubyte.gz"
    write_idx(path, np.zeros((3, 2, 2), np.uint8))
    first = read_idx(path)
    assert read_idx(path) is first and not first.flags.writeable
    write_idx(path, np.full((4, 2, 2), 7, np.uint8))
    changed = read_idx(path)
    assert changed.shape == (4, 2, 2) and changed.max() == 7
    stat = path.stat()
    write_idx(path, np.full((4, 2, 2), 9, np.uint8))  # the same size, rewritten within the same clock tick
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert read_idx(path).max() == 9


def test_fashion_mnist_missing_root(tmp_path):
    with pytest.raises(DataError) as err:
        load(tmp_path / "nowhere", name="fashion-mnist")
    assert "apt-get install dataset-fashion-mnist" in str(err.value)
    assert str(tmp_path / "nowhere") in str(err.value)


def test_fashion_mnist_debian_copy():
    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"no Fashion-MNIST in {DEBIAN_FASHION_MNIST} (apt-get install dataset-fashion-mnist)")
    train = load(name="fashion-mnist")
    assert_images(train.images, (60000, 1, 28, 28))
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert len(load(name="fashion-mnist", split="test")) == 10000


@pytest.mark.parametrize("name, how", [("mnist", "MNIST/raw"), ("cifar10", "cifar-10-batches-py")])
def test_missing_torchvision_data_does_not_download(tmp_path, monkeypatch, name, how):
    from torchvision.datasets import CIFAR10, MNIST

    def no_download(self):
        raise AssertionError("tried to download")

    for cls in (MNIST, CIFAR10):
        monkeypatch.setattr(cls, "download", no_download)
    with pytest.raises(DataError) as err:
        load(tmp_path, name=name)
    message = str(err.value)
    assert "data.root" in message and str(tmp_path) in message and how in message
    assert "data.download: true" in message
    assert list(tmp_path.iterdir()) == []  # nothing fetched or created


def test_imagefolder_missing_root(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load(tmp_path / "nowhere", name="imagefolder")


# --- selection and batches ---------------------------------------------------------------------

def test_subset_first_and_random():
    full = load(name="digits")
    first = load(name="digits", subset=16)
    assert torch.equal(first.images, full.images[:16]) and torch.equal(first.labels, full.labels[:16])
    random = load(name="digits", subset=16, subset_mode="random", seed=1)
    assert len(random) == 16 and not torch.equal(random.labels, first.labels)
    assert torch.equal(random.images, load(name="digits", subset=16, subset_mode="random", seed=1).images)
    assert not torch.equal(random.images, load(name="digits", subset=16, subset_mode="random", seed=2).images)
    # a random subset is a subset of the full set, in the set's own order
    rows = [(full.images == img).flatten(1).all(1).nonzero().flatten()[0].item() for img in random.images]
    assert rows == sorted(rows)


def test_class_filter_by_id_and_name(tmp_path):
    assert set(load(name="digits", classes=[3, 5]).labels.tolist()) == {3, 5}
    assert set(load(name="digits", classes=["7"]).labels.tolist()) == {7}
    _, labels = write_cifar10(tmp_path)["train"]
    cats_ships = load(tmp_path, name="cifar10", classes=["cat", "ship"])
    assert cats_ships.labels.tolist() == [y for y in labels if y in (3, 8)]
    write_mnist_like(tmp_path / "fmnist")
    trousers = load(tmp_path / "fmnist", name="fashion-mnist", classes=["Trouser", 9], subset=4)
    assert len(trousers) == 4 and set(trousers.labels.tolist()) == {1, 9}


@pytest.mark.parametrize("bad", ["unicorn", 12])
def test_unknown_class_is_named(bad):
    with pytest.raises(ConfigError) as err:
        load(name="digits", classes=[bad])
    assert repr(bad) in str(err.value) and "data.classes" in str(err.value)


def test_in_memory_batches():
    n = 10
    data = ImageData("ids", [str(i) for i in range(n)], (1, 1, 1), n,
                     images=torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), labels=torch.arange(n))
    epoch = all_batches(data, 3, seed=0)
    assert [len(y) for _, y in epoch] == [3, 3, 3]  # the tenth image waits for another epoch
    seen = torch.cat([y for _, y in epoch]).tolist()
    assert len(set(seen)) == 9 and set(seen) <= set(range(n))
    assert all(torch.equal(x.flatten(), y.float()) for x, y in epoch)  # images travel with labels
    assert seen == torch.cat([y for _, y in all_batches(data, 3, seed=0)]).tolist()
    assert seen != torch.cat([y for _, y in all_batches(data, 3, seed=1)]).tolist()
    assert data.sample(4, seed=0).shape == (4, 1, 1, 1) and len(data.sample(50)) == n
