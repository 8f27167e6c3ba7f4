"""The parts of GoogLeNet (Szegedy et al. 2015) and Inception v3 (Szegedy et al. 2016), as torchvision builds them.

An Inception module runs a few branches of convolutions (and one pooling) side
by side on one map and concatenates their outputs along the channels:
:class:`Branches`. Every conv is torchvision's ``BasicConv2d``: a conv without
bias, a batch norm with ``eps=1e-3`` and a ReLU, which is a
:class:`~blockzoo.ConvNormAct` with that norm.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from blockzoo._types import DeviceLike
from blockzoo.blocks import ChannelsFirstBlock, ConvNormAct
from blockzoo.layers import Placement, keep_channels_last
from blockzoo.shapes import infer_shape

__all__ = [
    "INCEPTION_NORM",
    "Branches",
    "TransformInput",
    "basic_conv",
    "googlenet_module",
    "inception_a",
    "inception_b",
    "inception_c",
    "inception_d",
    "inception_e",
]

#: torchvision's ``BasicConv2d`` norm (TensorFlow's batch-norm epsilon, torch's momentum).
INCEPTION_NORM = functools.partial(nn.BatchNorm2d, eps=1e-3)


def basic_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int] = 1,
    *,
    stride: int = 1,
    padding: int | Sequence[int] | None = None,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ConvNormAct:
    """A conv (no bias), a batch norm (``eps=1e-3``) and a ReLU: torchvision's ``BasicConv2d``; "same" padding by default."""
    return ConvNormAct(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        norm_layer=INCEPTION_NORM,
        device=device,
        dtype=dtype,
    )


def _out_channels(module: nn.Module, in_channels: int) -> int:
    """The channels a branch gives for ``in_channels``: its last layer's ``out_channels`` (a pooling keeps them)."""
    if isinstance(module, nn.Sequential):
        for layer in module:
            in_channels = _out_channels(layer, in_channels)
        return in_channels
    return int(getattr(module, "out_channels", in_channels))


class Branches(ChannelsFirstBlock):
    """Branches run side by side on one input, their outputs concatenated along the channels, in order.

    The Inception module: each branch is a module (a conv, a
    ``nn.Sequential`` of convs, a pooling and a conv, or branches of its own)
    whose output keeps the spatial size of the others.

    Args:
        in_channels: Channels of the input.
        branches: The branches by name, in the order of their outputs.

    Shape:
        - Input: ``[N, in_channels, H, W]``.
        - Output: ``[N, out_channels, H', W']``, ``out_channels`` the sum of
          the branches' widths.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from blockzoo.models._inception import Branches, basic_conv
        >>> block = Branches(8, {"conv": basic_conv(8, 4), "pool": nn.MaxPool2d(3, stride=1, padding=1)})
        >>> block.out_channels, block(torch.randn(2, 8, 5, 5)).shape
        (12, torch.Size([2, 12, 5, 5]))
    """

    def __init__(self, in_channels: int, branches: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.spatial_dims = 2
        for name, branch in branches.items():
            self.add_module(name, branch)
        self.out_channels = sum(_out_channels(branch, in_channels) for branch in branches.values())

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        # torch.cat gives a contiguous result for some layouts: keep the input's channels_last
        return keep_channels_last(x, torch.cat([branch(x) for branch in self.children()], dim=1))

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, _, *spatial = infer_shape(next(iter(self.children())), self._check_shape(input_shape))
        return torch.Size((n, self.out_channels, *spatial))


#: ImageNet's per-channel mean and std, which torchvision's transforms normalise images with.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class TransformInput(nn.Module):
    """Re-normalise an ImageNet-normalised RGB image to the ``[-1, 1]`` scale of Google's Inception weights.

    torchvision's ``transform_input``: channel ``c`` becomes
    ``x * std[c] / 0.5 + (mean[c] - 0.5) / 0.5``, so the image, normalised
    with ImageNet's mean and std, is as if normalised with a mean and std of
    0.5, as the ported weights expect. No parameters or buffers.

    Example:
        >>> import torch
        >>> from blockzoo.models._inception import TransformInput
        >>> TransformInput()(torch.zeros(1, 3, 2, 2)).flatten()[::4]  # the ImageNet mean maps to 2 * mean - 1
        tensor([-0.0300, -0.0880, -0.1880])
    """

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.tensor([s / 0.5 for s in _IMAGENET_STD], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        shift = torch.tensor([(m - 0.5) / 0.5 for m in _IMAGENET_MEAN], dtype=x.dtype, device=x.device)
        return x * scale + shift.view(1, 3, 1, 1)


def googlenet_module(
    in_channels: int, widths: Sequence[int], *, device: DeviceLike = None, dtype: torch.dtype | None = None
) -> Branches:
    """GoogLeNet's Inception module: 1x1; 1x1 then 3x3; 1x1 then 3x3; 3x3 max pool then 1x1.

    ``widths`` are torchvision's ``ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5,
    pool_proj``. The third branch's second conv is 3x3, where the paper has
    5x5: torchvision's weights were ported that way.
    """
    c1, c3_reduce, c3, c5_reduce, c5, pool_proj = widths
    placement: Placement = {"device": device, "dtype": dtype}
    conv = functools.partial(basic_conv, **placement)
    return Branches(
        in_channels,
        {
            "branch1": conv(in_channels, c1),
            "branch2": nn.Sequential(conv(in_channels, c3_reduce), conv(c3_reduce, c3, 3)),
            "branch3": nn.Sequential(conv(in_channels, c5_reduce), conv(c5_reduce, c5, 3)),
            "branch4": nn.Sequential(
                nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), conv(in_channels, pool_proj)
            ),
        },
    )


def _avg_pool_then(conv: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), conv)


