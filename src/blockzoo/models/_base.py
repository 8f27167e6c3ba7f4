"""ZooModel: the contract every registered classifier follows."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from blockzoo.blocks import ClassifierHead
from blockzoo.blocks._drop import drop_path_rates
from blockzoo.shapes import infer_shape

__all__ = ["ZooModel", "drop_path_rates"]


class ZooModel(nn.Module):
    """A classifier made of ``features`` (stem and stages) and a :class:`~blockzoo.ClassifierHead`.

    Every registered model is one: ``forward_features``, ``forward_head``,
    ``reset_classifier``, ``num_classes`` and ``num_features`` work the same
    way on all of them, as in timm.

    Args:
        features: The feature extractor; an ``nn.Sequential`` whose children
            are the stages, from the input on.
        head: The classifier head.

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("simple_cnn")
        >>> feats = model.forward_features(torch.randn(2, 3, 32, 32))
        >>> feats.shape, model.forward_head(feats, pre_logits=True).shape
        (torch.Size([2, 128, 4, 4]), torch.Size([2, 2048]))
        >>> model.reset_classifier(5)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
    """

    model_name: str
    model_config: dict[str, object]

    def __init__(self, features: nn.Sequential, head: ClassifierHead) -> None:
        super().__init__()
        self.features = features
        self.head = head

    @property
    def num_classes(self) -> int:
        """Classes of the classifier (0 when it was removed)."""
        return self.head.num_classes

    @property
    def num_features(self) -> int:
        """Width of the pre-logits features the classifier reads."""
        return self.head.num_features

    def forward_features(self, x: Tensor) -> Tensor:
        """The feature map before the head."""
        out: Tensor = self.features(x)
        return out

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """The head on a feature map; ``pre_logits=True`` stops before the classifier."""
        out: Tensor = self.head.pre_logits(x) if pre_logits else self.head(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` classes (0 for none)."""
        self.head.reset(num_classes)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        """The output shape for an input shape, computed statically."""
        return infer_shape(self.head, infer_shape(self.features, input_shape))

    def param_depths(self) -> dict[str, int]:
        """Depth of each parameter from the input, for layer-wise lr decay.

        The depth of a parameter in ``features`` is the index of its child
        among the children that hold parameters (a model's stages; each conv
        unit of a flat list such as VGG's, whose pooling and activation layers
        take no depth); the head comes last.
        """
        stages = [name for name, child in self.features.named_children() if any(True for _ in child.parameters())]
        index = {name: i for i, name in enumerate(stages)}
        depths = {}
        for name, _ in self.named_parameters():
            parts = name.split(".")
            depths[name] = index[parts[1]] if parts[0] == "features" else len(stages)
        return depths
