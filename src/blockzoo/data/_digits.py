"""scikit-learn's digits as tensors: the data set every blockzoo tutorial runs on, offline."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from blockzoo._checks import check_number

__all__ = ["Split", "digits"]


class Split(NamedTuple):
    """A train / validation split of tensors."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor


def digits(*, val_fraction: float = 0.2, images: bool = False, seed: int = 0) -> Split:
    """The 1,797 8x8 handwritten digits from scikit-learn, shuffled and split, as float tensors in [0, 1].

    The data ship inside scikit-learn (the ``train`` extra), so nothing is
    downloaded. Labels are ``int64`` class indices 0-9.

    Args:
        val_fraction: Share of the samples held out for validation, in (0, 1).
        images: ``[N, 1, 8, 8]`` images instead of ``[N, 64]`` rows.
        seed: Seed of the shuffle before the split.

    Returns:
        A :class:`Split` ``(x_train, y_train, x_val, y_val)``.

    Raises:
        ImportError: scikit-learn is missing.
        ValueError: ``val_fraction`` is not in (0, 1).

    Example:
        >>> from blockzoo.data import digits
        >>> x_train, y_train, x_val, y_val = digits(images=True)
        >>> x_train.shape, x_val.shape, y_train.dtype
        (torch.Size([1438, 1, 8, 8]), torch.Size([359, 1, 8, 8]), torch.int64)
    """
    val_fraction = check_number("val_fraction", val_fraction, low=0, high=1, low_open=True, high_open=True)
    try:
        from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    except ImportError as err:
        raise ImportError("blockzoo.data.digits needs scikit-learn: pip install 'blockzoo[train]'") from err
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    if images:
        x = x.reshape(-1, 1, 8, 8)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    n_val = round(len(x) * val_fraction)
    return Split(x[n_val:], y[n_val:], x[:n_val], y[:n_val])
