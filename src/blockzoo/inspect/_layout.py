"""channels_last memory for a model's 4-D and 5-D tensors (conv kernels), and for its inputs."""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import Tensor, nn

from blockzoo._checks import check_module

__all__ = ["channels_last_", "channels_last_format", "to_channels_last"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def channels_last_format(tensor: Tensor) -> torch.memory_format | None:
    """``channels_last`` for a 4-D tensor, ``channels_last_3d`` for a 5-D one, ``None`` otherwise."""
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(tensor.dim())


def to_channels_last(model: ModuleT) -> ModuleT:
    """A copy of ``model`` whose 4-D tensors are in channels_last memory and 5-D ones in channels_last_3d.

    On CPU (oneDNN) and on recent GPUs convolutions run faster on
    channels_last (NHWC) memory: each pixel's channels are contiguous. A
    conv whose kernel is channels_last returns a channels_last map, and
    blockzoo's blocks and models keep that memory format from their input to
    their output, so converting the kernels once is enough; convert the input
    too (``x.contiguous(memory_format=torch.channels_last)``) to save the
    first layer a copy. Only the memory layout changes, never a shape or a
    value. Unlike ``model.to(memory_format=torch.channels_last)``, which fails
    on a 3-D convolution's 5-D kernel, each tensor gets the format of its own
    rank. ``model`` itself is not changed.

    Args:
        model: Any model.

    Returns:
        The converted copy (same mode, device and dtype).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.to_channels_last(blockzoo.create_model("simple_cnn").eval())
        >>> model.features.stage1.convs[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
        True
        >>> x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        >>> model.forward_features(x).is_contiguous(memory_format=torch.channels_last)
        True
    """
    check_module("model", model)
    converted = copy.deepcopy(model)
    channels_last_(converted)
    return converted


@torch.no_grad()
def channels_last_(model: nn.Module) -> nn.Module:
    """Put ``model``'s 4-D and 5-D parameters and buffers in channels_last memory, in place; returns it."""
    for tensor in (*model.parameters(), *model.buffers()):
        memory_format = channels_last_format(tensor)
        if memory_format is not None:
            # What Module.to(memory_format=...) does to each tensor: same object, new storage.
            tensor.data = tensor.data.contiguous(memory_format=memory_format)
    return model
