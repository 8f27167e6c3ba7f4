"""Structured dropout: stochastic depth (DropPath) and DropBlock."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from blockzoo._checks import (
    check_choice,
    check_int,
    check_positive_int,
    check_probability,
    check_spatial_dims,
)
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import Block
from blockzoo.blocks._layout import layout, layout_error
from blockzoo.errors import InputError

__all__ = ["DropBlock", "DropPath", "drop_path_rates"]

#: torch's own pooling functions (in ``torch.__all__``), which ``F.max_pool*d`` wrap in a layer of Python that
#: DropBlock does not need (no indices, no ceil mode); likewise ``torch.constant_pad_nd`` and ``torch.rsub``
#: below are the ops behind ``F.pad`` and ``1 - tensor``.
_MAX_POOL = {1: torch.max_pool1d, 2: torch.max_pool2d, 3: torch.max_pool3d}


def drop_path_rates(rate: float, count: int) -> list[float]:
    """Stochastic-depth rates rising linearly from 0 to ``rate`` over ``count`` blocks (Huang et al. 2016).

    Example:
        >>> from blockzoo.blocks._drop import drop_path_rates
        >>> drop_path_rates(0.2, 3)
        [0.0, 0.1, 0.2]
    """
    rate = check_probability("rate", rate)
    count = check_int("count", count, low=0)
    return [i / max(1, count - 1) * rate for i in range(count)]  # the last is rate exactly


class DropPath(Block):
    """Stochastic depth (Huang et al. 2016): drop a residual branch for whole samples.

    In training, each sample's input (``mode="row"``) or the whole batch
    (``mode="batch"``) is zeroed with probability ``p`` and the rest scaled by
    ``1 / (1 - p)``; in eval mode it is the identity. Written here rather than
    taken from ``torchvision.ops.stochastic_depth`` so that ``import blockzoo``
    never imports torchvision.

    Args:
        p: Drop probability in ``[0, 1)``.
        mode: ``"row"`` (per sample) or ``"batch"``.
        device: Accepted for a uniform block constructor; DropPath has no tensors.
        dtype: Accepted for a uniform block constructor; DropPath has no tensors.

    Shape:
        - Input: ``[N, *]``.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import DropPath
        >>> drop = DropPath(0.5)
        >>> x = torch.ones(4, 3)
        >>> torch.equal(drop.eval()(x), x)
        True
        >>> sorted(set(drop.train()(torch.ones(1000, 1)).flatten().tolist()))
        [0.0, 2.0]
    """

    def __init__(
        self,
        p: float = 0.0,
        *,
        mode: str = "row",
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.p = check_probability("p", p)
        self.mode = check_choice("mode", mode, ("row", "batch"))

    def forward(self, x: Tensor) -> Tensor:
        # Every residual block calls its drop path on every forward, so each check here is paid per block:
        # tensor attributes (ndim, dtype) cost fewer instructions than the methods (dim(), is_floating_point()).
        rank = x.ndim
        p = self.p
        if p == 0.0 or not self.training:
            if rank < 1 or not x.dtype.is_floating_point:
                raise self._input_error(x)
            return x
        if rank < 1:
            raise self._input_error(x)
        keep = 1.0 - p
        shape = (x.shape[0],) + (1,) * (rank - 1) if self.mode == "row" else (1,) * rank
        try:
            mask = x.new_empty(shape).bernoulli_(keep).div_(keep)
        except RuntimeError as error:  # looked into only on failure: bernoulli_ or div_ refuse a non-float mask
            # (an integer mask is drawn before div_ refuses it, so such a call advances the random generator)
            if not x.dtype.is_floating_point:
                raise self._input_error(x) from error
            raise
        return x * mask

    def _input_error(self, x: Tensor) -> InputError:
        return layout_error(type(self).__name__, x.shape, x.dtype, expected="[N, *]", channels=0, rank=max(1, x.ndim))

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        return torch.Size(input_shape)

    def extra_repr(self) -> str:
        return f"p={self.p}" + ("" if self.mode == "row" else f", mode={self.mode!r}")


class DropBlock(Block):
    """DropBlock (Ghiasi et al. 2018): drop contiguous square regions of a feature map.

    In training, block seeds are drawn with the paper's rate ``gamma`` so that
    about a fraction ``p`` of the positions is dropped, each seed zeroes a
    ``block_size`` window (clipped to the map), and the kept values are
    rescaled so the mean is preserved. In eval mode it is the identity. Written
    here rather than taken from ``torchvision.ops.DropBlock2d`` so that
    ``import blockzoo`` never imports torchvision, and to cover 1-D and 3-D maps.

    Args:
        p: Fraction of positions to drop, in ``[0, 1)``.
        block_size: Side of the dropped regions.
        spatial_dims: 1, 2 or 3.
        device: Accepted for a uniform block constructor; DropBlock has no tensors.
        dtype: Accepted for a uniform block constructor; DropBlock has no tensors.

    Shape:
        - Input: ``[N, C, *spatial]``.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import DropBlock
        >>> drop = DropBlock(0.2, 3)
        >>> drop(torch.randn(2, 8, 16, 16)).shape
        torch.Size([2, 8, 16, 16])
    """

    def __init__(
        self,
        p: float = 0.1,
        block_size: int = 7,
        *,
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.p = check_probability("p", p)
        self.block_size = check_positive_int("block_size", block_size)
        self.spatial_dims = check_spatial_dims(spatial_dims)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != self.spatial_dims + 2 or not x.is_floating_point():
            raise layout_error(
                type(self).__name__,
                x.shape,
                x.dtype,
                expected=layout("C", self.spatial_dims),
                channels=-1,
                rank=self.spatial_dims + 2,
            )
        if not self.training or self.p == 0.0:
            return x
        shape = x.shape
        seeds = [shape[0], shape[1]]
        blocks: list[int] = []
        pad: list[int] = []
        positions = covered = 1
        for size in shape[2:]:
            block = min(self.block_size, size)
            fits = size - block + 1  # seeds only where a whole block fits (Ghiasi et al. 2018, eq. 1)
            positions *= size
            covered *= block * fits
            seeds.append(fits)
            blocks.append(block)
            # Pad so that the window ending at each position sees the seeds whose block covers it
            # (prepended: the pad list names the last dimension first).
            pad[:0] = (block - 1, block - 1)
        gamma = min(1.0, self.p * positions / covered)
        padded = torch.constant_pad_nd(x.new_empty(seeds).bernoulli_(gamma), pad)
        keep = torch.rsub(_MAX_POOL[self.spatial_dims](padded, blocks, 1), 1)
        # Counted in float32: a float16 count overflows past 65504 positions (and bfloat16's is coarse).
        scale = keep.sum(dtype=torch.float32).clamp_min_(1.0).reciprocal_().mul_(keep.numel())
        # The mask in x's dtype holds 0 or the scale rounded once, as ``x * keep * scale`` in float16 would not.
        return x * keep.mul_(scale)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        return torch.Size(input_shape)

    def extra_repr(self) -> str:
        return f"p={self.p}, block_size={self.block_size}"
