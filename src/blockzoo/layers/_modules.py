"""The few layers torch.nn lacks that blockzoo's registries need."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blockzoo._checks import check_choice, check_spatial_dims
from blockzoo._types import DeviceLike

__all__ = ["ChannelLayerNorm", "GlobalPool", "InstanceNorm2d", "InstanceNorm3d", "keep_channels_last"]


class ChannelLayerNorm(nn.LayerNorm):
    """Layer norm over the channel dimension of a channels-first map.

    ``nn.LayerNorm`` normalises the trailing dimensions, so on an ``[N, C, H, W]``
    map it would mix spatial positions. This normalises each position's ``C``
    values, as ConvNeXt does. Written here because torch has no channels-first
    layer norm.

    Args:
        num_channels: ``C``.
        eps: Added to the variance.
        elementwise_affine: Learn a per-channel scale and shift.
        bias: Learn the shift.
        device: Where the parameters live.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, C, *]``.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo.layers import ChannelLayerNorm
        >>> ChannelLayerNorm(8)(torch.randn(2, 8, 4, 4)).shape
        torch.Size([2, 8, 4, 4])
    """

    def __init__(
        self,
        num_channels: int,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_channels, eps, elementwise_affine, bias, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.movedim(-1, 1)  # [N, *, C] -> [N, C, *]


class GlobalPool(nn.Module):
    """Average or max over every spatial position: ``[N, C, *] -> [N, C]``.

    Args:
        mode: ``"avg"`` or ``"max"``.
        spatial_dims: How many trailing dimensions are spatial (1, 2 or 3).

    Shape:
        - Input: ``[N, C, *spatial]``.
        - Output: ``[N, C]``.

    Example:
        >>> import torch
        >>> from blockzoo.layers import GlobalPool
        >>> GlobalPool("max")(torch.randn(2, 8, 4, 4)).shape
        torch.Size([2, 8])
    """

    def __init__(self, mode: str = "avg", spatial_dims: int = 2) -> None:
        super().__init__()
        self.mode = check_choice("mode", mode, ("avg", "max"))
        self.spatial_dims = spatial_dims = check_spatial_dims(spatial_dims)
        self._dims = tuple(range(-spatial_dims, 0))

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "avg":
            return x.mean(self._dims)
        return x.amax(self._dims)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        """``[N, C]`` from ``[N, C, *spatial]``."""
        return torch.Size(input_shape[: len(input_shape) - self.spatial_dims])

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, spatial_dims={self.spatial_dims}"


def keep_channels_last(x: Tensor, y: Tensor) -> Tensor:
    """``y`` in channels_last memory when ``x`` is (unambiguously) channels_last, else ``y`` as it is.

    For layers whose torch kernel returns contiguous memory whatever the input's.

    Example:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from blockzoo.layers import keep_channels_last
        >>> x = torch.randn(1, 3, 4, 4).contiguous(memory_format=torch.channels_last)
        >>> keep_channels_last(x, F.pad(x, [1, 1, 1, 1])).is_contiguous(memory_format=torch.channels_last)
        True
    """
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    if fmt is not None and not x.is_contiguous() and x.is_contiguous(memory_format=fmt):
        return y.contiguous(memory_format=fmt)
    return y


class InstanceNorm2d(nn.InstanceNorm2d):
    """:class:`torch.nn.InstanceNorm2d` that keeps channels_last memory.

    torch's instance norm returns a contiguous tensor for a channels_last
    input, which would make every following layer convert back; this one
    returns the input's memory format, as blocks promise.

    Shape:
        - Input: ``[N, C, H, W]``.
        - Output: the same, in the input's memory format.

    Example:
        >>> import torch
        >>> from blockzoo.layers import InstanceNorm2d
        >>> x = torch.randn(2, 4, 5, 5).contiguous(memory_format=torch.channels_last)
        >>> InstanceNorm2d(4)(x).is_contiguous(memory_format=torch.channels_last)
        True
    """

    def forward(self, input: Tensor) -> Tensor:
        return keep_channels_last(input, super().forward(input))


class InstanceNorm3d(nn.InstanceNorm3d):
    """:class:`torch.nn.InstanceNorm3d` that keeps channels_last_3d memory (see :class:`InstanceNorm2d`).

    Shape:
        - Input: ``[N, C, D, H, W]``.
        - Output: the same, in the input's memory format.

    Example:
        >>> import torch
        >>> from blockzoo.layers import InstanceNorm3d
        >>> x = torch.randn(2, 4, 3, 3, 3).contiguous(memory_format=torch.channels_last_3d)
        >>> InstanceNorm3d(4)(x).is_contiguous(memory_format=torch.channels_last_3d)
        True
    """

    def forward(self, input: Tensor) -> Tensor:
        return keep_channels_last(input, super().forward(input))
