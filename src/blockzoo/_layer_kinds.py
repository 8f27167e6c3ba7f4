"""Kinds of ``torch.nn`` layers, as tuples of public classes for ``isinstance``.

torch groups these under private bases (``_ConvNd``, ``_NormBase``,
``_MaxPoolNd``); naming the public classes keeps blockzoo on torch's public API.
"""

from __future__ import annotations

from torch import nn

__all__ = ["CONV_LAYERS", "NORM_LAYERS", "WEIGHT_LAYERS", "WINDOW_POOLS", "WeightLayer"]

#: Convolutions and transposed convolutions (their lazy variants subclass them).
CONV_LAYERS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)

#: Layers with a ``weight`` that initializers and penalties treat as a kernel.
WEIGHT_LAYERS = (*CONV_LAYERS, nn.Linear)

#: One of :data:`WEIGHT_LAYERS`, as a type.
WeightLayer = (
    nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d | nn.Linear
)

#: Batch, instance, group, layer and RMS norms (and local response norm, which has no parameters).
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LazyBatchNorm1d,
    nn.LazyBatchNorm2d,
    nn.LazyBatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LazyInstanceNorm1d,
    nn.LazyInstanceNorm2d,
    nn.LazyInstanceNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
)

#: Pools with a window that must fit in the input.
WINDOW_POOLS: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
)
