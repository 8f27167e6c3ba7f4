"""Inspect and deploy models: conv-BN fusion, channels_last, ``torch.export`` and ONNX export."""

from blockzoo.inspect._export import export_model, export_onnx
from blockzoo.inspect._fuse import FusionReport, explain_fusion, fuse_conv_bn
from blockzoo.inspect._layout import to_channels_last
from blockzoo.inspect._optimize import InferenceModel, InferenceReport, optimize_for_inference

__all__ = [
    "FusionReport",
    "InferenceModel",
    "InferenceReport",
    "explain_fusion",
    "export_model",
    "export_onnx",
    "fuse_conv_bn",
    "optimize_for_inference",
    "to_channels_last",
]
