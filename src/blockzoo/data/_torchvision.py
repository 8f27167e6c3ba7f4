"""torchvision's image data sets by name, with their standard transforms and a clear error when absent.

torchvision is imported inside the functions: ``import blockzoo`` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from blockzoo.data._info import DatasetInfo, dataset_info
from blockzoo.errors import DatasetNotFoundError

__all__ = ["default_transform", "resolve_augment", "torchvision_dataset"]


@dataclass(frozen=True)
class _Source:
    """Where torchvision keeps a data set: its class and the files it checks for before loading.

    ``layouts`` lists ``(folder under root, files)`` pairs; torchvision loads the set when every
    file of one of them is present. The first is the one ``download=True`` writes.
    """

    cls: str
    layouts: tuple[tuple[str, tuple[str, ...]], ...]


# The files each torchvision class checks, whichever split is asked for:
# - CIFAR10 / CIFAR100 (``_check_integrity``): every batch of ``train_list`` and ``test_list`` under
#   ``base_folder``, then the ``meta`` file when loading; it also compares their md5 with the real
#   files', so a corrupt download fails in torchvision with its own RuntimeError.
# - MNIST / FashionMNIST (``_check_exists``): the four uncompressed idx files, named after the
#   ``resources`` archives without ``.gz``, under ``<class name>/raw``; or, from old torchvision
#   versions, ``training.pt`` and ``test.pt`` under ``<class name>/processed``.
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_LEGACY_FILES = ("training.pt", "test.pt")
_SOURCES = {
    "cifar10": _Source(
        "CIFAR10",
        (("cifar-10-batches-py", (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")),),
    ),
    "cifar100": _Source("CIFAR100", (("cifar-100-python", ("train", "test", "meta")),)),
    "mnist": _Source("MNIST", (("MNIST/raw", _IDX_FILES), ("MNIST/processed", _LEGACY_FILES))),
    "fashion_mnist": _Source(
        "FashionMNIST", (("FashionMNIST/raw", _IDX_FILES), ("FashionMNIST/processed", _LEGACY_FILES))
    ),
}


def resolve_augment(info: DatasetInfo, augment: bool | None, *, train: bool) -> bool:
    """Whether the standard training augmentation runs: ``augment``, or by default ``info.augment and train``.

    A data set has a standard augmentation exactly when it is on by default
    (the ``augment`` field of :class:`DatasetInfo`): random 4-pixel-padded crops and horizontal
    flips for the CIFAR sets. Digits and characters have none: a flipped 2 is
    not a 2.

    Raises:
        ValueError: ``augment`` is not ``True``, ``False`` or ``None``, or is
            ``True`` for a data set without a standard augmentation.
    """
    if augment is not None and not isinstance(augment, bool):
        raise ValueError(f"augment must be True, False or None (the data set's default). Received: augment={augment!r}")
    if augment is None:
        return info.augment and bool(train)
    if augment and not info.augment:
        with_one = ", ".join(n for n in _SOURCES if dataset_info(n).augment)
        own = " Pass your own transform to torchvision_dataset instead." if info.name in _SOURCES else ""
        raise ValueError(
            f"augment=True needs a data set with a standard training augmentation ({with_one}); {info.name} "
            f"has none.{own} Received: augment={augment!r}"
        )
    return augment


def default_transform(name: str, *, augment: bool = False) -> Callable[[Any], torch.Tensor]:
    """The transform :func:`torchvision_dataset` applies by default: a PIL image to a normalised float tensor.

    ``ToImage``, ``ToDtype(float32, scale=True)`` (pixels to [0, 1]) and
    ``Normalize(mean, std)`` with the data set's constants, preceded when
    ``augment`` is true by ``RandomCrop(image_size, padding=4)`` and
    ``RandomHorizontalFlip()``, all from ``torchvision.transforms.v2``.

    Args:
        name: A torchvision data set from :func:`list_datasets`.
        augment: Prepend the standard training augmentation.

    Returns:
        A ``torchvision.transforms.v2.Compose`` that returns plain tensors.

    Raises:
        UnknownNameError: ``name`` is not a known data set.
        ValueError: ``augment`` is true for a data set without a standard augmentation.

    Example:
        >>> from blockzoo.data import default_transform
        >>> print(default_transform("mnist"))
        Compose(
              ToImage()
              ToDtype(scale=True)
              Normalize(mean=[0.1307], std=[0.3081], inplace=False)
              ToPureTensor()
        )
    """
    from torchvision.transforms import v2

    info = dataset_info(name)
    steps = (
        [v2.RandomCrop(info.image_size, padding=4), v2.RandomHorizontalFlip()]
        if resolve_augment(info, augment, train=True)
        else []
    )
    normalize = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(info.mean), list(info.std))]
    return v2.Compose([*steps, *normalize, v2.ToPureTensor()])  # type: ignore[no-any-return]


def _root_folder(root: Any) -> Path:
    if not isinstance(root, str | os.PathLike):
        raise TypeError(f"root must be a folder path (a str or os.PathLike). Received: root={root!r}")
    # torchvision expands ``~`` in a str root, and only in a str.
    return Path(os.path.expanduser(root) if isinstance(root, str) else root)


def _require_files(name: str, root: Any, source: _Source) -> None:
    """Raise :class:`DatasetNotFoundError` unless every file of one of ``source.layouts`` is under ``root``."""
    base = _root_folder(root)
    if any(all((base / folder / f).is_file() for f in files) for folder, files in source.layouts):
        return
    folder, files = source.layouts[0]
    missing = [f for f in files if not (base / folder / f).is_file()]
    absent = "none of them is there" if len(missing) == len(files) else f"{', '.join(missing)} missing"
    raise DatasetNotFoundError(
        f"Data set {name!r} not found: torchvision looks in {base / folder} for {', '.join(files)}, and "
        f"{absent}. Pass download=True to download it into root. Received: root={root!r}"
    )


def torchvision_dataset(
    name: str,
    root: str | os.PathLike[str],
    *,
    train: bool = True,
    download: bool = False,
    transform: Callable[[Any], Any] | None = None,
    augment: bool | None = None,
) -> Dataset[Any]:
    """One split of a torchvision image data set by name, normalised, with the standard augmentation.

    ``"cifar10"``, ``"cifar100"``, ``"mnist"`` and ``"fashion_mnist"`` are
    ``torchvision.datasets.CIFAR10``, ``CIFAR100``, ``MNIST`` and
    ``FashionMNIST``. The default transform is :func:`default_transform`: the
    image as a float tensor normalised with the :class:`DatasetInfo` constants
    and, for the CIFAR training split, random 4-pixel-padded 32x32 crops and
    horizontal flips. Labels are ints.

    Before torchvision runs, blockzoo checks that the files torchvision needs
    are under ``root`` and, unless ``download=True``, raises
    :class:`~blockzoo.errors.DatasetNotFoundError` naming the folder and the
    files when they are not.

    Args:
        name: A torchvision data set from :func:`list_datasets`.
        root: The folder that holds the data set (torchvision's ``root``:
            ``root/cifar-10-batches-py``, ``root/MNIST/raw``, ...).
        train: The training split, else the test split.
        download: Download the data set into ``root`` when it is not there.
        transform: Replaces the default transform (and its augmentation)
            entirely; it receives a PIL image.
        augment: The standard training augmentation on or off; ``None`` means
            on for the training split of a data set whose
            the ``augment`` field of :class:`DatasetInfo` is true (the CIFAR sets). Must be
            ``None`` when ``transform`` is given.

    Shape:
        - image: ``[in_channels, image_size, image_size]`` float32 with the default transform.

    Returns:
        The torchvision data set; its items are ``(image, label)``.

    Raises:
        UnknownNameError: ``name`` is not a known data set.
        ValueError: ``name`` is ``"digits"`` (that is :func:`digits`), ``augment``
            is given with ``transform``, or ``augment=True`` for a data set
            without a standard augmentation.
        TypeError: ``root`` is not a str or path.
        DatasetNotFoundError: the files are not under ``root`` and ``download`` is false.
        RuntimeError: torchvision found CIFAR files whose checksums differ from
            the real ones (a corrupt or partial download).

    Example:
        >>> from blockzoo.data import torchvision_dataset
        >>> torchvision_dataset("cifar10", "no-such-folder")
        Traceback (most recent call last):
            ...
        blockzoo.errors.DatasetNotFoundError: Data set 'cifar10' not found: torchvision looks in no-such-folder/cifar-10-batches-py for data_batch_1, ..., test_batch, batches.meta, and none of them is there. Pass download=True to download it into root. Received: root='no-such-folder'

        With the data in ``~/data`` (``download=True`` fetches it)::

            train = torchvision_dataset("cifar10", "~/data", download=True)
            image, label = train[0]  # a [3, 32, 32] float32 tensor, an int
    """
    info = dataset_info(name)
    if info.name not in _SOURCES:
        raise ValueError(
            f"name must be a torchvision data set ({', '.join(_SOURCES)}); {info.name} is "
            f"blockzoo.data.digits() (or blockzoo.data.load_data({info.name!r})). Received: name={name!r}"
        )
    _root_folder(root)
    if transform is not None and augment is not None:
        raise ValueError(
            "augment must be None when transform is given: transform replaces the default transform, "
            f"augmentation included. Received: augment={augment!r}"
        )
    augmenting = transform is None and resolve_augment(info, augment, train=train)
    if not download:
        _require_files(info.name, root, _SOURCES[info.name])
    import torchvision

    if transform is None:
        transform = default_transform(info.name, augment=augmenting)
    dataset_class = getattr(torchvision.datasets, _SOURCES[info.name].cls)
    return dataset_class(root, train=train, download=download, transform=transform)  # type: ignore[no-any-return]
