"""blockzoo.data's torchvision data sets, read from tiny copies written in each set's on-disk format.

Nothing is ever downloaded. The fixtures write a few samples per split where torchvision looks
for the real files, with the file names taken from torchvision's own class attributes
(``base_folder``, ``train_list``, ``test_list``, ``meta``, ``resources``), so blockzoo's list of
expected files is checked against torchvision's rather than against itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import re
import struct
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

import blockzoo
from blockzoo.data import dataset_info, list_datasets, load_data, torchvision_dataset
from blockzoo.errors import DatasetNotFoundError, UnknownNameError

datasets = pytest.importorskip("torchvision.datasets")
v2 = pytest.importorskip("torchvision.transforms.v2")

N_TRAIN_BATCH, N_TEST = 3, 4  # samples per CIFAR training batch, samples in each test split
N_MNIST_TRAIN = 5

# The normalisation constants as published with each data set (typed here, not read from blockzoo).
PUBLISHED = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
}


CLASSES = {
    "cifar10": datasets.CIFAR10,
    "cifar100": datasets.CIFAR100,
    "mnist": datasets.MNIST,
    "fashion_mnist": datasets.FashionMNIST,
}


def checked_files(cls: Any) -> tuple[str, list[str]]:
    """The folder under root and the files that torchvision's class checks, read from its class attributes."""
    if issubclass(cls, datasets.CIFAR10):
        return cls.base_folder, [name for name, _ in [*cls.train_list, *cls.test_list]] + [cls.meta["filename"]]
    return f"{cls.__name__}/raw", [os.path.splitext(url)[0] for url, _ in cls.resources]  # archives without .gz


class Fake(NamedTuple):
    root: Path
    folder: Path
    files: list[str]  # the files torchvision checks, from its class attributes
    train: np.ndarray  # uint8 images, HWC (CIFAR) or HW (MNIST)
    test: np.ndarray


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def write_pickle(path: Path, obj: object) -> None:
    with path.open("wb") as f:
        pickle.dump(obj, f)


def write_cifar(root: Path, cls: Any, monkeypatch: pytest.MonkeyPatch) -> Fake:
    """CIFAR's python-pickle batches: dicts with ``data`` [N, 3072] uint8 (R, G, B planes) and labels."""
    rng = np.random.default_rng(0)
    folder = root / checked_files(cls)[0]
    folder.mkdir(parents=True)
    fine = cls is datasets.CIFAR100
    label_key = "fine_labels" if fine else "labels"
    n_classes = 100 if fine else 10

    def batch(path: Path, n: int) -> np.ndarray:
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        write_pickle(path, {"data": data, label_key: [int(i) % n_classes for i in range(n)], "batch_label": "fake"})
        return data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)  # HWC, as torchvision holds it

    train = np.concatenate([batch(folder / name, N_TRAIN_BATCH) for name, _ in cls.train_list])
    test = np.concatenate([batch(folder / name, N_TEST) for name, _ in cls.test_list])
    write_pickle(folder / cls.meta["filename"], {cls.meta["key"]: [f"class {i}" for i in range(n_classes)]})
    # torchvision compares the md5 of every file with the real CIFAR files' md5s, listed on the class;
    # there is no public way to skip that check. Here, in the test only, the class's lists carry the
    # md5s of the fake files instead, so torchvision still runs its integrity check, on these files.
    monkeypatch.setattr(cls, "train_list", [[name, md5(folder / name)] for name, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[name, md5(folder / name)] for name, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / cls.meta["filename"])})
    assert sorted(p.name for p in folder.iterdir()) == sorted(checked_files(cls)[1])
    return Fake(root, folder, checked_files(cls)[1], train, test)


def write_idx(path: Path, array: np.ndarray) -> None:
    """The idx format: a big-endian magic (0, 0, type 0x08 = uint8, rank), the sizes, then the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, cls: Any) -> Fake:
    """MNIST's raw files, uncompressed: ``<class>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``."""
    rng = np.random.default_rng(1)
    folder = root / checked_files(cls)[0]
    folder.mkdir(parents=True)
    arrays = {}
    for prefix, n in (("train", N_MNIST_TRAIN), ("t10k", N_TEST)):
        arrays[prefix] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", arrays[prefix])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    assert sorted(p.name for p in folder.iterdir()) == sorted(checked_files(cls)[1])
    return Fake(root, folder, checked_files(cls)[1], arrays["train"], arrays["t10k"])


