"""``attach_stochastic_depth``: drop whole residual branches during training (Huang et al. 2016)."""

from __future__ import annotations

import sys
from typing import Any, Literal

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from blockzoo._checks import check_module, check_probability
from blockzoo.blocks import ResidualBlock
from blockzoo.blocks._drop import drop_path_rates
from blockzoo.regularization._store import Attachment, RegularizationHandle, attach

__all__ = ["attach_stochastic_depth"]


def _blockzoo_block(block: ResidualBlock) -> str | None:
    """Why ``block`` cannot take a rate, or ``None`` when it can (through its ``drop_path``)."""
    if not block.has_shortcut:
        return "has no shortcut"
    if type(block.shortcut) is not nn.Identity:
        return "its shortcut changes the shape"
    return None


def _torchvision_block(module: nn.Module) -> nn.Module | str | None:
    """Torchvision's ResNet and MobileNetV2 blocks (only when torchvision is already imported).

    Returns the layer that ends the block's branch (where a hook drops it), why the
    block cannot take a rate, or ``None`` for any other module.
    """
    resnet = sys.modules.get("torchvision.models.resnet")
    if resnet is not None and isinstance(module, (resnet.BasicBlock, resnet.Bottleneck)):
        if module.downsample is not None:
            return "its shortcut changes the shape"
        return module.bn3 if isinstance(module, resnet.Bottleneck) else module.bn2  # type: ignore[no-any-return]
    mobilenet = sys.modules.get("torchvision.models.mobilenetv2")
    if mobilenet is not None and isinstance(module, mobilenet.InvertedResidual):
        if not module.use_res_connect:
            return "has no shortcut"
        return module.conv  # type: ignore[no-any-return]
    return None


class _DropBranch:
    """A forward hook on the last layer of a torchvision block's branch: drop its output per sample."""

    def __init__(self, block: nn.Module, p: float) -> None:
        self.block, self.p = block, p

    def __call__(self, module: nn.Module, args: Any, out: Tensor) -> Tensor:
        from torchvision.ops import stochastic_depth

        dropped: Tensor = stochastic_depth(out, self.p, "row", self.block.training)
        return dropped


class _StochasticDepth(Attachment):
    kind = "stochastic depth"
    mode = "structural"

    def __init__(self, what: str, blocks: list[tuple[str, nn.Module, nn.Module | None]], rates: list[float]) -> None:
        super().__init__(
            what, [name or "<model>" for name, _, _ in blocks], ("stochastic depth",), [b for _, b, _ in blocks]
        )
        self.blocks = [(block, end) for _, block, end in blocks]
        self.rates = rates
        self.previous: list[float | RemovableHandle] = []

    def apply(self) -> None:
        for (block, end), p in zip(self.blocks, self.rates, strict=True):
            if isinstance(block, ResidualBlock):  # a blockzoo residual block: its own drop_path
                self.previous.append(block.drop_path.p)
                block.drop_path.p = p
            elif end is not None:
                self.previous.append(end.register_forward_hook(_DropBranch(block, p)))

    def undo(self) -> None:
        for (block, _), previous in reversed(list(zip(self.blocks, self.previous, strict=True))):
            if isinstance(previous, RemovableHandle):
                previous.remove()
            elif isinstance(block, ResidualBlock):
                block.drop_path.p = previous


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
    path that changes the features. The linear schedule ramps over the
    residual blocks in the order of ``model.named_modules()``: each half of a
    :class:`~blockzoo.TransformerBlock` (attention, MLP) is a block of its
    own, where the ViT builders give both halves of a transformer block the
    same rate. ``handle.targets`` lists the blocks that got a rate;
    ``remove()`` restores the previous rates.

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
    check_module("model", model)
    rate = check_probability("drop_path_rate", drop_path_rate)
    if schedule not in ("linear", "uniform"):
        raise ValueError(f"schedule must be 'linear' or 'uniform'. Received: schedule={schedule!r}")
    eligible: list[tuple[str, nn.Module, nn.Module | None]] = []
    refused: list[str] = []
    for name, module in model.named_modules():
        found = _blockzoo_block(module) if isinstance(module, ResidualBlock) else _torchvision_block(module)
        if isinstance(found, str):
            refused.append(f"{name or type(module).__name__} ({found})")
        elif isinstance(module, ResidualBlock) or found is not None:
            eligible.append((name, module, found))
    if not eligible:
        detail = f"; refused: {', '.join(refused[:3])}" if refused else ""
        raise ValueError(f"{type(model).__name__} has no residual block whose shortcut keeps the shape{detail}")
    rates = drop_path_rates(rate, len(eligible)) if schedule == "linear" else [rate] * len(eligible)
    return attach(model, _StochasticDepth(f"drop_path_rate={rate:g} ({schedule})", eligible, rates))
