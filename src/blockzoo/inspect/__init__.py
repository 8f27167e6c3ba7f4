"""Inspect and deploy models: summary, parameter counts, FLOPs, conv-BN fusion, channels_last and export.

:func:`summary` shows, module by module, the output shape, the parameters,
the FLOPs, and how each layer is set up to train: its initializer, what
regularizes it and which optimizer group trains it. :func:`count_params` and
:func:`flops` are the two numbers on their own. :func:`fuse_conv_bn`,
:func:`to_channels_last` and :func:`optimize_for_inference` prepare a model for
inference; :func:`export_model` and :func:`export_onnx` export it.

Example:
    >>> import blockzoo
    >>> model = blockzoo.create_model("resnet20")
    >>> blockzoo.count_params(model)
    269722
    >>> blockzoo.flops(model, (1, 3, 32, 32))
    81102080
"""

from blockzoo.inspect._counts import count_params, flops
from blockzoo.inspect._export import export_model, export_onnx
from blockzoo.inspect._fuse import FusionReport, explain_fusion, fuse_conv_bn
from blockzoo.inspect._layout import to_channels_last
from blockzoo.inspect._optimize import InferenceModel, InferenceReport, optimize_for_inference
from blockzoo.inspect._report import ModelSummary, SummaryRow
from blockzoo.inspect._summary import summary

__all__ = [
    "FusionReport",
    "InferenceModel",
    "InferenceReport",
    "ModelSummary",
    "SummaryRow",
    "count_params",
    "explain_fusion",
    "export_model",
    "export_onnx",
    "flops",
    "fuse_conv_bn",
    "optimize_for_inference",
    "summary",
    "to_channels_last",
]
