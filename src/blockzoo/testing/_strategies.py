"""Hypothesis strategies for block configurations, inputs, dtypes and devices.

Every strategy draws values that are valid by construction, so a property test
checks a law rather than the validation code.
"""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st

__all__ = ["conv_configs", "devices", "dtypes", "input_shapes"]


def devices() -> st.SearchStrategy[str]:
    """``"cpu"``, and ``"cuda"`` when a GPU is present.

    Example:
        >>> from hypothesis import find
        >>> from blockzoo.testing import devices
        >>> find(devices(), lambda d: True)
        'cpu'
    """
    return st.sampled_from(["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])


def dtypes(device: str = "cpu") -> st.SearchStrategy[torch.dtype]:
    """Floating dtypes blocks must support on ``device``.

    float32, float64 and bfloat16 everywhere, plus float16 on CUDA.

    Example:
        >>> from hypothesis import find
        >>> from blockzoo.testing import dtypes
        >>> find(dtypes("cpu"), lambda t: t.itemsize == 2)
        torch.bfloat16
    """
    choices = [torch.float32, torch.float64, torch.bfloat16]
    if torch.device(device).type == "cuda":
        choices.append(torch.float16)
    return st.sampled_from(choices)


@st.composite
def conv_configs(draw: st.DrawFn, *, spatial_dims: int = 2, max_channels: int = 16) -> dict[str, Any]:
    """Keyword arguments for :class:`~blockzoo.ConvNormAct` that are valid together.

    ``groups`` divides both channel counts; ``padding`` is left to the block.

    Example:
        >>> from hypothesis import find
        >>> from blockzoo import ConvNormAct
        >>> from blockzoo.testing import conv_configs
        >>> config = find(conv_configs(), lambda c: c["groups"] == 4)
        >>> config
        {'in_channels': 4, 'out_channels': 4, 'kernel_size': 1, 'stride': 1, 'dilation': 1, 'groups': 4, 'spatial_dims': 2}
        >>> ConvNormAct(**config).conv.groups
        4
    """
    groups = draw(st.sampled_from([1, 1, 2, 4]))
    in_channels = groups * draw(st.integers(1, max(1, max_channels // groups)))
    out_channels = groups * draw(st.integers(1, max(1, max_channels // groups)))
    return {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "kernel_size": draw(st.sampled_from([1, 3, 5])),
        "stride": draw(st.integers(1, 2)),
        "dilation": draw(st.integers(1, 2)),
        "groups": groups,
        "spatial_dims": spatial_dims,
    }


@st.composite
def input_shapes(
    draw: st.DrawFn, channels: int, *, spatial_dims: int = 2, min_size: int = 1, max_size: int = 12, max_batch: int = 3
) -> tuple[int, ...]:
    """``(N, channels, *spatial)`` with ``min_size <= each spatial size <= max_size``.

    Example:
        >>> from hypothesis import find
        >>> from blockzoo.testing import input_shapes
        >>> find(input_shapes(8, spatial_dims=3), lambda s: True)
        (1, 8, 1, 1, 1)
    """
    batch = draw(st.integers(1, max_batch))
    spatial = draw(st.lists(st.integers(min_size, max_size), min_size=spatial_dims, max_size=spatial_dims))
    return (batch, channels, *spatial)
