"""MaxViT (Tu et al. 2022), as torchvision builds it."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from blockzoo._checks import check_bool, check_probability
from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead, ConvNormAct, MaxViTBlock, MaxViTMBConv
from blockzoo.blocks._drop import drop_path_rates
from blockzoo.blocks._maxvit import MAXVIT_BATCH_NORM
from blockzoo.init import default_init_, zero_init_last_
from blockzoo.layers import Placement
from blockzoo.models._base import ZooModel
from blockzoo.models._registry import register_model

_PAPER = "Tu et al. 2022, MaxViT: Multi-Axis Vision Transformer"


class _MaxViTHead(ClassifierHead):
    """The head of MaxViT: pool, layer norm, linear and tanh, then a classifier without a bias."""

    def _make_fc(self, num_classes: int, *, device: DeviceLike, dtype: torch.dtype | None) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        fc = nn.Linear(self.num_features, num_classes, bias=False, device=device, dtype=dtype)  # torchvision's: no bias
        default_init_(fc)  # no activation after it: the linear default
        return fc


class MaxViT(ZooModel):
    """A MaxViT: a two-conv stem, four stages of :class:`~blockzoo.MaxViTBlock`, and a head with a tanh layer.

    ``features`` holds ``stem`` and ``stage1`` to ``stage4`` (torchvision's
    ``stem`` and ``blocks[0]`` to ``blocks[3]``); the first block of each
    stage halves the map. Every stage's map must be a multiple of the
    partition size (7): 224 x 224 images (and 221 to 224) give 56, 28, 14
    and 7.

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("maxvit_t", num_classes=10)
        >>> [name for name, _ in model.features.named_children()]
        ['stem', 'stage1', 'stage2', 'stage3', 'stage4']
        >>> model.output_shape((1, 3, 224, 224))
        torch.Size([1, 10])
    """

    def torchvision_unused_keys(self, keys: Sequence[str]) -> list[str]:
        """The keys of torchvision's ``relative_position_index`` buffers: blockzoo makes the index in the forward pass."""
        return [key for key in keys if key.endswith(".relative_position_index")]

    def torchvision_key_order(self) -> list[str]:
        """The state_dict keys in torchvision's order: each MBConv's shortcut before its branch."""
        keys = list(self.state_dict())
        prefixes = [name + "." for name, m in self.named_modules() if isinstance(m, MaxViTMBConv)]
        order: list[str] = []
        for prefix in prefixes:
            shortcut = [k for k in keys if k.startswith(prefix + "shortcut.")]
            branch = [k for k in keys if k.startswith(prefix) and k not in shortcut]
            first = keys.index(branch[0])
            keys[first : first + len(branch) + len(shortcut)] = shortcut + branch
        order.extend(keys)
        return order


def maxvit(
    stem_width: int,
    widths: Sequence[int],
    depths: Sequence[int],
    *,
    head_dim: int = 32,
    partition_size: int = 7,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_rate: float = 0.0,
    attn_drop_rate: float = 0.0,
    drop_path_rate: float = 0.2,
    zero_init_last: bool = False,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> MaxViT:
    """A MaxViT of the given stem width, stage widths and depths (torchvision's layout and defaults).

    ``drop_rate`` is torchvision's ``mlp_dropout`` (after each MLP) and
    ``attn_drop_rate`` its ``attention_dropout`` (after each attention).
    ``drop_path_rate`` rises linearly over the MaxViT blocks, from 0 for the
    first to ``drop_path_rate`` for the last (torchvision's
    ``stochastic_depth_prob``, 0.2); the three residual blocks of a MaxViT
    block share its rate. The attention logits are scaled by
    ``width ** -0.5``, as torchvision does. ``zero_init_last=True`` zeroes the
    last layer of every residual branch. The parameters start from blockzoo's
    initialisation, not torchvision's normal of std 0.02; torchvision's
    weights load as they are.
    """
    check_probability("attn_drop_rate", attn_drop_rate)  # the blocks take it as their proj_drop_rate
    placement: Placement = {"device": device, "dtype": dtype}
    stem = nn.Sequential(
        ConvNormAct(in_channels, stem_width, 3, stride=2, norm_layer=MAXVIT_BATCH_NORM, act_layer="gelu", **placement),
        ConvNormAct(stem_width, stem_width, 3, bias=True, norm_layer=None, act_layer=None, **placement),
    )
    stages: list[tuple[str, nn.Module]] = [("stem", stem)]
    rates = drop_path_rates(drop_path_rate, sum(depths))
    index, previous = 0, stem_width
    for s, (width, depth) in enumerate(zip(widths, depths, strict=True)):
        blocks = [
            MaxViTBlock(
                previous if b == 0 else width,
                width,
                stride=2 if b == 0 else 1,
                partition_size=partition_size,
                head_dim=head_dim,
                attn_scale=width**-0.5,
                proj_drop_rate=attn_drop_rate,
                drop_rate=drop_rate,
                drop_path_rate=rates[index + b],
                **placement,
            )
            for b in range(depth)
        ]
        stages.append((f"stage{s + 1}", nn.Sequential(*blocks)))
        index, previous = index + depth, width
    head = _MaxViTHead(
        widths[-1], num_classes, norm_layer="layernorm", hidden_features=(widths[-1],), act_layer="tanh", **placement
    )
    model = MaxViT(nn.Sequential(OrderedDict(stages)), head)
    if check_bool("zero_init_last", zero_init_last):
        zero_init_last_(model)
    return model


#: maxvit_t: stem 64, stage widths and depths, heads of 32 (torchvision's ``maxvit_t``). Each stage's map must be a
#: multiple of 7: 221 x 221 is the smallest input (maps of 111, then 56, 28, 14 and 7).
register_model("maxvit_t", family="maxvit", paper=_PAPER, min_input_size=(221, 221))(
    functools.partial(maxvit, 64, (64, 128, 256, 512), (2, 2, 5, 2))
)
