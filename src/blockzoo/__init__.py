"""blockzoo: composable PyTorch blocks that know their parameters.

The top level re-exports the names most code needs; the subpackages
(:mod:`blockzoo.layers`, :mod:`blockzoo.blocks`, :mod:`blockzoo.init`,
:mod:`blockzoo.regularization`, :mod:`blockzoo.optim`, :mod:`blockzoo.models`,
:mod:`blockzoo.inspect`, :mod:`blockzoo.data`, :mod:`blockzoo.train`,
:mod:`blockzoo.testing`) hold the rest.

Example:
    >>> import torch, blockzoo
    >>> model = torch.nn.Sequential(
    ...     blockzoo.ConvBlock(3, 32), blockzoo.ConvBlock(32, 64), blockzoo.ClassifierHead(64, 10)
    ... )
    >>> model(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from blockzoo import data, init, regularization, train
from blockzoo._version import __version__
from blockzoo.blocks import (
    MLP,
    BasicBlock,
    Block,
    Bottleneck,
    ClassifierHead,
    ClassToken,
    ConvBlock,
    ConvNeXtBlock,
    ConvNormAct,
    DenseBlock,
    DenseLayer,
    DepthwiseSeparableConv,
    DropBlock,
    DropPath,
    Fire,
    FusedMBConv,
    InvertedResidual,
    LayerNorm2d,
    LayerScale,
    MBConv,
    MultiHeadSelfAttention,
    PatchEmbed,
    PositionEmbedding,
    ResidualBlock,
    ShuffleUnit,
    SqueezeExcite,
    TransformerBlock,
    Transition,
)
from blockzoo.errors import CheckpointError, DatasetNotFoundError, InputError, UnknownNameError, UnsafeCheckpointError
from blockzoo.init import init_report, init_weights, lsuv_, zero_init_last_
from blockzoo.inspect import (
    ModelSummary,
    count_params,
    explain_fusion,
    export_model,
    export_onnx,
    flops,
    fuse_conv_bn,
    optimize_for_inference,
    summary,
    to_channels_last,
)
from blockzoo.layers import list_layers, register_layer, resolve_layer
from blockzoo.models import create_model, list_models, load_weights, model_info, register_model, save_weights
from blockzoo.optim import (
    check_param_groups,
    create_optimizer,
    create_scheduler,
    explain_param_groups,
    list_optimizers,
    list_schedulers,
)
from blockzoo.roles import Role, param_roles, select
from blockzoo.shapes import ShapeRecord, infer_shape, trace_shapes

__all__ = [
    "MLP",
    "BasicBlock",
    "Block",
    "Bottleneck",
    "CheckpointError",
    "ClassToken",
    "ClassifierHead",
    "ConvBlock",
    "ConvNeXtBlock",
    "ConvNormAct",
    "DatasetNotFoundError",
    "DenseBlock",
    "DenseLayer",
    "DepthwiseSeparableConv",
    "DropBlock",
    "DropPath",
    "Fire",
    "InputError",
    "InvertedResidual",
    "LayerNorm2d",
    "LayerScale",
    "FusedMBConv",
    "MBConv",
    "ModelSummary",
    "MultiHeadSelfAttention",
    "PatchEmbed",
    "PositionEmbedding",
    "ResidualBlock",
    "Role",
    "ShapeRecord",
    "ShuffleUnit",
    "SqueezeExcite",
    "TransformerBlock",
    "Transition",
    "UnknownNameError",
    "UnsafeCheckpointError",
    "__version__",
    "data",
    "init",
    "regularization",
    "train",
    "check_param_groups",
    "count_params",
    "create_model",
    "create_optimizer",
    "create_scheduler",
    "explain_fusion",
    "explain_param_groups",
    "flops",
    "export_model",
    "export_onnx",
    "fuse_conv_bn",
    "infer_shape",
    "init_report",
    "init_weights",
    "list_layers",
    "list_models",
    "list_optimizers",
    "list_schedulers",
    "load_weights",
    "lsuv_",
    "model_info",
    "optimize_for_inference",
    "param_roles",
    "register_layer",
    "register_model",
    "resolve_layer",
    "save_weights",
    "select",
    "summary",
    "to_channels_last",
    "trace_shapes",
    "zero_init_last_",
]
