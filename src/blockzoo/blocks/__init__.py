"""Composable blocks: every one follows the contract that :func:`blockzoo.testing.check_block` checks."""

from blockzoo.blocks._attention import MultiHeadSelfAttention, TransformerBlock
from blockzoo.blocks._base import Block, ChannelsFirstBlock
from blockzoo.blocks._conv import ConvBlock, ConvNormAct, DepthwiseSeparableConv
from blockzoo.blocks._convnext import ConvNeXtBlock, LayerNorm2d, LayerScale
from blockzoo.blocks._dense import DenseBlock, DenseLayer, Transition
from blockzoo.blocks._drop import DropBlock, DropPath
from blockzoo.blocks._fire import Fire
from blockzoo.blocks._maxvit import MaxViTBlock, MaxViTMBConv, PartitionAttention, RelativePositionAttention
from blockzoo.blocks._mbconv import FusedMBConv, InvertedResidual, MBConv
from blockzoo.blocks._mlp import MLP, ClassifierHead
from blockzoo.blocks._residual import BasicBlock, Bottleneck, ResidualBlock
from blockzoo.blocks._se import SqueezeExcite
from blockzoo.blocks._shortcut import PadShortcut
from blockzoo.blocks._shuffle import ShuffleUnit, channel_shuffle
from blockzoo.blocks._swin import PatchMerging, SwinBlock, WindowAttention
from blockzoo.blocks._tokens import ClassToken, PatchEmbed, PositionEmbedding

__all__ = [
    "MLP",
    "BasicBlock",
    "Block",
    "Bottleneck",
    "ChannelsFirstBlock",
    "ClassToken",
    "ClassifierHead",
    "ConvBlock",
    "ConvNeXtBlock",
    "ConvNormAct",
    "DenseBlock",
    "DenseLayer",
    "DepthwiseSeparableConv",
    "DropBlock",
    "DropPath",
    "Fire",
    "InvertedResidual",
    "LayerNorm2d",
    "LayerScale",
    "MaxViTBlock",
    "MaxViTMBConv",
    "MultiHeadSelfAttention",
    "FusedMBConv",
    "MBConv",
    "PadShortcut",
    "PartitionAttention",
    "PatchEmbed",
    "PatchMerging",
    "PositionEmbedding",
    "RelativePositionAttention",
    "ResidualBlock",
    "ShuffleUnit",
    "SqueezeExcite",
    "SwinBlock",
    "TransformerBlock",
    "Transition",
    "WindowAttention",
    "channel_shuffle",
]
