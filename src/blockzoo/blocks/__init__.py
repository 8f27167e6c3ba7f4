"""Composable blocks: every one follows the contract that :func:`blockzoo.testing.check_block` checks."""

from blockzoo.blocks._base import Block, ChannelsFirstBlock
from blockzoo.blocks._conv import ConvBlock, ConvNormAct, DepthwiseSeparableConv
from blockzoo.blocks._drop import DropBlock, DropPath
from blockzoo.blocks._mbconv import FusedMBConv, MBConv
from blockzoo.blocks._mlp import MLP, ClassifierHead
from blockzoo.blocks._residual import BasicBlock, Bottleneck, InvertedResidual, ResidualBlock
from blockzoo.blocks._se import SqueezeExcite
from blockzoo.blocks._shortcut import PadShortcut

__all__ = [
    "MLP",
    "BasicBlock",
    "Block",
    "Bottleneck",
    "ChannelsFirstBlock",
    "ClassifierHead",
    "ConvBlock",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "DropBlock",
    "DropPath",
    "FusedMBConv",
    "InvertedResidual",
    "MBConv",
    "PadShortcut",
    "ResidualBlock",
    "SqueezeExcite",
]
