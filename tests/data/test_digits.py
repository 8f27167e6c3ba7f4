"""blockzoo.data.digits: the default split, enlarged and coloured images, and load_data('digits')."""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from blockzoo.data import DatasetInfo, dataset_info, digits, load_data

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@functools.cache
def raw_digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = sklearn_datasets.load_digits(return_X_y=True)
    return x, y


def bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize of [N, H, W] images, written from the definition (float64)."""

    def weights(n_in: int) -> np.ndarray:
        # Row i of the matrix holds the weights of the input pixels for output pixel i.
        m = np.zeros((size, n_in))
        for i in range(size):
            src = max((i + 0.5) * n_in / size - 0.5, 0.0)
            lo = min(math.floor(src), n_in - 1)
            hi = min(lo + 1, n_in - 1)
            frac = src - lo
            m[i, lo] += 1 - frac
            m[i, hi] += frac
        return m

    rows, cols = weights(images.shape[1]), weights(images.shape[2])
    return np.einsum("ih,nhw,jw->nij", rows, images, cols)


@pytest.mark.parametrize(("val_fraction", "seed"), [(0.2, 0), (0.5, 3)])
def test_default_split_is_the_raw_data_shuffled_by_the_seed(val_fraction: float, seed: int) -> None:
    x, y = raw_digits()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).numpy()
    n_val = round(len(x) * val_fraction)
    x_train, y_train, x_val, y_val = digits(val_fraction=val_fraction, seed=seed)
    expected_x = torch.from_numpy(x[perm] / 16.0).float()
    expected_y = torch.from_numpy(y[perm]).long()
    assert torch.equal(x_train, expected_x[n_val:])
    assert torch.equal(x_val, expected_x[:n_val])
    assert torch.equal(y_train, expected_y[n_val:])
    assert torch.equal(y_val, expected_y[:n_val])
    assert x_train.dtype == torch.float32
    assert y_train.dtype == torch.int64
    images = digits(val_fraction=val_fraction, seed=seed, images=True)
    assert torch.equal(images.x_train, x_train.reshape(-1, 1, 8, 8))


@pytest.mark.parametrize("image_size", [8, 12, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_images_have_the_requested_shape_dtype_and_range(image_size: int, channels: int) -> None:
    x_train, y_train, x_val, _ = digits(image_size=image_size, channels=channels)
    assert x_train.shape == (1438, channels, image_size, image_size)
    assert x_val.shape == (359, channels, image_size, image_size)
    assert x_train.dtype == torch.float32
    assert x_train.min() >= 0
    assert x_train.max() <= 1
    assert torch.equal(y_train, digits().y_train)  # the split does not depend on the image shape


def test_three_channels_repeat_the_grey_one() -> None:
    grey = digits(image_size=16).x_train
    rgb = digits(image_size=16, channels=3).x_train
    for c in range(3):
        assert torch.equal(rgb[:, c], grey[:, 0])
    assert torch.equal(digits(channels=3).x_val[:, 2:], digits(images=True).x_val)


def test_image_size_8_is_the_plain_images() -> None:
    assert torch.equal(digits(image_size=8).x_train, digits(images=True).x_train)


@settings(max_examples=8)
@given(size=st.integers(8, 40))
def test_enlarging_is_half_pixel_bilinear(size: int) -> None:
    x, _ = raw_digits()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).numpy()
    expected = np.clip(bilinear(x[perm][: round(len(x) * 0.2)].reshape(-1, 8, 8) / 16.0, size), 0, 1)
    x_val = digits(image_size=size).x_val
    np.testing.assert_allclose(x_val[:, 0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("value", [7, 0, -1, 32.0, True, "32"])
def test_image_size_must_be_an_int_of_at_least_8(value: object) -> None:
    with pytest.raises(
        ValueError, match=exactly(f"image_size must be an int >= 8 or None. Received: image_size={value!r}")
    ):
        digits(image_size=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, 2, 4, 3.0, True, None])
def test_channels_must_be_1_or_3(value: object) -> None:
    with pytest.raises(
        ValueError, match=exactly(f"channels must be 1 (grey) or 3 (RGB). Received: channels={value!r}")
    ):
        digits(channels=value)  # type: ignore[arg-type]


def test_load_data_gives_tensor_datasets_of_images_and_the_delivered_info() -> None:
    train, val, info = load_data("digits", image_size=32, channels=3, val_fraction=0.25, seed=1)
    assert isinstance(train, TensorDataset)
    assert isinstance(val, TensorDataset)
    split = digits(image_size=32, channels=3, val_fraction=0.25, seed=1)
    assert torch.equal(train.tensors[0], split.x_train)
    assert torch.equal(val.tensors[1], split.y_val)
    assert info == DatasetInfo(
        name="digits",
        num_classes=10,
        in_channels=3,
        image_size=32,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        classes=tuple("0123456789"),
        augment=False,
    )


def test_load_data_defaults_to_grey_8x8_digit_images() -> None:
    train, val, info = load_data()
    assert train.tensors[0].shape == (1438, 1, 8, 8)
    assert len(val) == 359
    assert info == dataset_info("digits")


def test_load_data_refuses_augmenting_digits() -> None:
    with pytest.raises(
        ValueError,
        match=r"^augment=True needs a data set with a standard training augmentation \(cifar10, cifar100\); "
        r"digits has none\. Received: augment=True$",
    ):
        load_data("digits", augment=True)
    assert load_data("digits", augment=False).info.augment is False


def test_load_data_passes_digits_arguments_through_their_checks() -> None:
    with pytest.raises(ValueError, match=exactly("channels must be 1 (grey) or 3 (RGB). Received: channels=2")):
        load_data("digits", channels=2)
    with pytest.raises(ValueError, match=exactly("image_size must be an int >= 8 or None. Received: image_size=4")):
        load_data("digits", image_size=4)
