"""``attach_stochastic_depth``: drop whole residual branches during training (Huang et al. 2016)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal

from torch import Tensor, nn

from blockzoo._checks import check_probability
from blockzoo.blocks import InvertedResidual, ResidualBlock
from blockzoo.blocks._drop import drop_path_rates
from blockzoo.regularization._store import Attachment, RegularizationHandle, attach

__all__ = ["attach_stochastic_depth"]

# A residual block as this module sees it: how to give it rate p (returning the undo), or why not.
_Setter = Callable[[float], Callable[[], None]]


def _blockzoo_block(block: ResidualBlock) -> _Setter | str:
    if isinstance(block, InvertedResidual) and not block.has_shortcut:
        return "has no shortcut"
    if type(block.shortcut) is not nn.Identity:
        return "its shortcut changes the shape"

    def set_rate(p: float) -> Callable[[], None]:
        old = block.drop_path.p
        block.drop_path.p = p

        def undo() -> None:
            block.drop_path.p = old

        return undo

    return set_rate


def _hooked(block: nn.Module, branch_end: nn.Module) -> _Setter:
    """Adapter for a torchvision block: drop the branch's output through a forward hook on its last layer."""

    def set_rate(p: float) -> Callable[[], None]:
        from torchvision.ops import stochastic_depth

        def hook(module: nn.Module, args: Any, out: Tensor) -> Tensor:
            dropped: Tensor = stochastic_depth(out, p, "row", block.training)
            return dropped

        return branch_end.register_forward_hook(hook).remove

    return set_rate


def _torchvision_block(module: nn.Module) -> _Setter | str | None:
    """Torchvision's ResNet and MobileNetV2 blocks (only when torchvision is already imported)."""
    resnet = sys.modules.get("torchvision.models.resnet")
    if resnet is not None and isinstance(module, (resnet.BasicBlock, resnet.Bottleneck)):
        if module.downsample is not None:
            return "its shortcut changes the shape"
        return _hooked(module, module.bn3 if isinstance(module, resnet.Bottleneck) else module.bn2)
    mobilenet = sys.modules.get("torchvision.models.mobilenetv2")
    if mobilenet is not None and isinstance(module, mobilenet.InvertedResidual):
        if not module.use_res_connect:
            return "has no shortcut"
        return _hooked(module, module.conv)
    return None


def attach_stochastic_depth(
    model: nn.Module, drop_path_rate: float, *, schedule: Literal["linear", "uniform"] = "linear"
) -> RegularizationHandle:
    """Stochastic depth for every residual block of ``model`` whose shortcut keeps the shape.

    Each block's residual branch is dropped for a whole sample with its rate
    during training (and kept, unscaled, in eval mode): blockzoo's residual
    blocks through their ``drop_path``, torchvision's ResNet and MobileNetV2
    blocks through a small adapter (a forward hook with
    ``torchvision.ops.stochastic_depth`` on the branch's last layer). Blocks
    whose shortcut changes the shape (a projection or padding shortcut), or
    that have none, are left alone: dropping their branch would drop the only
    path that changes the features. ``handle.targets`` lists the blocks that
    got a rate; ``remove()`` restores the previous rates.

    Args:
        model: Any module.
        drop_path_rate: The rate of the last block, in ``[0, 1]``.
        schedule: ``"linear"`` (rising from 0 over the blocks in order, Huang
            et al. 2016) or ``"uniform"`` (the same rate everywhere).

    Raises:
        ValueError: a bad rate or schedule, or no residual block can take it.

    Example:
        >>> import blockzoo
        >>> from blockzoo.regularization import attach_stochastic_depth
        >>> model = blockzoo.create_model("resnet20")
        >>> handle = attach_stochastic_depth(model, 0.2)
        >>> len(handle.targets), model.features.stage3[2].drop_path.p
        (7, 0.2)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module. Received: model={type(model).__name__}")
    rate = check_probability("drop_path_rate", drop_path_rate)
    if schedule not in ("linear", "uniform"):
        raise ValueError(f"schedule must be 'linear' or 'uniform'. Received: schedule={schedule!r}")
    eligible: list[tuple[str, nn.Module, _Setter]] = []
    refused: list[str] = []
    for name, module in model.named_modules():
        setter = _blockzoo_block(module) if isinstance(module, ResidualBlock) else _torchvision_block(module)
        if isinstance(setter, str):
            refused.append(f"{name or type(module).__name__} ({setter})")
        elif setter is not None:
            eligible.append((name, module, setter))
    if not eligible:
        detail = f"; refused: {', '.join(refused[:3])}" if refused else ""
        raise ValueError(f"{type(model).__name__} has no residual block whose shortcut keeps the shape{detail}")
    rates = drop_path_rates(rate, len(eligible)) if schedule == "linear" else [rate] * len(eligible)
    undos = [setter(p) for (_, _, setter), p in zip(eligible, rates, strict=True)]

    def undo() -> None:
        for u in reversed(undos):
            u()

    names = [name or "<model>" for name, _, _ in eligible]
    attachment = Attachment(
        "stochastic depth",
        f"drop_path_rate={rate:g} ({schedule})",
        "structural",
        names,
        ("stochastic depth",),
        [m for _, m, _ in eligible],
        undo,
    )
    return attach(model, attachment)
