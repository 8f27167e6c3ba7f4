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

import importlib
from typing import TYPE_CHECKING

from blockzoo import init
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
    MaxViTBlock,
    MaxViTMBConv,
    MBConv,
    MultiHeadSelfAttention,
    PartitionAttention,
    PatchEmbed,
    PatchMerging,
    PositionEmbedding,
    RelativePositionAttention,
    ResidualBlock,
    ShuffleUnit,
    SqueezeExcite,
    SwinBlock,
    TransformerBlock,
    Transition,
    WindowAttention,
)
from blockzoo.errors import CheckpointError, DatasetNotFoundError, InputError, UnknownNameError, UnsafeCheckpointError
from blockzoo.init import init_report, init_weights, lsuv_, zero_init_last_
from blockzoo.layers import list_layers, register_layer, resolve_layer
from blockzoo.roles import Role, param_roles, select
from blockzoo.shapes import ShapeRecord, infer_shape, trace_shapes

if TYPE_CHECKING:
    # Loaded on first use (see ``__getattr__`` below); imported here so that type checkers
    # and IDEs see the same names as at run time.
    from blockzoo import data, regularization, train
    from blockzoo import inspect as inspect
    from blockzoo import models as models
    from blockzoo import optim as optim
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
    from blockzoo.models import create_model, list_models, load_weights, model_info, register_model, save_weights
    from blockzoo.optim import (
        check_param_groups,
        create_optimizer,
        create_scheduler,
        explain_param_groups,
        list_optimizers,
        list_schedulers,
    )

# Subpackages that most programs building and training a model do not need at import
# time load on first use (PEP 562), so that ``import blockzoo`` costs little more than
# ``import torch``; ``blockzoo.X`` and ``from blockzoo import X`` work as before.
_LAZY_SUBPACKAGES = frozenset({"data", "inspect", "models", "optim", "regularization", "train"})
_LAZY_NAMES = {
    "ModelSummary": "inspect",
    "count_params": "inspect",
    "explain_fusion": "inspect",
    "export_model": "inspect",
    "export_onnx": "inspect",
    "flops": "inspect",
    "fuse_conv_bn": "inspect",
    "optimize_for_inference": "inspect",
    "summary": "inspect",
    "to_channels_last": "inspect",
    "create_model": "models",
    "list_models": "models",
    "load_weights": "models",
    "model_info": "models",
    "register_model": "models",
    "save_weights": "models",
    "check_param_groups": "optim",
    "create_optimizer": "optim",
    "create_scheduler": "optim",
    "explain_param_groups": "optim",
    "list_optimizers": "optim",
    "list_schedulers": "optim",
}

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
    "MaxViTBlock",
    "MaxViTMBConv",
    "FusedMBConv",
    "MBConv",
    "ModelSummary",
    "MultiHeadSelfAttention",
    "PartitionAttention",
    "PatchEmbed",
    "PatchMerging",
    "PositionEmbedding",
    "RelativePositionAttention",
    "ResidualBlock",
    "Role",
    "ShapeRecord",
    "ShuffleUnit",
    "SqueezeExcite",
    "SwinBlock",
    "TransformerBlock",
    "Transition",
    "UnknownNameError",
    "UnsafeCheckpointError",
    "WindowAttention",
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


if not TYPE_CHECKING:  # type checkers read the imports above instead

    def __getattr__(name: str) -> object:
        """Load a lazy subpackage or one of its re-exported names on first access."""
        if name in _LAZY_SUBPACKAGES:
            # Importing a submodule binds it in this namespace, so this runs once per name.
            return importlib.import_module(f"blockzoo.{name}")
        if name in _LAZY_NAMES:
            value = getattr(importlib.import_module(f"blockzoo.{_LAZY_NAMES[name]}"), name)
            globals()[name] = value
            return value
        raise AttributeError(f"module 'blockzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY_SUBPACKAGES | set(_LAZY_NAMES))
