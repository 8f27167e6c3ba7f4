"""Data sets by name: :func:`digits`, the embedded default (no download), and torchvision's image sets.

:func:`load_data` is the one entry point: a name from :func:`list_datasets`
gives a training and a validation split and the :class:`DatasetInfo` that
describes them. torchvision is imported only when a torchvision set is loaded.

Example:
    >>> from blockzoo.data import digits, list_datasets
    >>> digits().x_train.shape
    torch.Size([1438, 64])
    >>> list_datasets()
    ['cifar10', 'cifar100', 'digits', 'fashion_mnist', 'mnist']
"""

from blockzoo.data._digits import Split, digits
from blockzoo.data._info import DatasetInfo, dataset_info, list_datasets
from blockzoo.data._load import DataBundle, load_data
from blockzoo.data._torchvision import default_transform, torchvision_dataset

__all__ = [
    "DataBundle",
    "DatasetInfo",
    "Split",
    "dataset_info",
    "default_transform",
    "digits",
    "list_datasets",
    "load_data",
    "torchvision_dataset",
]
