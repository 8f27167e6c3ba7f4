"""Layer registries: activations, norms, pooling, dropout and conv, by name.

Blocks take ``act_layer``, ``norm_layer``, ``pool_layer`` (and so on) as a
registered name, a callable returning a module, or ``None``;
:func:`resolve_layer` turns any of those into a factory. Add your own names
with :func:`register_layer`.
"""

from blockzoo.layers._factories import (
    LayerKind,
    LayerSpec,
    Placement,
    build_layer,
    list_layers,
    register_layer,
    resolve_layer,
)
from blockzoo.layers._modules import ChannelLayerNorm, GlobalPool, InstanceNorm2d, InstanceNorm3d, keep_channels_last

__all__ = [
    "ChannelLayerNorm",
    "GlobalPool",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerKind",
    "LayerSpec",
    "Placement",
    "build_layer",
    "keep_channels_last",
    "list_layers",
    "register_layer",
    "resolve_layer",
]
