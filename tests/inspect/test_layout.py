"""to_channels_last: every block and every registered CNN keeps channels_last memory from input to output."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import to_channels_last
from blockzoo.blocks import PadShortcut
from deploy_cases import CNNS, build

FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}


def is_channels_last(x: torch.Tensor) -> bool:
    """Channels-last and unambiguously so: not also plain contiguous (which a 1x1 map or 1 channel would be)."""
    return x.is_contiguous(memory_format=FORMATS[x.dim()]) and not x.is_contiguous()


def _residual() -> nn.Module:
    branch = nn.Sequential(blockzoo.ConvNormAct(8, 8), blockzoo.ConvNormAct(8, 8, act_layer=None))
    return blockzoo.ResidualBlock(branch)


#: One configuration of every block whose output is a map, with its input shape.
BLOCKS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "ConvNormAct": (lambda: blockzoo.ConvNormAct(4, 8), (2, 4, 8, 8)),
    "ConvNormAct-3d": (lambda: blockzoo.ConvNormAct(4, 8, spatial_dims=3), (2, 4, 4, 4, 4)),
    "ConvNormAct-pre": (lambda: blockzoo.ConvNormAct(4, 8, order="norm-act-conv"), (2, 4, 8, 8)),
    "ConvBlock": (lambda: blockzoo.ConvBlock(4, 8, num_convs=2, drop_rate=0.1), (2, 4, 8, 8)),
    "DepthwiseSeparableConv": (lambda: blockzoo.DepthwiseSeparableConv(4, 8, stride=2), (2, 4, 8, 8)),
    "BasicBlock": (lambda: blockzoo.BasicBlock(4, 8, stride=2), (2, 4, 8, 8)),
    "BasicBlock-pad": (lambda: blockzoo.BasicBlock(4, 8, stride=2, shortcut="pad"), (2, 4, 8, 8)),
    "Bottleneck": (lambda: blockzoo.Bottleneck(8, 16, stride=2, groups=2, drop_path_rate=0.1), (2, 8, 8, 8)),
    "InvertedResidual": (lambda: blockzoo.InvertedResidual(8, 8, se_ratio=0.25, drop_path_rate=0.1), (2, 8, 8, 8)),
    "ResidualBlock": (_residual, (2, 8, 8, 8)),
    "SqueezeExcite": (lambda: blockzoo.SqueezeExcite(8), (2, 8, 8, 8)),
    "DropPath": (lambda: blockzoo.DropPath(0.5), (4, 8, 8, 8)),
    "DropBlock": (lambda: blockzoo.DropBlock(0.2, block_size=3), (2, 8, 8, 8)),
    "PadShortcut": (lambda: PadShortcut(4, 8, stride=2), (2, 4, 8, 8)),
    "MBConv": (lambda: blockzoo.MBConv(8, 8, drop_path_rate=0.1), (2, 8, 8, 8)),
    "FusedMBConv": (lambda: blockzoo.FusedMBConv(8, 16, stride=2), (2, 8, 8, 8)),
    "ConvNeXtBlock": (lambda: blockzoo.ConvNeXtBlock(8, drop_path_rate=0.1), (2, 8, 8, 8)),
    "LayerNorm2d": (lambda: blockzoo.LayerNorm2d(8), (2, 8, 8, 8)),
    "LayerScale": (lambda: blockzoo.LayerScale(8, spatial_dims=2), (2, 8, 8, 8)),
    "DenseLayer": (lambda: blockzoo.DenseLayer(8, growth_rate=4, bn_size=2), (2, 8, 8, 8)),
    "DenseBlock": (lambda: blockzoo.DenseBlock(8, 2, growth_rate=4, bn_size=2), (2, 8, 8, 8)),
    "Transition": (lambda: blockzoo.Transition(8, 4), (2, 8, 8, 8)),
    "ShuffleUnit": (lambda: blockzoo.ShuffleUnit(8, 16, stride=2), (2, 8, 8, 8)),
    "Fire": (lambda: blockzoo.Fire(8, 4, 8, 8), (2, 8, 8, 8)),
    "PartitionAttention": (lambda: blockzoo.PartitionAttention(8, partition_size=4, head_dim=4), (2, 8, 8, 8)),
    "MaxViTMBConv": (lambda: blockzoo.MaxViTMBConv(8, 16, stride=2), (2, 8, 8, 8)),
    "MaxViTBlock": (lambda: blockzoo.MaxViTBlock(8, 16, stride=2, partition_size=2, head_dim=4), (2, 8, 8, 8)),
}
#: Blocks whose output is not a map (features, or tokens [N, L, C]), and a function: the check does not apply.
FLAT_OUTPUT = {
    "MLP", "ClassifierHead", "PatchEmbed", "ClassToken", "PositionEmbedding", "MultiHeadSelfAttention",
    "TransformerBlock", "channel_shuffle", "RelativePositionAttention",
}  # fmt: skip
#: Blocks on maps with the channels last in their shape, [N, H, W, C] (Swin's): a memory format does not apply.
CHANNELS_LAST_SHAPE = {"WindowAttention", "SwinBlock", "PatchMerging"}
ABSTRACT = {"Block", "ChannelsFirstBlock"}


def test_every_block_is_covered() -> None:
    covered = {name.split("-")[0] for name in BLOCKS}
    assert covered | FLAT_OUTPUT | CHANNELS_LAST_SHAPE | ABSTRACT == set(blockzoo.blocks.__all__)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", list(BLOCKS))
def test_every_block_keeps_channels_last(name: str, mode: str) -> None:
    make, shape = BLOCKS[name]
    block = to_channels_last(make().train(mode == "train"))
    x = torch.randn(shape).contiguous(memory_format=FORMATS[len(shape)])
    assert is_channels_last(block(x))


def _features_input(name: str) -> torch.Tensor:
    """A channels_last input whose feature map is larger than 1x1, so that its memory format shows."""
    c, h, _ = blockzoo.model_info(name).input_size
    # lenet5's features are 1x1 at 32x32, inception_v3's (three stride-2 convs and two pools, unpadded) below 107x107;
    # maxvit_t takes 221x221 at the least (every stage a multiple of its 7x7 partitions)
    side = {"lenet5": 40, "inception_v3": 107, "maxvit_t": 221}.get(name, 64 if h >= 224 else h)
    return torch.randn(1, c, side, side).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", CNNS)
def test_every_zoo_cnn_keeps_channels_last(name: str) -> None:
    model = to_channels_last(build(name))
    with torch.no_grad():
        features = model.forward_features(_features_input(name))
    assert features.shape[-1] > 1
    assert is_channels_last(features)


def test_the_copy_is_converted_and_the_original_is_not() -> None:
    model = blockzoo.create_model("resnet20").eval()
    converted = to_channels_last(model)
    kernels = [(a, b) for a, b in zip(model.parameters(), converted.parameters(), strict=True) if a.dim() == 4]
    assert kernels
    assert all(a.is_contiguous() and is_channels_last(b) and torch.equal(a, b) for a, b in kernels)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(converted(x), model(x))


def test_a_3d_kernel_gets_channels_last_3d() -> None:
    model = nn.Sequential(nn.Conv3d(3, 4, 3), nn.Conv2d(4, 4, 1).to(memory_format=torch.channels_last))
    with pytest.raises(RuntimeError, match="rank 4"):  # what plain torch does with a 5-D kernel
        model.to(memory_format=torch.channels_last)
    converted = to_channels_last(model)
    assert is_channels_last(converted[0].weight)
    assert converted[0].weight is not model[0].weight


def test_a_non_module_is_refused() -> None:
    with pytest.raises(TypeError, match=r"model must be an nn\.Module\. Received: model=Tensor"):
        to_channels_last(torch.ones(1))  # type: ignore[type-var]
