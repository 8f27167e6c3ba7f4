"""torchvision interop: convert torchvision state_dicts, and pretrained="torchvision"."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from blockzoo.errors import CheckpointError

__all__ = ["load_pretrained", "load_torchvision_weights", "torchvision_to_blockzoo"]


def torchvision_to_blockzoo(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision state_dict to ``model``'s keys.

    blockzoo builds each torchvision architecture with its layers registered
    in torchvision's order, so the two state_dicts list the same tensors in
    the same order under different names; the conversion pairs them in order
    and checks every shape.

    Raises:
        CheckpointError: the number of tensors or a shape differs (every
            mismatch is listed).

    Example:
        >>> import torchvision, blockzoo
        >>> from blockzoo.models import torchvision_to_blockzoo
        >>> converted = torchvision_to_blockzoo(blockzoo.create_model("resnet18"), torchvision.models.resnet18().state_dict())
        >>> list(converted)[:2]
        ['features.stem.conv.conv.weight', 'features.stem.conv.norm.weight']
    """
    ours = model.state_dict()
    key_order = getattr(model, "torchvision_key_order", None)
    if callable(key_order):  # a family whose modules torchvision registers in another order (RegNet's shortcuts)
        state_dict = {key: state_dict[key] for key in key_order(list(state_dict))}
    if len(ours) != len(state_dict):
        raise CheckpointError(
            f"the torchvision state_dict has {len(state_dict)} tensors, {type(model).__name__} "
            f"{getattr(model, 'model_name', '')} has {len(ours)}: not the same architecture"
        )
    mismatched = [
        f"{theirs_key} {tuple(theirs.shape)} -> {our_key} {tuple(mine.shape)}"
        for (our_key, mine), (theirs_key, theirs) in zip(ours.items(), state_dict.items(), strict=True)
        if mine.shape != theirs.shape
    ]
    if mismatched:
        raise CheckpointError(
            "shapes differ between the torchvision state_dict and the model: " + "; ".join(mismatched)
        )
    return dict(zip(ours, state_dict.values(), strict=True))


def load_torchvision_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a torchvision state_dict of the same architecture into a blockzoo model.

    The outputs then equal torchvision's (eval mode, float32). Nothing is
    changed when the conversion fails.

    Returns:
        The model.

    Example:
        >>> import torch, torchvision, blockzoo
        >>> theirs = torchvision.models.mobilenet_v2().eval()
        >>> ours = blockzoo.models.load_torchvision_weights(blockzoo.create_model("mobilenet_v2"), theirs.state_dict()).eval()
        >>> x = torch.randn(1, 3, 64, 64)
        >>> torch.allclose(ours(x), theirs(x), atol=1e-5)
        True
    """
    model.load_state_dict(torchvision_to_blockzoo(model, state_dict))
    return model


def load_pretrained(model: nn.Module, name: str, source: str) -> None:
    """Load pretrained weights for a registered model; only ``"torchvision"`` is a source today."""
    if source != "torchvision":
        raise ValueError(f"pretrained must be 'torchvision' or None. Received: pretrained={source!r}")
    from torchvision.models import get_model_weights  # a dependency, imported only when asked for

    try:
        weights = get_model_weights(name).DEFAULT
    except ValueError as err:
        raise ValueError(f"torchvision has no weights for {name!r}. Received: pretrained='torchvision'") from err
    try:
        state_dict = weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"could not download torchvision's {weights} for {name!r} from {weights.url}: {err}. On a machine "
            "without network access, download the file elsewhere and load it with "
            "blockzoo.models.load_torchvision_weights(model, torch.load(path, weights_only=True))."
        ) from err
    load_torchvision_weights(model, state_dict)