@pytest.fixture
def cifar10(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return write_cifar(tmp_path, datasets.CIFAR10, monkeypatch)


@pytest.fixture
def cifar100(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return write_cifar(tmp_path, datasets.CIFAR100, monkeypatch)


@pytest.fixture
def mnist(tmp_path: Path) -> Fake:
    return write_mnist(tmp_path, datasets.MNIST)


@pytest.fixture
def fashion_mnist(tmp_path: Path) -> Fake:
    return write_mnist(tmp_path, datasets.FashionMNIST)


def normalised(image: np.ndarray, name: str) -> torch.Tensor:
    """HWC or HW uint8 -> CHW float, (v / 255 - mean) / std with the published constants."""
    mean, std = (torch.tensor(v).view(-1, 1, 1) for v in PUBLISHED[name])
    chw = torch.from_numpy(image).float().reshape(*image.shape[:2], -1).permute(2, 0, 1)
    return (chw / 255 - mean) / std


# ----------------------------------------------------------------------------- names and info


def test_list_datasets_is_sorted_and_complete() -> None:
    assert list_datasets() == ["cifar10", "cifar100", "digits", "fashion_mnist", "mnist"]


@pytest.mark.parametrize("name", ["digits", "cifar10", "cifar100", "mnist", "fashion_mnist"])
def test_dataset_info_is_consistent(name: str) -> None:
    info = dataset_info(name)
    assert info.name == name
    assert len(info.classes) == len(set(info.classes)) == info.num_classes
    assert len(info.mean) == len(info.std) == info.in_channels
    assert all(0 <= m < 1 for m in info.mean)
    assert all(s > 0 for s in info.std)
    if name != "digits":
        assert (info.mean, info.std) == PUBLISHED[name]
    assert info.augment == name.startswith("cifar")


def test_dataset_info_values() -> None:
    assert (dataset_info("cifar10").num_classes, dataset_info("cifar100").num_classes) == (10, 100)
    assert [(dataset_info(n).in_channels, dataset_info(n).image_size) for n in ("cifar10", "mnist", "digits")] == [
        (3, 32),
        (1, 28),
        (1, 8),
    ]
    assert dataset_info("mnist").classes == tuple(datasets.MNIST.classes)
    assert dataset_info("fashion_mnist").classes == tuple(datasets.FashionMNIST.classes)
    fine = dataset_info("cifar100").classes
    assert list(fine) == sorted(fine)
    assert {"apple", "aquarium_fish", "worm"} <= set(fine)
    assert {"airplane", "cat", "truck"} <= set(dataset_info("cifar10").classes)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset_info("mnist").num_classes = 3  # type: ignore[misc]


def test_unknown_names_suggest_close_ones() -> None:
    message = (
        "Unknown data set 'cifar'. Did you mean 'cifar10', 'cifar100'? blockzoo.data.list_datasets() lists them all."
    )
    for call in (dataset_info, load_data, lambda n: torchvision_dataset(n, "root")):
        with pytest.raises(UnknownNameError, match=f"^{re.escape(message)}$"):
            call("cifar")


# ----------------------------------------------------------------------------- reading the files


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_test_split_is_normalised_and_not_augmented(name: str, request: pytest.FixtureRequest) -> None:
    fake: Fake = request.getfixturevalue(name)
    test = torchvision_dataset(name, fake.root, train=False)
    assert isinstance(test, datasets.CIFAR10)
    assert len(test) == N_TEST
    for i in range(N_TEST):
        image, label = test[i]
        assert type(image) is torch.Tensor
        assert image.shape == (3, 32, 32)
        assert image.dtype == torch.float32
        torch.testing.assert_close(image, normalised(fake.test[i], name))
        assert label == i
    torch.testing.assert_close(test[0][0], test[0][0])  # no randomness


def test_a_pixel_of_known_value_maps_to_its_normalised_value(cifar10: Fake) -> None:
    test = torchvision_dataset("cifar10", cifar10.root, train=False)
    v = cifar10.test[0, 0, 0]  # the top-left RGB pixel of the first test image
    expected = [(v[0] / 255 - 0.4914) / 0.2470, (v[1] / 255 - 0.4822) / 0.2435, (v[2] / 255 - 0.4465) / 0.2616]
    assert test[0][0][:, 0, 0].tolist() == pytest.approx(expected, abs=1e-5)


def augmented_versions(image: np.ndarray, name: str) -> list[torch.Tensor]:
    """Every 32x32 crop of the image zero-padded by 4, and its mirror image, normalised."""
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    crops = [padded[i : i + 32, j : j + 32] for i in range(9) for j in range(9)]
    return [normalised(np.ascontiguousarray(c[:, ::-1] if flip else c), name) for c in crops for flip in (False, True)]


def test_cifar_training_split_is_augmented_by_default(cifar10: Fake) -> None:
    train = torchvision_dataset("cifar10", cifar10.root)
    assert len(train) == 5 * N_TRAIN_BATCH
    candidates = augmented_versions(cifar10.train[0], "cifar10")
    draws = [train[0][0] for _ in range(12)]
    for image in draws:
        assert any(torch.allclose(image, c, atol=1e-5) for c in candidates)
    assert len({d.numpy().tobytes() for d in draws}) > 1  # random crops and flips
    plain = torchvision_dataset("cifar10", cifar10.root, augment=False)
    torch.testing.assert_close(plain[0][0], normalised(cifar10.train[0], "cifar10"))


def test_cifar_test_split_can_be_augmented_explicitly(cifar10: Fake) -> None:
    test = torchvision_dataset("cifar10", cifar10.root, train=False, augment=True)
    image = test[1][0]
    assert any(torch.allclose(image, c, atol=1e-5) for c in augmented_versions(cifar10.test[1], "cifar10"))
    assert any(isinstance(t, v2.RandomCrop) for t in test.transform.transforms)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_sets_are_normalised_and_not_augmented(name: str, request: pytest.FixtureRequest) -> None:
    fake: Fake = request.getfixturevalue(name)
    train = torchvision_dataset(name, fake.root)
    test = torchvision_dataset(name, fake.root, train=False)
    assert (len(train), len(test)) == (N_MNIST_TRAIN, N_TEST)
    for split, raw in ((train, fake.train), (test, fake.test)):
        for i in range(len(split)):
            image, label = split[i]
            assert image.shape == (1, 28, 28)
            torch.testing.assert_close(image, normalised(raw[i], name))
            assert label == i % 10
    assert not any(isinstance(t, v2.RandomCrop | v2.RandomHorizontalFlip) for t in train.transform.transforms)


def test_mnist_has_no_standard_augmentation(mnist: Fake) -> None:
    with pytest.raises(
        ValueError,
        match=r"^augment=True needs a data set with a standard training augmentation \(cifar10, cifar100\); "
        r"mnist has none\. Pass your own transform to torchvision_dataset instead\. Received: augment=True$",
    ):
        torchvision_dataset("mnist", mnist.root, augment=True)


def test_an_explicit_transform_replaces_the_default(cifar10: Fake) -> None:
    train = torchvision_dataset("cifar10", cifar10.root, transform=np.asarray)
    image, _ = train[2]
    assert isinstance(image, np.ndarray)
    assert np.array_equal(image, cifar10.train[2])
    with pytest.raises(
        ValueError,
        match=r"^augment must be None when transform is given: transform replaces the default transform, "
        r"augmentation included\. Received: augment=False$",
    ):
        torchvision_dataset("cifar10", cifar10.root, transform=np.asarray, augment=False)


def test_mnist_legacy_processed_files_are_accepted(tmp_path: Path) -> None:
    # Old torchvision versions saved (images, labels) tensors under MNIST/processed; torchvision still reads them.
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir(parents=True)
    images = torch.full((2, 28, 28), 51, dtype=torch.uint8)
    for file in ("training.pt", "test.pt"):
        torch.save((images, torch.tensor([3, 4])), processed / file)
    image, label = torchvision_dataset("mnist", tmp_path)[1]
    assert label == 4
    torch.testing.assert_close(image, torch.full((1, 28, 28), (51 / 255 - 0.1307) / 0.3081))


# ----------------------------------------------------------------------------- missing data and bad arguments


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion_mnist"])
def test_a_missing_data_set_names_the_folder_the_files_and_download(name: str, tmp_path: Path) -> None:
    folder, files = checked_files(CLASSES[name])
    message = (
        f"Data set {name!r} not found: torchvision looks in {tmp_path / folder} for {', '.join(files)}, and none "
        f"of them is there. Pass download=True to download it into root. Received: root={str(tmp_path)!r}"
    )
    with pytest.raises(DatasetNotFoundError, match=f"^{re.escape(message)}$") as info:
        torchvision_dataset(name, str(tmp_path), train=False)
    assert isinstance(info.value, FileNotFoundError)
    assert blockzoo.DatasetNotFoundError is DatasetNotFoundError


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_each_file_torchvision_checks_is_required(name: str, request: pytest.FixtureRequest) -> None:
    fake: Fake = request.getfixturevalue(name)
    for file in fake.files:
        path = fake.folder / file
        content = path.read_bytes()
        path.unlink()
        with pytest.raises(DatasetNotFoundError, match=rf", and {re.escape(file)} missing\. Pass download=True "):
            torchvision_dataset(name, fake.root)
        path.write_bytes(content)
    torchvision_dataset(name, fake.root)


def test_root_must_be_a_path(cifar10: Fake) -> None:
    with pytest.raises(TypeError, match=r"^root must be a folder path \(a str or os\.PathLike\)\. Received: root=3$"):
        torchvision_dataset("cifar10", 3)  # type: ignore[arg-type]
    assert len(torchvision_dataset("cifar10", str(cifar10.root), train=False)) == N_TEST


def test_digits_are_not_a_torchvision_data_set() -> None:
    with pytest.raises(
        ValueError,
        match=r"^name must be a torchvision data set \(cifar10, cifar100, mnist, fashion_mnist\); digits is "
        r"blockzoo\.data\.digits\(\) \(or blockzoo\.data\.load_data\('digits'\)\)\. Received: name='digits'$",
    ):
        torchvision_dataset("digits", "root")


@pytest.mark.parametrize("value", [1, "yes"])
def test_augment_must_be_a_bool_or_none(value: object, cifar10: Fake) -> None:
    with pytest.raises(
        ValueError,
        match=f"^augment must be True, False or None \\(the data set's default\\)\\. Received: augment={re.escape(repr(value))}$",
    ):
        torchvision_dataset("cifar10", cifar10.root, augment=value)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- load_data


def test_load_data_gives_the_train_and_test_splits(cifar10: Fake) -> None:
    train, val, info = load_data("cifar10", root=cifar10.root)
    assert (len(train), len(val)) == (5 * N_TRAIN_BATCH, N_TEST)
    assert info == dataset_info("cifar10")
    assert any(isinstance(t, v2.RandomCrop) for t in train.transform.transforms)
    torch.testing.assert_close(val[0][0], normalised(cifar10.test[0], "cifar10"))
    train, _, info = load_data("cifar10", root=cifar10.root, augment=False, image_size=32, channels=3)
    assert info.augment is False
    torch.testing.assert_close(train[0][0], normalised(cifar10.train[0], "cifar10"))


def test_load_data_of_a_torchvision_set_needs_root() -> None:
    with pytest.raises(
        ValueError,
        match=r"^root must be the folder that holds mnist \(or receives it with download=True\); only digits "
        r"need none\. Received: root=None$",
    ):
        load_data("mnist")


@pytest.mark.parametrize(
    ("argname", "value", "native"), [("image_size", 64, 32), ("channels", 1, 3), ("channels", True, 3)]
)
def test_load_data_does_not_resize_torchvision_sets(argname: str, value: object, native: int) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^{argname} must be None or {native} for cifar10: torchvision data sets are loaded at their own "
        rf"size \(pass your own transform to torchvision_dataset to resize\)\. Received: {argname}={value!r}$",
    ):
        load_data("cifar10", root="root", **{argname: value})


def test_load_data_reports_a_missing_set(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"Pass download=True to download it into root\."):
        load_data("fashion_mnist", root=tmp_path)
