"""AlexNet (Krizhevsky et al. 2012) and SqueezeNet (Iandola et al. 2016), as torchvision builds them."""

from __future__ import annotations

import functools

import torch
from torch import nn

from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead, ConvNormAct, Fire
from blockzoo.init import default_init_
from blockzoo.layers import Placement
from blockzoo.models._base import ZooModel
from blockzoo.models._registry import register_model


@register_model(
    "alexnet",
    family="alexnet",
    min_input_size=(63, 63),
    paper="Krizhevsky et al. 2012, ImageNet Classification with Deep Convolutional Neural Networks",
)
def alexnet(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_rate: float = 0.5,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """AlexNet in torchvision's single-GPU form ("one weird trick", 64-192-384-256-256 filters, no norm).

    The head's dropout follows each 4096-wide layer, as in VGG's head, where
    torchvision's precedes each one: the same layers and outputs in eval mode.
    """
    placement: Placement = {"device": device, "dtype": dtype}
    conv = functools.partial(ConvNormAct, norm_layer=None, **placement)
    layers = [
        conv(in_channels, 64, 11, stride=4, padding=2),
        nn.MaxPool2d(3, stride=2),
        conv(64, 192, 5),
        nn.MaxPool2d(3, stride=2),
        conv(192, 384, 3),
        conv(384, 256, 3),
        conv(256, 256, 3),
        nn.MaxPool2d(3, stride=2),
        nn.AdaptiveAvgPool2d(6),
    ]
    head = ClassifierHead(
        256 * 6 * 6, num_classes, pool_layer=None, hidden_features=(4096, 4096), drop_rate=drop_rate, **placement
    )
    return ZooModel(nn.Sequential(*layers), head)


class ConvClassifierHead(ClassifierHead):
    """SqueezeNet's head: dropout, a 1x1 conv classifier and its activation on the map, then global average pooling.

    :meth:`pre_logits` gives the pooled input features (``[N, in_features]``),
    as for any head; the classifier itself runs on the map, before pooling.

    Example:
        >>> import torch
        >>> from blockzoo.models._alexnet_squeezenet import ConvClassifierHead
        >>> head = ConvClassifierHead(512, 10)
        >>> head.fc, head(torch.randn(2, 512, 13, 13)).shape
        (Conv2d(512, 10, kernel_size=(1, 1), stride=(1, 1)), torch.Size([2, 10]))
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        drop_rate: float = 0.0,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, num_classes, drop_rate=drop_rate, device=device, dtype=dtype)
        self._set_stages("drop", "fc", "act", "pool", "flatten")
        self.act = self._make_act(num_classes)

    @staticmethod
    def _make_act(num_classes: int) -> nn.Module:
        return nn.ReLU(inplace=True) if num_classes else nn.Identity()

    def _make_fc(self, num_classes: int, *, device: DeviceLike, dtype: torch.dtype | None) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        fc = nn.Conv2d(self.num_features, num_classes, 1, device=device, dtype=dtype)
        default_init_(fc)
        return fc

    def reset(self, num_classes: int) -> None:
        super().reset(num_classes)
        self.act = self._make_act(num_classes)


_SQUEEZENET = "Iandola et al. 2016, SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size"

# (squeeze, expand) widths of the eight Fire modules (each expand is both the 1x1 and the 3x3 width)
_FIRES = ((16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256))
# version: (stem width, stem kernel, the Fire modules that a max pooling precedes)
_SQUEEZENET_VERSIONS = {"1_0": (96, 7, (3, 7)), "1_1": (64, 3, (2, 4))}


def squeezenet(
    version: str,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_rate: float = 0.5,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """SqueezeNet 1.0 (a 7x7 stem) or 1.1 (a 3x3 stem and earlier pooling: 2.4x less computation)."""
    placement: Placement = {"device": device, "dtype": dtype}
    width, kernel, pools_before = _SQUEEZENET_VERSIONS[version]
    layers: list[nn.Module] = [
        ConvNormAct(in_channels, width, kernel, stride=2, padding=0, norm_layer=None, **placement),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
    ]
    c_in = width
    for i, (squeeze, expand) in enumerate(_FIRES):
        if i in pools_before:
            layers.append(nn.MaxPool2d(3, stride=2, ceil_mode=True))
        layers.append(Fire(c_in, squeeze, expand, expand, **placement))
        c_in = 2 * expand
    return ZooModel(nn.Sequential(*layers), ConvClassifierHead(c_in, num_classes, drop_rate=drop_rate, **placement))


for _version in _SQUEEZENET_VERSIONS:
    register_model(f"squeezenet{_version}", family="squeezenet", paper=_SQUEEZENET)(
        functools.partial(squeezenet, _version)
    )
