"""The model classes of the ConvNeXt and vision-transformer families (registered in ``_convnext`` and ``_vit``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from blockzoo.models._base import ZooModel
from blockzoo.shapes import infer_shape

__all__ = ["ConvNeXt", "VisionTransformer"]


class ConvNeXt(ZooModel):
    """A ConvNeXt: a patchify stem, four stages of :class:`~blockzoo.ConvNeXtBlock`, and a normalising head.

    Between the stages, a layer norm then a 2x2 stride-2 conv downsamples.

    ``features`` holds ``stem``, ``stage1``, ``down2``, ``stage2``, ``down3``,
    ``stage3``, ``down4``, ``stage4`` (torchvision's ``features[0]`` to
    ``features[7]``).

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("convnext_tiny", num_classes=10)
        >>> model.features.down2
        ConvNormAct(
          order='norm-act-conv'
          (norm): LayerNorm2d((96,), eps=1e-06, elementwise_affine=True, bias=True)
          (act): Identity()
          (conv): Conv2d(96, 192, kernel_size=(2, 2), stride=(2, 2))
        )
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def param_depths(self) -> dict[str, int]:
        """The stage of each parameter (a downsampling layer belongs to the stage it feeds; the head is last)."""
        depth = {"stem": 0}
        for s in range(1, 5):
            depth[f"stage{s}"] = depth[f"down{s}"] = s
        return {
            name: depth[name.split(".")[1]] if name.startswith("features.") else 5
            for name, _ in self.named_parameters()
        }

    def torchvision_key_order(self) -> list[str]:
        """The state_dict keys in the order of torchvision's: each block's layer scale first, as torchvision registers it."""
        keys = list(self.state_dict())
        scales = {k for k in keys if k.endswith(".branch.layer_scale.gamma")}
        order = []
        for key in keys:
            if key in scales:
                continue
            if key.endswith(".branch.dw.weight"):
                scale = key.removesuffix("dw.weight") + "layer_scale.gamma"
                if scale in scales:
                    order.append(scale)
            order.append(key)
        return order


class VisionTransformer(ZooModel):
    """A vision transformer: patches to tokens, a class token and position embeddings, transformer blocks, a norm.

    ``forward_features`` returns the normalised tokens ``[N, 1 + patches, dim]``;
    ``forward_head`` reads the class token (the first) and classifies it.
    ``features`` holds ``patch_embed``, ``class_token``, ``pos_embed``,
    ``pos_drop``, ``blocks`` and ``norm``. An image of another square size
    than the model's gets its position embeddings resized (see
    :class:`~blockzoo.PositionEmbedding`).

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("vit_b_32", num_classes=10)
        >>> tokens = model.forward_features(torch.randn(1, 3, 224, 224))
        >>> tokens.shape, model.forward_head(tokens).shape
        (torch.Size([1, 50, 768]), torch.Size([1, 10]))
        >>> model(torch.randn(1, 3, 64, 64)).shape  # 2 x 2 patches
        torch.Size([1, 10])
    """

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """The head on the class token of ``x`` (``[N, L, dim]``); ``pre_logits=True`` stops before the classifier."""
        return super().forward_head(x[:, 0], pre_logits)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, _, dim = infer_shape(self.features, input_shape)
        return infer_shape(self.head, (n, dim))

    def param_depths(self) -> dict[str, int]:
        """Depth 0 for the embeddings, ``i + 1`` for block ``i``, then the final norm and the head (as BEiT and MAE)."""
        blocks = len(list(self.features.get_submodule("blocks").children()))
        depths = {}
        for name, _ in self.named_parameters():
            parts = name.split(".")
            if parts[0] == "features" and parts[1] == "blocks":
                depths[name] = int(parts[2]) + 1
            elif parts[0] == "features" and parts[1] in ("patch_embed", "class_token", "pos_embed"):
                depths[name] = 0
            else:
                depths[name] = blocks + 1
        return depths

    def torchvision_key_order(self) -> list[str]:
        """The state_dict keys in the order of torchvision's: the class token first, as torchvision registers it."""
        keys = list(self.state_dict())
        token = "features.class_token.token"
        return [token, *(k for k in keys if k != token)]
