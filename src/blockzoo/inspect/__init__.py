"""Inspect and deploy models: conv-BN fusion, channels_last, ``torch.export`` and ONNX export."""

from blockzoo.inspect._export import export_model, export_onnx
from blockzoo.inspect._fuse import FusionReport, explain_fusion, fuse_conv_bn

__all__ = [
    "FusionReport",
    "explain_fusion",
    "export_model",
    "export_onnx",
    "fuse_conv_bn",
]
