"""Fully connected blocks: the MLP and the classifier head."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from blockzoo._checks import (
    check_int,
    check_number,
    check_positive_int,
    check_probability,
    check_spatial_dims,
)
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import Block
from blockzoo.blocks._layout import features_hint, head_hint, layout, layout_error
from blockzoo.errors import InputError
from blockzoo.init import default_init_
from blockzoo.layers import LayerSpec, Placement, build_layer
from blockzoo.shapes import infer_shape

__all__ = ["MLP", "ClassifierHead"]


def mlp_hidden_features(width_name: str, width: int, mlp_ratio: float) -> int:
    """The hidden width of a block's MLP, ``round(width * mlp_ratio)``, refused when it is not at least one.

    Example:
        >>> from blockzoo.blocks._mlp import mlp_hidden_features
        >>> mlp_hidden_features("dim", 64, 4.0)
        256
    """
    hidden = round(width * check_number("mlp_ratio", mlp_ratio, low=0, low_open=True))
    if hidden < 1:
        raise ValueError(
            f"mlp_ratio must give at least one hidden feature ({width_name} * mlp_ratio >= 0.5, "
            f"{width_name}={width}). Received: mlp_ratio={mlp_ratio!r}"
        )
    return hidden


def _check_features(name: str, value: Sequence[int]) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of positive ints such as (256, 128). Received: {name}={value!r}")
    return tuple(check_positive_int(name, v) for v in value)


class _LinearNormAct(Block):
    """One hidden layer of an MLP: linear -> norm -> act -> dropout."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        norm_layer: LayerSpec,
        act_layer: LayerSpec,
        drop_rate: float,
        device: DeviceLike,
        dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        self._set_stages("fc", "norm", "act", "drop")
        self.fc = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.norm = build_layer("norm", norm_layer, out_features, spatial_dims=0, device=device, dtype=dtype)
        self.act = build_layer("act", act_layer, spatial_dims=0, device=device, dtype=dtype, inplace=True)
        self.drop = build_layer("dropout", "dropout" if drop_rate else None, drop_rate)
        self.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self._run_stages(x)


