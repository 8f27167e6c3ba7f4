"""scikit-learn's digits as tensors: the data set every blockzoo tutorial runs on, offline."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from blockzoo._checks import check_int, check_number, is_int

__all__ = ["Split", "digits"]


class Split(NamedTuple):
    """A train / validation split of tensors.

    Example:
        >>> from blockzoo.data import digits
        >>> split = digits()
        >>> split.x_train.shape, split.y_val.shape
        (torch.Size([1438, 64]), torch.Size([359]))
        >>> x_train, y_train, x_val, y_val = split  # a named tuple unpacks in this order
    """

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor


def _check_channels(channels: Any) -> int:
    """``channels`` if it is 1 (grey) or 3 (RGB), else a ``ValueError``."""
    if not is_int(channels) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB). Received: channels={channels!r}")
    return int(channels)


def digits(
    *, val_fraction: float = 0.2, images: bool = False, seed: int = 0, image_size: int | None = None, channels: int = 1
) -> Split:
    """The 1,797 8x8 handwritten digits from scikit-learn, shuffled and split, as float tensors in [0, 1].

    The data ship inside scikit-learn (the ``train`` extra), so nothing is
    downloaded. Labels are ``int64`` class indices 0-9.

    ``image_size`` enlarges the images with bilinear interpolation (half-pixel
    centres, ``align_corners=False``), clamped back to [0, 1], and
    ``channels=3`` repeats the grey channel, so
    ``digits(image_size=32, channels=3)`` is shaped like CIFAR-10 and feeds the
    same models. Either one implies ``images=True``. The split and the order of
    the samples do not depend on them.

    Args:
        val_fraction: Share of the samples held out for validation, in (0, 1).
        images: ``[N, 1, 8, 8]`` images instead of ``[N, 64]`` rows.
        seed: Seed of the shuffle before the split.
        image_size: Side of the square images, an int >= 8 (the digits are
            8x8 and are only enlarged), or ``None`` to keep 8x8.
        channels: 1 (grey) or 3 (the grey channel repeated as RGB).

    Shape:
        - x: ``[N, 64]`` rows, or ``[N, channels, S, S]`` images with ``S = image_size``
          (8 when ``None``) when ``images``, ``image_size`` or ``channels=3`` ask for images.
        - y: ``[N]``.

    Returns:
        A :class:`Split` ``(x_train, y_train, x_val, y_val)``.

    Raises:
        ImportError: scikit-learn is missing.
        ValueError: ``val_fraction`` is not in (0, 1), ``image_size`` is not
            an int >= 8 or ``None``, or ``channels`` is not 1 or 3.

    Example:
        >>> from blockzoo.data import digits
        >>> x_train, y_train, x_val, y_val = digits(images=True)
        >>> x_train.shape, x_val.shape, y_train.dtype
        (torch.Size([1438, 1, 8, 8]), torch.Size([359, 1, 8, 8]), torch.int64)
        >>> digits(image_size=32, channels=3).x_train.shape
        torch.Size([1438, 3, 32, 32])
    """
    val_fraction = check_number("val_fraction", val_fraction, low=0, high=1, low_open=True, high_open=True)
    image_size = check_int("image_size", image_size, low=8, allow_none=True)
    channels = _check_channels(channels)
    try:
        from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    except ImportError as err:
        raise ImportError("blockzoo.data.digits needs scikit-learn: pip install 'blockzoo[train]'") from err
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    if images or image_size is not None or channels != 1:
        x = x.reshape(-1, 1, 8, 8)
    if image_size is not None:
        # Bilinear interpolation is a convex combination of [0, 1] values; the clamp removes rounding overshoot.
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    n_val = round(len(x) * val_fraction)
    return Split(x[n_val:], y[n_val:], x[:n_val], y[:n_val])
