"""``zero_init_last_``: start every residual block as its shortcut (Goyal et al. 2017)."""

from __future__ import annotations

import sys

import torch
from torch import nn

from blockzoo._checks import check_module
from blockzoo.init._records import set_record

__all__ = ["zero_init_last_"]


def _torchvision_last_norm(module: nn.Module) -> nn.BatchNorm2d | None:
    """The last norm of a torchvision ResNet block (what its ``zero_init_residual`` zeroes), if it is one.

    Only when torchvision is already imported: a model of its classes cannot exist otherwise,
    and ``import blockzoo`` must not import it.
    """
    resnet = sys.modules.get("torchvision.models.resnet")
    if resnet is None:
        return None
    if isinstance(module, resnet.Bottleneck):
        return module.bn3  # type: ignore[no-any-return]
    if isinstance(module, resnet.BasicBlock):
        return module.bn2  # type: ignore[no-any-return]
    return None


def zero_init_last_(model: nn.Module) -> nn.Module:
    """Make every residual block of ``model`` start as its shortcut, in place; returns ``model``.

    Each module with a ``zero_init_last_()`` method (every blockzoo residual
    block, and your own) zeroes the last norm scale of its branch, so that at
    initialisation the block outputs ``act(shortcut(x))`` (Goyal et al. 2017,
    "Accurate, Large Minibatch SGD"). torchvision's ResNet blocks are handled
    too (their last norm is zeroed, as torchvision's ``zero_init_residual``).

    Raises:
        ValueError: ``model`` has no residual block.

    Example:
        >>> import torch
        >>> import blockzoo
        >>> block = blockzoo.BasicBlock(8, 8).eval()
        >>> _ = blockzoo.zero_init_last_(block)
        >>> x = torch.randn(1, 8, 4, 4)
        >>> torch.equal(block(x), torch.relu(x))
        True
    """
    check_module("model", model)
    found = 0
    for module in model.modules():
        method = getattr(module, "zero_init_last_", None)
        if callable(method):
            method()
            found += 1
            continue
        norm = _torchvision_last_norm(module)
        if norm is not None:
            with torch.no_grad():
                nn.init.zeros_(norm.weight)
            set_record(norm, "weight", "zeros (zero_init_last_)", 0.0)
            found += 1
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no residual block (a module with a zero_init_last_() method, "
            "or a torchvision ResNet block); nothing to zero"
        )
    return model
