"""torchvision interop: convert torchvision state_dicts, and pretrained="torchvision"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from blockzoo.errors import CheckpointError

__all__ = ["load_pretrained", "load_torchvision_weights", "torchvision_to_blockzoo"]


def torchvision_to_blockzoo(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision state_dict to ``model``'s keys.

    blockzoo builds each torchvision architecture with its layers registered
    in torchvision's order, so the two state_dicts list the same tensors in
    the same order under different names; the conversion pairs them in order
    and checks every shape. A model whose forward order differs from the
    order torchvision registers its tensors in (ConvNeXt's layer scale, the
    vision transformers' class token) lists its keys in torchvision's order
    with a ``torchvision_key_order()`` method, and a model without some of
    torchvision's layers (GoogLeNet's and Inception v3's auxiliary
    classifiers, Swin's relative position index, which blockzoo computes)
    names the keys it leaves out with ``torchvision_unused_keys(keys)``.

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
    unused = getattr(model, "torchvision_unused_keys", None)
    if callable(unused):
        left_out = set(unused(list(state_dict)))
        state_dict = {k: v for k, v in state_dict.items() if k not in left_out}
    reorder = getattr(model, "torchvision_key_order", None)
    if callable(reorder):
        ours = {key: ours[key] for key in reorder()}
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


def _crop_size(weights: Any) -> int | None:
    """The image side a torchvision weights entry was made for: its transforms' crop size."""
    transforms = weights.transforms
    size = getattr(transforms, "keywords", {}).get("crop_size")
    return int(size) if isinstance(size, int) else None


def torchvision_weights(name: str, image_size: int) -> Any:
    """The torchvision weights entry for the model ``name`` at ``image_size``.

    The ``DEFAULT`` weights when they were made for ``image_size`` (their
    crop size), else the first of the model's weights that were (vit_h_14's
    default weights are made for 518 x 518 images, its position embedding
    too; at 224 its ``IMAGENET1K_SWAG_LINEAR_V1`` weights fit). When none was,
    ``DEFAULT``: a convolutional network takes any image size, and a model
    whose shapes depend on it is refused by the conversion's shape check.

    Raises:
        ValueError: torchvision has no weights for ``name``.

    Example:
        >>> from blockzoo.models._torchvision import torchvision_weights
        >>> torchvision_weights("vit_h_14", 224), torchvision_weights("vit_h_14", 518)
        (ViT_H_14_Weights.IMAGENET1K_SWAG_LINEAR_V1, ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1)
    """
    from torchvision.models import get_model_weights  # a dependency, imported only when asked for

    try:
        entries = get_model_weights(name)
    except ValueError as err:
        raise ValueError(f"torchvision has no weights for {name!r}. Received: pretrained='torchvision'") from err
    default = entries.DEFAULT
    fitting = [w for w in (default, *entries) if _crop_size(w) == image_size]
    return fitting[0] if fitting else default


def load_pretrained(model: nn.Module, name: str, source: str) -> None:
    """Load pretrained weights for a registered model; only ``"torchvision"`` is a source today.

    The weights are :func:`torchvision_weights` at the model's image size
    (its ``image_size`` option, else its registered input size).
    """
    if source != "torchvision":
        raise ValueError(f"pretrained must be 'torchvision' or None. Received: pretrained={source!r}")
    from blockzoo.models._registry import model_input_size

    config = getattr(model, "model_config", {})
    weights = torchvision_weights(name, config.get("image_size", model_input_size(name)[-1]))
    try:
        state_dict = weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"could not download torchvision's {weights} for {name!r} from {weights.url}: {err}. On a machine "
            "without network access, download the file elsewhere and load it with "
            "blockzoo.models.load_torchvision_weights(model, torch.load(path, weights_only=True))."
        ) from err
    load_torchvision_weights(model, state_dict)
