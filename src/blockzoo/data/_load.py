"""load_data: every data set by name, as a train and a validation split with what they hold."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, NamedTuple

from torch.utils.data import Dataset, TensorDataset

from blockzoo._checks import is_int
from blockzoo.data._digits import digits
from blockzoo.data._info import DatasetInfo, dataset_info
from blockzoo.data._torchvision import resolve_augment, torchvision_dataset

__all__ = ["DataBundle", "load_data"]


class DataBundle(NamedTuple):
    """A data set's training and validation splits and the :class:`DatasetInfo` that describes them.

    ``info`` states what the splits deliver (``in_channels``, ``image_size``,
    ``augment`` of ``train``), which may differ from the data set's defaults.

    Example:
        >>> from blockzoo.data import load_data
        >>> train, val, info = load_data("digits", image_size=32, channels=3)
        >>> len(train), len(val), info.in_channels, info.image_size
        (1438, 359, 3, 32)
    """

    train: Dataset[Any]
    val: Dataset[Any]
    info: DatasetInfo


def load_data(
    name: str = "digits",
    *,
    root: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    download: bool = False,
    augment: bool | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> DataBundle:
    """A data set by name as a :class:`DataBundle` ``(train, val, info)``: the one entry point for training.

    ``"digits"`` needs nothing else: its splits are
    :class:`~torch.utils.data.TensorDataset` s of ``[N, channels, S, S]``
    images in [0, 1] from :func:`digits` (``channels`` 1 and ``S`` 8 by
    default; ``image_size`` and ``channels`` enlarge and colour them, e.g. to
    feed a CIFAR model), split by ``val_fraction`` and ``seed``. The torchvision
    sets (``"cifar10"``, ``"cifar100"``, ``"mnist"``, ``"fashion_mnist"``) come
    from :func:`torchvision_dataset` under ``root``: the training split (with
    the standard augmentation when ``augment`` resolves true) and the test split
    as ``val``, at their own size.

    Args:
        name: A name from :func:`list_datasets`.
        root: The folder that holds a torchvision data set (required for
            them; digits ignore it).
        image_size: Side of the images; digits are enlarged to it, the
            torchvision sets only accept ``None`` or their own size.
        channels: 1 or 3 for digits; the torchvision sets only accept ``None``
            or their own channel count.
        download: Download a torchvision data set into ``root`` when it is not there.
        augment: The standard training augmentation of the training split;
            ``None`` is the data set's default (the ``augment`` field of :class:`DatasetInfo`).
        val_fraction: Share of the digits held out for validation (the
            torchvision sets use their test split).
        seed: Seed of the digits' shuffle before the split.

    Returns:
        The :class:`DataBundle`; its ``info`` has the ``in_channels``,
        ``image_size`` (and per-channel ``mean`` / ``std``) actually delivered
        and ``augment`` as resolved for the training split.

    Raises:
        UnknownNameError: ``name`` is not a known data set.
        ValueError: ``root`` is missing for a torchvision data set, ``image_size``
            or ``channels`` differs from a torchvision set's own, ``augment=True``
            for a data set without a standard augmentation, or a digits argument
            is out of range (see :func:`digits`).
        DatasetNotFoundError: a torchvision data set is not under ``root`` and
            ``download`` is false.

    Example:
        >>> from blockzoo.data import load_data
        >>> train, val, info = load_data("digits", image_size=32, channels=3)
        >>> len(train), len(val), train[0][0].shape
        (1438, 359, torch.Size([3, 32, 32]))
        >>> info.in_channels, info.image_size, info.num_classes, info.mean
        (3, 32, 10, (0.0, 0.0, 0.0))
    """
    info = dataset_info(name)
    if info.name == "digits":
        return _load_digits(info, image_size, channels, augment, val_fraction, seed)
    for argname, value, native in (
        ("image_size", image_size, info.image_size),
        ("channels", channels, info.in_channels),
    ):
        if value is not None and not (is_int(value) and value == native):
            raise ValueError(
                f"{argname} must be None or {native} for {info.name}: torchvision data sets are loaded at their "
                f"own size (pass your own transform to torchvision_dataset to resize). Received: {argname}={value!r}"
            )
    if root is None:
        raise ValueError(
            f"root must be the folder that holds {info.name} (or receives it with download=True); only digits "
            "need none. Received: root=None"
        )
    train = torchvision_dataset(info.name, root, train=True, download=download, augment=augment)
    val = torchvision_dataset(info.name, root, train=False, download=download)
    return DataBundle(train, val, replace(info, augment=resolve_augment(info, augment, train=True)))


def _load_digits(
    info: DatasetInfo,
    image_size: int | None,
    channels: int | None,
    augment: bool | None,
    val_fraction: float,
    seed: int,
) -> DataBundle:
    resolve_augment(info, augment, train=True)  # digits have no augmentation: refuses augment=True
    channels = 1 if channels is None else channels
    x_train, y_train, x_val, y_val = digits(
        val_fraction=val_fraction, images=True, seed=seed, image_size=image_size, channels=channels
    )
    delivered = replace(
        info,
        in_channels=x_train.shape[1],
        image_size=x_train.shape[-1],
        mean=info.mean * x_train.shape[1],
        std=info.std * x_train.shape[1],
    )
    return DataBundle(TensorDataset(x_train, y_train), TensorDataset(x_val, y_val), delivered)