def inception_a(
    in_channels: int, pool_features: int, *, device: DeviceLike = None, dtype: torch.dtype | None = None
) -> Branches:
    """Inception v3's 35x35 module (``Mixed_5b`` to ``Mixed_5d``): 1x1; 1x1 then 5x5; 1x1 then two 3x3; pool."""
    conv = functools.partial(basic_conv, device=device, dtype=dtype)
    return Branches(
        in_channels,
        {
            "branch1x1": conv(in_channels, 64),
            "branch5x5": nn.Sequential(conv(in_channels, 48), conv(48, 64, 5)),
            "branch3x3dbl": nn.Sequential(conv(in_channels, 64), conv(64, 96, 3), conv(96, 96, 3)),
            "branch_pool": _avg_pool_then(conv(in_channels, pool_features)),
        },
    )


def inception_b(in_channels: int, *, device: DeviceLike = None, dtype: torch.dtype | None = None) -> Branches:
    """Inception v3's grid reduction to 17x17 (``Mixed_6a``): a stride-2 3x3, two 3x3 after a 1x1, a max pool."""
    conv = functools.partial(basic_conv, device=device, dtype=dtype)
    return Branches(
        in_channels,
        {
            "branch3x3": conv(in_channels, 384, 3, stride=2, padding=0),
            "branch3x3dbl": nn.Sequential(conv(in_channels, 64), conv(64, 96, 3), conv(96, 96, 3, stride=2, padding=0)),
            "branch_pool": nn.MaxPool2d(3, stride=2),
        },
    )


def inception_c(
    in_channels: int, channels_7x7: int, *, device: DeviceLike = None, dtype: torch.dtype | None = None
) -> Branches:
    """Inception v3's 17x17 module (``Mixed_6b`` to ``Mixed_6e``): 7x7 convs factorised into 1x7 and 7x1."""
    conv = functools.partial(basic_conv, device=device, dtype=dtype)
    c7 = channels_7x7
    return Branches(
        in_channels,
        {
            "branch1x1": conv(in_channels, 192),
            "branch7x7": nn.Sequential(conv(in_channels, c7), conv(c7, c7, (1, 7)), conv(c7, 192, (7, 1))),
            "branch7x7dbl": nn.Sequential(
                conv(in_channels, c7),
                conv(c7, c7, (7, 1)),
                conv(c7, c7, (1, 7)),
                conv(c7, c7, (7, 1)),
                conv(c7, 192, (1, 7)),
            ),
            "branch_pool": _avg_pool_then(conv(in_channels, 192)),
        },
    )


def inception_d(in_channels: int, *, device: DeviceLike = None, dtype: torch.dtype | None = None) -> Branches:
    """Inception v3's grid reduction to 8x8 (``Mixed_7a``): stride-2 3x3 convs after 1x1 (and 1x7, 7x1), a max pool."""
    conv = functools.partial(basic_conv, device=device, dtype=dtype)
    return Branches(
        in_channels,
        {
            "branch3x3": nn.Sequential(conv(in_channels, 192), conv(192, 320, 3, stride=2, padding=0)),
            "branch7x7x3": nn.Sequential(
                conv(in_channels, 192),
                conv(192, 192, (1, 7)),
                conv(192, 192, (7, 1)),
                conv(192, 192, 3, stride=2, padding=0),
            ),
            "branch_pool": nn.MaxPool2d(3, stride=2),
        },
    )


def _split_1x3_3x1(channels: int, *, device: DeviceLike, dtype: torch.dtype | None) -> Branches:
    """A 1x3 and a 3x1 conv side by side, 384 channels each (the expanded end of Inception v3's 8x8 branches)."""
    conv = functools.partial(basic_conv, device=device, dtype=dtype)
    return Branches(channels, {"a": conv(channels, 384, (1, 3)), "b": conv(channels, 384, (3, 1))})


def inception_e(in_channels: int, *, device: DeviceLike = None, dtype: torch.dtype | None = None) -> Branches:
    """Inception v3's 8x8 module (``Mixed_7b``, ``Mixed_7c``): branches that end in a 1x3 and a 3x1 side by side."""
    placement: Placement = {"device": device, "dtype": dtype}
    conv = functools.partial(basic_conv, **placement)
    return Branches(
        in_channels,
        {
            "branch1x1": conv(in_channels, 320),
            "branch3x3": nn.Sequential(conv(in_channels, 384), _split_1x3_3x1(384, **placement)),
            "branch3x3dbl": nn.Sequential(conv(in_channels, 448), conv(448, 384, 3), _split_1x3_3x1(384, **placement)),
            "branch_pool": _avg_pool_then(conv(in_channels, 192)),
        },
    )
