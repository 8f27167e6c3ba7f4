"""GoogLeNet (Szegedy et al. 2015) and Inception v3 (Szegedy et al. 2016), as torchvision builds them."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from blockzoo._checks import check_bool
from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead
from blockzoo.layers import Placement
from blockzoo.models._base import ZooModel
from blockzoo.models._inception import (
    TransformInput,
    basic_conv,
    googlenet_module,
    inception_a,
    inception_b,
    inception_c,
    inception_d,
    inception_e,
)
from blockzoo.models._registry import register_model

__all__ = ["InceptionNet", "googlenet", "inception_v3"]

#: The prefixes of torchvision's auxiliary classifiers, which blockzoo's models leave out.
_AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")
#: What ``create_model(..., pretrained="torchvision")`` sets, as torchvision does when it loads these weights.
_PRETRAINED = {"transform_input": True}


class InceptionNet(ZooModel):
    """GoogLeNet or Inception v3: a stem, stages of Inception modules, global pooling, dropout and a classifier.

    There are no auxiliary classifiers: torchvision builds them for training
    from scratch (``aux_logits=True``, its models then return several outputs
    in training mode) and its weights carry them, but they take no part in the
    prediction; the conversion from torchvision leaves their tensors out
    (:meth:`torchvision_unused_keys`). ``features`` holds
    ``transform_input`` (:class:`~blockzoo.models._inception.TransformInput`,
    or an identity), ``stem`` and the stages of Inception modules.

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("googlenet", num_classes=10)
        >>> [name for name, _ in model.features.named_children()]
        ['transform_input', 'stem', 'stage3', 'stage4', 'stage5']
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def torchvision_unused_keys(self, keys: Sequence[str]) -> list[str]:
        """The keys of a torchvision state_dict that this model has no tensor for: the auxiliary classifiers'."""
        return [key for key in keys if key.startswith(_AUX_PREFIXES)]


def _input_stage(transform_input: bool, in_channels: int) -> nn.Module:
    if not check_bool("transform_input", transform_input):
        return nn.Identity()
    if in_channels != 3:
        raise ValueError(
            "transform_input=True re-normalises ImageNet's three RGB channels: it needs in_channels=3. "
            f"Received: in_channels={in_channels}"
        )
    return TransformInput()


_GOOGLENET = "Szegedy et al. 2015, Going Deeper with Convolutions"
#: The Inception modules of GoogLeNet's stages 3 to 5: (in_channels, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5",
#: pool projection).
_GOOGLENET_MODULES: dict[str, tuple[tuple[int, ...], ...]] = {
    "stage3": ((192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64)),
    "stage4": (
        (480, 192, 96, 208, 16, 48, 64),
        (512, 160, 112, 224, 24, 64, 64),
        (512, 128, 128, 256, 24, 64, 64),
        (512, 112, 144, 288, 32, 64, 64),
        (528, 256, 160, 320, 32, 128, 128),
    ),
    "stage5": ((832, 256, 160, 320, 32, 128, 128), (832, 384, 192, 384, 48, 128, 128)),
}


@register_model(
    "googlenet", family="googlenet", paper=_GOOGLENET, min_input_size=(15, 15), pretrained_options=_PRETRAINED
)
def googlenet(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_rate: float = 0.2,
    transform_input: bool = False,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> InceptionNet:
    """GoogLeNet (Inception v1) in torchvision's layout: batch-normed convs, nine Inception modules.

    Without auxiliary classifiers (see :class:`InceptionNet`): 6,624,904
    parameters, as torchvision's ``googlenet`` with its weights.
    ``transform_input=True`` re-normalises an ImageNet-normalised input for
    the ported weights (torchvision's option, with the same default: off,
    and on when ``create_model(..., pretrained="torchvision")`` loads them).
    The parameters start from blockzoo's initialisation (the activation-aware
    table of every block), not torchvision's truncated normal.
    """
    placement: Placement = {"device": device, "dtype": dtype}
    conv = functools.partial(basic_conv, **placement)
    pool = functools.partial(nn.MaxPool2d, 3, stride=2, ceil_mode=True)
    stem = OrderedDict(
        conv1=conv(in_channels, 64, 7, stride=2), pool1=pool(), conv2=conv(64, 64), conv3=conv(64, 192, 3), pool2=pool()
    )
    stages: list[tuple[str, nn.Module]] = [("transform_input", _input_stage(transform_input, in_channels))]
    stages.append(("stem", nn.Sequential(stem)))
    for name, modules in _GOOGLENET_MODULES.items():
        layers = [googlenet_module(widths[0], widths[1:], **placement) for widths in modules]
        downsample = {"stage3": [], "stage4": [pool()], "stage5": [nn.MaxPool2d(2, stride=2, ceil_mode=True)]}[name]
        stages.append((name, nn.Sequential(*downsample, *layers)))
    head = ClassifierHead(1024, num_classes, drop_rate=drop_rate, **placement)
    return InceptionNet(nn.Sequential(OrderedDict(stages)), head)


_INCEPTION_V3 = "Szegedy et al. 2016, Rethinking the Inception Architecture for Computer Vision"


@register_model(
    "inception_v3",
    family="inception_v3",
    paper=_INCEPTION_V3,
    input_size=(3, 299, 299),
    min_input_size=(75, 75),
    pretrained_options=_PRETRAINED,
)
def inception_v3(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_rate: float = 0.5,
    transform_input: bool = False,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> InceptionNet:
    """Inception v3 in torchvision's layout, for 299x299 images (75x75 at the least).

    Without the auxiliary classifier (see :class:`InceptionNet`): 23,834,568
    parameters, torchvision's ``inception_v3(aux_logits=False)``; the
    27,161,264 of torchvision's weights count the auxiliary classifier
    (3,326,696), which torchvision's ``inception_v3`` keeps unless given
    ``aux_logits=False``. ``transform_input`` and the initialisation are as
    in :func:`googlenet`.
    """
    placement: Placement = {"device": device, "dtype": dtype}
    conv = functools.partial(basic_conv, **placement)
    stem = OrderedDict(
        conv1a=conv(in_channels, 32, 3, stride=2, padding=0),
        conv2a=conv(32, 32, 3, padding=0),
        conv2b=conv(32, 64, 3),
        pool1=nn.MaxPool2d(3, stride=2),
        conv3b=conv(64, 80, 1),
        conv4a=conv(80, 192, 3, padding=0),
        pool2=nn.MaxPool2d(3, stride=2),
    )
    stages = OrderedDict(
        transform_input=_input_stage(transform_input, in_channels),
        stem=nn.Sequential(stem),
        stage5=nn.Sequential(
            inception_a(192, 32, **placement), inception_a(256, 64, **placement), inception_a(288, 64, **placement)
        ),
        # reduced to 17x17 by the first module (torchvision's Mixed_6a), as is stage7's to 8x8 (Mixed_7a)
        stage6=nn.Sequential(
            inception_b(288, **placement),
            *(inception_c(768, c7, **placement) for c7 in (128, 160, 160, 192)),
        ),
        stage7=nn.Sequential(
            inception_d(768, **placement), inception_e(1280, **placement), inception_e(2048, **placement)
        ),
    )
    head = ClassifierHead(2048, num_classes, drop_rate=drop_rate, **placement)
    return InceptionNet(nn.Sequential(stages), head)
