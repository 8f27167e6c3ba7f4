"""DenseNet's blocks (Huang et al. 2017): the dense layer, the dense block and the transition."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from blockzoo._checks import check_bool, check_positive_int, check_probability, check_spatial_dims
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import ChannelsFirstBlock
from blockzoo.layers import LayerSpec, Placement, build_layer, keep_channels_last
from blockzoo.shapes import infer_shape

__all__ = ["DenseBlock", "DenseLayer", "Transition"]


def _pre_activation(
    block: nn.Module,
    suffix: str,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    norm_layer: LayerSpec,
    act_layer: LayerSpec,
    act_inplace: bool,
    nd: int,
    placement: Placement,
) -> None:
    """Give ``block`` the children ``norm{suffix}``, ``act{suffix}`` and ``conv{suffix}`` (norm -> act -> conv)."""
    setattr(block, f"norm{suffix}", build_layer("norm", norm_layer, in_channels, spatial_dims=nd, **placement))
    setattr(block, f"act{suffix}", build_layer("act", act_layer, spatial_dims=nd, inplace=act_inplace, **placement))
    conv = build_layer(
        "conv",
        "conv",
        in_channels,
        out_channels,
        kernel_size,
        padding=kernel_size // 2,
        bias=norm_layer is None,
        spatial_dims=nd,
        **placement,
    )
    setattr(block, f"conv{suffix}", conv)


class DenseLayer(ChannelsFirstBlock):
    """One DenseNet-BC layer: ``norm -> act -> 1x1 conv -> norm -> act -> 3x3 conv``, giving ``growth_rate`` maps.

    Pre-activation, as in the paper: each conv reads normalised, activated
    features. The 1x1 bottleneck widens to ``bn_size * growth_rate``. The
    layer takes one map or the list of all the maps before it in its dense
    block; a list is concatenated inside the layer, so that with
    ``memory_efficient=True`` the concatenation, the first norm and the
    bottleneck conv run under :func:`torch.utils.checkpoint.checkpoint`
    during training: their outputs are recomputed in the backward pass
    instead of kept, which takes the memory of a dense block's training step
    from quadratic to linear in its depth for about 15-20% more time
    (Pleiss et al. 2017; torchvision's ``memory_efficient``). The
    recomputation leaves the first norm's running statistics as the forward
    pass left them, so a training step gives the same state as without the
    option, eager or compiled. It changes nothing in eval mode or without
    gradients.

    The children are flat (``norm1``, ``act1``, ``conv1``, ``norm2``,
    ``act2``, ``conv2``, ``drop``), in the order ``forward`` runs them:
    :func:`~blockzoo.fuse_conv_bn` folds ``norm2`` into ``conv1``; ``norm1``
    normalises a concatenation that no single conv produces, and stays.

    Args:
        in_channels: Channels of the input (the sum over a list of maps).
        growth_rate: Output channels (the paper's ``k``).
        bn_size: Width of the bottleneck, in multiples of ``growth_rate``.
        drop_rate: Dropout probability on the output, in ``[0, 1)``.
        memory_efficient: Checkpoint the concatenation and bottleneck in training.
        norm_layer: As in :class:`ConvNormAct` (without a norm the convs have a bias).
        act_layer: As in :class:`ConvNormAct`.
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``, or a list of ``[N, C_i, *spatial]``
          with ``sum(C_i) == in_channels``.
        - Output: ``[N, growth_rate, *spatial]``.

    Example:
        >>> import torch
        >>> from blockzoo import DenseLayer
        >>> layer = DenseLayer(64, growth_rate=32)
        >>> layer.conv1, layer.conv2
        (Conv2d(64, 128, kernel_size=(1, 1), stride=(1, 1), bias=False), Conv2d(128, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False))
        >>> layer([torch.randn(2, 40, 8, 8), torch.randn(2, 24, 8, 8)]).shape
        torch.Size([2, 32, 8, 8])
    """

    norm1: nn.Module
    act1: nn.Module
    conv1: nn.Module
    norm2: nn.Module
    act2: nn.Module
    conv2: nn.Module

    def __init__(
        self,
        in_channels: int,
        *,
        growth_rate: int = 32,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu",
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.spatial_dims = nd = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.growth_rate = check_positive_int("growth_rate", growth_rate)
        self.bn_size = check_positive_int("bn_size", bn_size)
        self.drop_rate = check_probability("drop_rate", drop_rate)
        self.memory_efficient = check_bool("memory_efficient", memory_efficient)
        placement: Placement = {"device": device, "dtype": dtype}
        width = bn_size * growth_rate
        common = {"norm_layer": norm_layer, "act_layer": act_layer, "nd": nd, "placement": placement}
        # the first activation overwrites its input only when a norm made it (never the caller's tensor)
        _pre_activation(self, "1", in_channels, width, 1, act_inplace=norm_layer is not None, **common)  # type: ignore[arg-type]
        _pre_activation(self, "2", width, growth_rate, 3, act_inplace=True, **common)  # type: ignore[arg-type]
        self.drop = build_layer("dropout", "dropout" if drop_rate else None, drop_rate)
        # declared for the tools that read a block's run order (fuse_conv_bn); forward runs them explicitly
        self._set_stages("norm1", "act1", "conv1", "norm2", "act2", "conv2", "drop")
        self.reset_parameters()

    def _bottleneck(self, *inputs: Tensor) -> Tensor:
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        out: Tensor = self.conv1(self.act1(self.norm1(x)))
        return out

    @contextlib.contextmanager
    def _buffers_kept(self) -> Iterator[None]:
        """Put the bottleneck's buffers back as they were on entry: a recomputation must not count a batch twice."""
        layers = (self.norm1, self.act1, self.conv1)
        saved = [(buffer, buffer.clone()) for layer in layers for buffer in layer.buffers()]
        try:
            yield
        finally:
            with torch.no_grad():
                for buffer, value in saved:
                    buffer.copy_(value)

    def _checkpointed_bottleneck(self, inputs: tuple[Tensor, ...]) -> Tensor:
        """The bottleneck under :func:`~torch.utils.checkpoint.checkpoint`: recomputed in the backward pass, not kept."""
        if torch.compiler.is_compiling():
            # Compiled, the recomputation is the partitioner's own and mutates no buffer (and dynamo takes
            # no context_fn of ours).
            out: Tensor = checkpoint(self._bottleneck, *inputs, use_reentrant=False)
            return out
        # Eager, the backward pass reruns the bottleneck in training mode, where a batch norm would update
        # its running statistics a second time: the recomputation's context puts the buffers back.
        out = checkpoint(self._bottleneck, *inputs, use_reentrant=False, context_fn=self._recompute_contexts)
        return out

    def _recompute_contexts(
        self,
    ) -> tuple[contextlib.AbstractContextManager[None], contextlib.AbstractContextManager[None]]:
        return contextlib.nullcontext(), self._buffers_kept()

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        inputs = (x,) if isinstance(x, Tensor) else tuple(x)
        self._check_inputs(inputs)
        if self.memory_efficient and torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
            out = self._checkpointed_bottleneck(inputs)
        else:
            out = self._bottleneck(*inputs)
        result: Tensor = self.drop(self.conv2(self.act2(self.norm2(out))))
        return keep_channels_last(inputs[0], result)  # torch's conv loses channels_last for one channel

    def _check_inputs(self, inputs: tuple[Tensor, ...]) -> None:
        if len(inputs) == 1:
            self._check(inputs[0])
            return
        ranks_ok = all(t.dim() == self.spatial_dims + 2 and t.is_floating_point() for t in inputs)
        if not inputs or not ranks_ok or sum(t.shape[1] for t in inputs) != self.in_channels:
            shapes = [list(t.shape) for t in inputs]
            first = inputs[0].shape if inputs else torch.Size()
            channels = sum(t.shape[1] for t in inputs if t.dim() > 1)
            raise self._layout_error(
                (*first[:1], channels, *first[2:]),  # the shape of their concatenation
                None,
                hint=f"a list of maps is concatenated along the channels; received the shapes {shapes}.",
            )

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, _, *spatial = self._check_shape(input_shape)
        return torch.Size((n, self.growth_rate, *spatial))

    def extra_repr(self) -> str:
        return "memory_efficient=True" if self.memory_efficient else ""


class DenseBlock(ChannelsFirstBlock):
    """A DenseNet dense block: each :class:`DenseLayer` reads the concatenation of the input and all earlier outputs.

    Args:
        in_channels: Channels of the input.
        num_layers: Dense layers in the block.
        growth_rate: Channels each layer adds.
        bn_size: As in :class:`DenseLayer`.
        drop_rate: As in :class:`DenseLayer`.
        memory_efficient: As in :class:`DenseLayer`.
        norm_layer: As in :class:`DenseLayer`.
        act_layer: As in :class:`DenseLayer`.
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, in_channels + num_layers * growth_rate, *spatial]``: the
          input, then each layer's output, concatenated.

    Example:
        >>> import torch
        >>> from blockzoo import DenseBlock
        >>> block = DenseBlock(64, 6, growth_rate=32)
        >>> block.out_channels, len(block.layers)
        (256, 6)
        >>> block(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 256, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        num_layers: int,
        *,
        growth_rate: int = 32,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu",
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        check_positive_int("num_layers", num_layers)
        check_positive_int("growth_rate", growth_rate)
        self.out_channels = in_channels + num_layers * growth_rate
        self.layers = nn.ModuleList(
            DenseLayer(
                in_channels + i * growth_rate,
                growth_rate=growth_rate,
                bn_size=bn_size,
                drop_rate=drop_rate,
                memory_efficient=memory_efficient,
                norm_layer=norm_layer,
                act_layer=act_layer,
                spatial_dims=spatial_dims,
                device=device,
                dtype=dtype,
            )
            for i in range(num_layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return keep_channels_last(x, torch.cat(features, dim=1))

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, _, *spatial = self._check_shape(input_shape)
        return torch.Size((n, self.out_channels, *spatial))


class Transition(ChannelsFirstBlock):
    """DenseNet's transition between dense blocks: ``norm -> act -> 1x1 conv -> 2x2 average pool``.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output (DenseNet-BC halves them).
        norm_layer: As in :class:`ConvNormAct`.
        act_layer: As in :class:`ConvNormAct`.
        pool_layer: A registered pooling name, a callable ``(pool_size) -> Module``,
            or ``None``.
        pool_size: Window and stride of the pooling.
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, out_channels, *floor(spatial / pool_size)]``.

    Example:
        >>> import torch
        >>> from blockzoo import Transition
        >>> transition = Transition(256, 128)
        >>> [name for name, _ in transition.named_children()]
        ['norm', 'act', 'conv', 'pool']
        >>> transition(torch.randn(2, 256, 8, 8)).shape
        torch.Size([2, 128, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu",
        pool_layer: LayerSpec = "avg",
        pool_size: int = 2,
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.spatial_dims = nd = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        check_positive_int("pool_size", pool_size)
        placement: Placement = {"device": device, "dtype": dtype}
        self._set_stages("norm", "act", "conv", "pool")
        _pre_activation(
            self,
            "",
            in_channels,
            out_channels,
            1,
            norm_layer=norm_layer,
            act_layer=act_layer,
            act_inplace=norm_layer is not None,
            nd=nd,
            placement=placement,
        )
        self.pool = build_layer("pool", pool_layer, pool_size, spatial_dims=nd, **placement)
        self.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self._run_stages(x)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, _, *spatial = self._check_shape(input_shape)
        return infer_shape(self.pool, (n, self.out_channels, *spatial))