class MLP(Block):
    """A multilayer perceptron: hidden layers of linear -> norm -> act -> dropout, then a linear output.

    Args:
        in_features: Size of each input's last dimension.
        hidden_features: Width of each hidden layer, in order (may be empty).
        out_features: Width of the final linear layer, which has no norm,
            activation or dropout; ``None`` to end on the last hidden layer.
        bias: Whether the linear layers have biases.
        norm_layer: A registered norm name, a callable
            ``(num_features, device=, dtype=) -> Module``, or ``None``.
        act_layer: A registered activation name, a callable, or ``None``.
        drop_rate: Dropout probability after each hidden activation, in ``[0, 1)``.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, *, in_features]`` (``[N, in_features]`` with a batch or
          group norm).
        - Output: ``[N, *, out_features]``, or the last hidden width when
          ``out_features`` is ``None``.

    Raises:
        ValueError: a width is not positive, or there is no layer at all.

    Example:
        >>> import torch
        >>> from blockzoo import MLP
        >>> mlp = MLP(784, (256, 128), 10, drop_rate=0.2)
        >>> mlp(torch.randn(32, 784)).shape
        torch.Size([32, 10])
        >>> [name for name, _ in mlp.named_parameters()][:3]
        ['layers.0.fc.weight', 'layers.0.fc.bias', 'layers.1.fc.weight']
    """

    channel_dim = -1

    def __init__(
        self,
        in_features: int,
        hidden_features: Sequence[int],
        out_features: int | None = None,
        *,
        bias: bool = True,
        norm_layer: LayerSpec = None,
        act_layer: LayerSpec = "relu",
        drop_rate: float = 0.0,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        hidden = _check_features("hidden_features", hidden_features)
        if out_features is not None:
            check_positive_int("out_features", out_features)
        elif not hidden:
            raise ValueError(
                "An MLP needs at least one layer: give hidden_features or out_features. "
                "Received: hidden_features=(), out_features=None"
            )
        check_probability("drop_rate", drop_rate)
        self.out_features = out_features if out_features is not None else hidden[-1]
        widths = (in_features, *hidden)
        self.layers = nn.Sequential(
            *(
                _LinearNormAct(
                    a,
                    b,
                    bias=bias,
                    norm_layer=norm_layer,
                    act_layer=act_layer,
                    drop_rate=drop_rate,
                    device=device,
                    dtype=dtype,
                )
                for a, b in itertools.pairwise(widths)
            )
        )
        self._set_stages("out")
        self.out = (
            nn.Identity()
            if out_features is None
            else nn.Linear(widths[-1], out_features, bias=bias, device=device, dtype=dtype)
        )
        default_init_(self.out)  # the hidden layers initialised themselves
        # Batch and group norms read dimension 1 as channels: only [N, features] fits them.
        self._flat_only = bool(hidden) and not isinstance(self.layers[0].norm, (nn.Identity, nn.LayerNorm))

    def forward(self, x: Tensor) -> Tensor:
        rank = x.dim()
        if rank < 2 or x.shape[-1] != self.in_features or not x.is_floating_point() or (self._flat_only and rank != 2):
            raise self._input_error(x.shape, x.dtype)
        if rank == 2 or not torch.is_grad_enabled():
            return self._forward_layers(x)
        # A linear layer's output on a 3-D input is a view of its 2-D product, and an
        # in-place activation on a view that autograd records makes it copy the view back
        # slice by slice; on the 2-D product it is free. So the layers run on
        # [N * ..., in_features] here (without autograd the reshapes would only cost time).
        lead = x.shape[:-1]
        return self._forward_layers(x.reshape(-1, self.in_features)).view(*lead, self.out_features)

    def _forward_layers(self, x: Tensor) -> Tensor:
        for layer in self.layers:  # iterating skips nn.Sequential's own call
            x = layer(x)
        for stage in self._stages:  # self._run_stages(x), without one more call per forward
            x = stage(x)
        return x

    def _input_error(self, shape: Sequence[int], dtype: torch.dtype | None) -> InputError:
        expected = f"[N, {self.in_features}]" if self._flat_only else f"[N, *, {self.in_features}]"
        rank = 2 if self._flat_only else max(2, len(shape))
        floating = dtype is None or dtype.is_floating_point
        hint = features_hint(shape, self.in_features, flat_only=self._flat_only) if floating else None
        return layout_error(
            type(self).__name__,
            shape,
            dtype,
            expected=expected,
            channels=self.in_features,
            rank=rank,
            channel_dim=-1,
            hint=hint,
        )

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        shape = tuple(input_shape)
        if len(shape) < 2 or shape[-1] != self.in_features or (self._flat_only and len(shape) != 2):
            raise self._input_error(shape, None)
        return torch.Size((*shape[:-1], self.out_features))


class ClassifierHead(Block):
    """Pool, flatten, optional hidden layers, dropout, and the final linear classifier.

    ``pool_layer=None`` flattens the whole map instead of pooling it, as the
    course's CNN does (``in_features`` is then ``C * H * W``). ``log_probs=True``
    ends in ``LogSoftmax``, for training with :class:`torch.nn.NLLLoss`.

    Args:
        in_features: Channels of the incoming map (or its flattened size when
            ``pool_layer`` is ``None``).
        num_classes: Classes to predict; 0 for no classifier (the head then
            returns pooled features).
        pool_layer: A registered pooling name, a callable ``() -> Module``, or
            ``None`` to flatten.
        drop_rate: Dropout probability before the classifier (and after each
            hidden layer, as in VGG's classifier), in ``[0, 1)``.
        norm_layer: A norm of the pooled features, before the hidden layers
            and the classifier (ConvNeXt's head has a layer norm there), or
            ``None``; built for feature vectors (``spatial_dims=0``).
        hidden_features: Widths of hidden layers between pooling and classifier.
        act_layer: Activation of the hidden layers.
        log_probs: End in ``LogSoftmax(dim=1)``.
        spatial_dims: 1, 2 or 3, for the pooling.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_features, *spatial]``, or ``[N, *]`` with
          ``prod(*) == in_features`` when ``pool_layer`` is ``None``.
        - Output: ``[N, num_classes]``.

    Example:
        >>> import torch
        >>> from blockzoo import ClassifierHead
        >>> head = ClassifierHead(64, 10, drop_rate=0.5)
        >>> head(torch.randn(8, 64, 7, 7)).shape
        torch.Size([8, 10])
        >>> head.reset(3)
        >>> head.fc
        Linear(in_features=64, out_features=3, bias=True)
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        pool_layer: LayerSpec = "adaptive_avg",
        drop_rate: float = 0.0,
        norm_layer: LayerSpec = None,
        hidden_features: Sequence[int] = (),
        act_layer: LayerSpec = "relu",
        log_probs: bool = False,
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self._check_num_classes(num_classes)
        hidden = _check_features("hidden_features", hidden_features)
        check_probability("drop_rate", drop_rate)
        self._flatten_input = pool_layer is None
        placement: Placement = {"device": device, "dtype": dtype}
        self._set_stages("pool", "flatten", "norm", "hidden", "drop", "fc", "log_softmax")
        self.pool = build_layer("pool", pool_layer, spatial_dims=spatial_dims, **placement)
        self.flatten = nn.Flatten(1)
        self.norm = build_layer("norm", norm_layer, in_features, spatial_dims=0, **placement)
        # Hidden layers end in their own dropout, which is then the one before the classifier.
        self.hidden = (
            MLP(in_features, hidden, act_layer=act_layer, drop_rate=drop_rate, **placement) if hidden else nn.Identity()
        )
        self.num_features = hidden[-1] if hidden else in_features
        self.drop = build_layer("dropout", "dropout" if drop_rate and not hidden else None, drop_rate)
        self.num_classes = num_classes
        self.fc = self._make_fc(num_classes, **placement)
        self.log_softmax = nn.LogSoftmax(dim=1) if log_probs else nn.Identity()

    @staticmethod
    def _check_num_classes(num_classes: int) -> None:
        check_int("num_classes", num_classes, low=0)

    def _make_fc(self, num_classes: int, *, device: DeviceLike, dtype: torch.dtype | None) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        fc = nn.Linear(self.num_features, num_classes, device=device, dtype=dtype)
        default_init_(fc)  # no activation after it: the linear default
        return fc

    def reset(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` classes (0 for none).

        The new layer is created on the device and in the dtype of the old one.
        """
        self._check_num_classes(num_classes)
        ref = next(self.parameters(), None)
        self.fc = self._make_fc(
            num_classes,
            device=ref.device if ref is not None else None,
            dtype=ref.dtype if ref is not None else None,
        )
        self.num_classes = num_classes

    def _expected(self) -> str:
        return (
            f"[N, *] with {self.in_features} elements per sample"
            if self._flatten_input
            else layout(self.in_features, self.spatial_dims)
        )

    def _fits(self, shape: Sequence[int]) -> bool:
        if self._flatten_input:
            return len(shape) >= 2 and math.prod(shape[1:]) == self.in_features
        return len(shape) == self.spatial_dims + 2 and shape[1] == self.in_features

    def forward(self, x: Tensor) -> Tensor:
        if not x.is_floating_point() or not self._fits(x.shape):
            raise self._input_error(x.shape, x.dtype)
        return self._run_stages(x)

    def pre_logits(self, x: Tensor) -> Tensor:
        """The features the classifier reads: pooled, flattened, through the hidden layers and dropout.

        Example:
            >>> import torch
            >>> from blockzoo import ClassifierHead
            >>> ClassifierHead(64, 10, hidden_features=(32,)).pre_logits(torch.randn(2, 64, 7, 7)).shape
            torch.Size([2, 32])
        """
        if not x.is_floating_point() or not self._fits(x.shape):
            raise self._input_error(x.shape, x.dtype)
        out: Tensor = self.drop(self.hidden(self.norm(self.flatten(self.pool(x)))))
        return out

    def _input_error(self, shape: Sequence[int], dtype: torch.dtype | None) -> InputError:
        rank = max(2, len(shape)) if self._flatten_input else self.spatial_dims + 2
        floating = dtype is None or dtype.is_floating_point
        hint = (
            head_hint(shape, self.in_features, flattens=self._flatten_input, spatial_dims=self.spatial_dims)
            if floating and not self._fits(shape)
            else None
        )
        return layout_error(
            type(self).__name__,
            shape,
            dtype,
            expected=self._expected(),
            channels=self.in_features,
            rank=rank,
            hint=hint,
        )

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        shape = tuple(input_shape)
        if not self._fits(shape):
            raise self._input_error(shape, None)
        pooled = infer_shape(self.flatten, infer_shape(self.pool, shape))
        return torch.Size((pooled[0], self.num_classes or self.num_features))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"
