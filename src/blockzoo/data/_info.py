"""What blockzoo knows about each data set it loads by name: classes, image shape, normalisation."""

from __future__ import annotations

from dataclasses import dataclass

from blockzoo._registry import Registry

__all__ = ["DatasetInfo", "dataset_info", "list_datasets"]


@dataclass(frozen=True)
class DatasetInfo:
    """A data set's classes, image shape, normalisation constants and default augmentation.

    Args:
        name: The name :func:`dataset_info` and :func:`load_data` take.
        num_classes: Number of classes; labels are ``0 .. num_classes - 1``.
        in_channels: Channels of an image (1 grey, 3 RGB).
        image_size: Side of the square images, in pixels.
        mean: Per-channel mean that the default transform subtracts, for
            pixels scaled to [0, 1].
        std: Per-channel standard deviation that the default transform
            divides by.
        classes: Class names, in label order.
        augment: Whether the standard training augmentation is on by default
            for the training split.

    Example:
        >>> from blockzoo.data import dataset_info
        >>> info = dataset_info("cifar10")
        >>> info.num_classes, info.in_channels, info.image_size, info.augment
        (10, 3, 32, True)
        >>> info.classes[:3]
        ('airplane', 'automobile', 'bird')
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    augment: bool


_DATASETS: Registry[DatasetInfo] = Registry("data set", list_call="blockzoo.data.list_datasets()")


def _register(info: DatasetInfo) -> None:
    _DATASETS.register(info.name, info)


# CIFAR-100's fine labels, in the order of the data set's ``meta`` file (alphabetical).
# fmt: off
_CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
# fmt: on

# Normalisation constants. For the torchvision sets they are the per-channel mean and standard
# deviation over every pixel of the training split, with pixels scaled to [0, 1]; for CIFAR-10
#     x = torch.tensor(CIFAR10(root, train=True).data) / 255.0   # [50000, 32, 32, 3]
#     x.mean(dim=(0, 1, 2)), x.std(dim=(0, 1, 2))
# and likewise over ``.data`` ([60000, 28, 28]) for MNIST and FashionMNIST, rounded to four digits.
# They are the widely published values of that computation (not recomputed by blockzoo's tests, which
# never download). Some tutorials quote (0.2023, 0.1994, 0.2010) as CIFAR-10's std; that triple does
# not match the pixel statistics and is not used here.

_register(
    DatasetInfo(
        name="digits",
        num_classes=10,
        in_channels=1,
        image_size=8,
        # digits() already scales the pixels to [0, 1]; they are not standardised further.
        mean=(0.0,),
        std=(1.0,),
        classes=tuple(str(i) for i in range(10)),
        augment=False,
    )
)
_register(
    DatasetInfo(
        name="cifar10",
        num_classes=10,
        in_channels=3,
        image_size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        augment=True,
    )
)
_register(
    DatasetInfo(
        name="cifar100",
        num_classes=100,
        in_channels=3,
        image_size=32,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        classes=_CIFAR100_CLASSES,
        augment=True,
    )
)
_register(
    DatasetInfo(
        name="mnist",
        num_classes=10,
        in_channels=1,
        image_size=28,
        mean=(0.1307,),
        std=(0.3081,),
        # torchvision's MNIST.classes.
        classes=(
            "0 - zero",
            "1 - one",
            "2 - two",
            "3 - three",
            "4 - four",
            "5 - five",
            "6 - six",
            "7 - seven",
            "8 - eight",
            "9 - nine",
        ),
        augment=False,
    )
)
_register(
    DatasetInfo(
        name="fashion_mnist",
        num_classes=10,
        in_channels=1,
        image_size=28,
        mean=(0.2860,),
        std=(0.3530,),
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        augment=False,
    )
)


def dataset_info(name: str) -> DatasetInfo:
    """What blockzoo knows about the data set ``name``: classes, image shape, normalisation, augmentation.

    Args:
        name: A name from :func:`list_datasets`.

    Returns:
        The :class:`DatasetInfo`.

    Raises:
        UnknownNameError: ``name`` is not a known data set (close matches suggested).

    Example:
        >>> from blockzoo.data import dataset_info
        >>> dataset_info("mnist").mean, dataset_info("mnist").std
        ((0.1307,), (0.3081,))
        >>> dataset_info("cifar")
        Traceback (most recent call last):
            ...
        blockzoo.errors.UnknownNameError: Unknown data set 'cifar'. Did you mean 'cifar10', 'cifar100'? blockzoo.data.list_datasets() lists them all.
    """
    return _DATASETS.get(name)


def list_datasets() -> list[str]:
    """The names :func:`load_data` and :func:`dataset_info` take, sorted.

    Example:
        >>> from blockzoo.data import list_datasets
        >>> list_datasets()
        ['cifar10', 'cifar100', 'digits', 'fashion_mnist', 'mnist']
    """
    return _DATASETS.list()
