"""The :class:`Block` base class."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from blockzoo.blocks._layout import layout, layout_error, tokens_error
from blockzoo.errors import InputError
from blockzoo.init import default_init_
from blockzoo.roles import Role, param_roles
from blockzoo.shapes import infer_shape_meta

__all__ = ["Block", "ChannelsFirstBlock"]


class _MissingStage:
    """Stands in ``Block._stages`` for a sub-layer that is not there."""

    def __init__(self, block: str, name: str) -> None:
        self.block, self.name = block, name

    def __call__(self, x: Tensor) -> Tensor:
        raise AttributeError(
            f"{self.block} has no {self.name!r} sub-layer; assign a module to it (nn.Identity() to disable it)"
        )


class Block(nn.Module):
    """Base class of every blockzoo block; subclass it for your own.

    A block adds to :class:`torch.nn.Module`: a static :meth:`output_shape`,
    cheap input checks that raise :class:`~blockzoo.InputError`, the roles of its
    parameters (:meth:`param_roles`), and :meth:`reset_parameters`.
    :func:`blockzoo.testing.check_block` verifies the whole contract on any
    subclass.

    Example:
        >>> import torch
        >>> import blockzoo
        >>> class Scale(blockzoo.Block):
        ...     def __init__(self, channels: int, *, device=None, dtype=None) -> None:
        ...         super().__init__()
        ...         self.gamma = torch.nn.Parameter(torch.ones(channels, 1, 1, device=device, dtype=dtype))
        ...     def own_param_roles(self):
        ...         return {"gamma": blockzoo.Role.SCALE}
        ...     def reset_parameters(self) -> None:
        ...         torch.nn.init.ones_(self.gamma)
        ...     def forward(self, x: torch.Tensor) -> torch.Tensor:
        ...         return x * self.gamma
        >>> block = Scale(4)
        >>> block.param_roles()
        {'gamma': <Role.SCALE: 'scale'>}
        >>> block.output_shape((2, 4, 8, 8))
        torch.Size([2, 4, 8, 8])
    """

    #: The dimension of the channels (features), 1 for channels-first maps and
    #: -1 for feature-last inputs such as an MLP's. :func:`~blockzoo.testing.check_block`
    #: checks that channels-first blocks keep channels_last memory.
    channel_dim: ClassVar[int] = 1

    # Children that ``forward`` runs in order (see ``_set_stages``); ``_stages``
    # holds those that are not ``nn.Identity``.
    _stage_names: tuple[str, ...] = ()
    _stages: tuple[Callable[[Tensor], Tensor], ...] = ()
    # Other children whose replacement calls ``_refresh_stages``: a subclass that keeps
    # them in its instance dictionary (as ``_stages``, away from ``nn.Module.__getattr__``)
    # names them here and extends ``_refresh_stages``.
    _watched_names: ClassVar[tuple[str, ...]] = ()

    def _set_stages(self, *names: str) -> None:
        """Declare the children that :meth:`_run_stages` calls, in order.

        Disabled slots hold ``nn.Identity`` so that ``print(block)`` and the
        state-dict keys stay stable, but calling an identity costs a module call
        (about 1.5 us on a 2-core CPU, several percent of a small block's
        forward), so ``_run_stages`` skips them. The list is rebuilt whenever a
        stage is replaced through attribute assignment (``block.act = nn.GELU()``),
        ``add_module`` or ``del``; a module written straight into ``_modules``
        (as ``torch.ao.quantization``'s eager-mode ``convert`` does) is not seen.
        """
        self.__dict__["_stage_names"] = names
        self._refresh_stages()

    def _refresh_stages(self) -> None:
        stages: list[Callable[[Tensor], Tensor]] = []
        for name in self._stage_names:
            module = getattr(self, name, None)
            if not isinstance(module, nn.Module):  # not assigned yet, or deleted: fail loudly if forward runs
                stages.append(_MissingStage(type(self).__name__, name))
            elif type(module) is not nn.Identity:
                stages.append(module)
        self.__dict__["_stages"] = tuple(stages)

    def __setattr__(self, name: str, value: Tensor | nn.Module) -> None:
        super().__setattr__(name, value)
        if name in self._stage_names or name in self._watched_names:
            self._refresh_stages()

    def add_module(self, name: str, module: nn.Module | None) -> None:
        """Register a child; replacing a stage this way (as ``SyncBatchNorm.convert_sync_batchnorm`` does) is followed too."""
        super().add_module(name, module)
        if name in self._stage_names or name in self._watched_names:
            self._refresh_stages()

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        if name in self._stage_names or name in self._watched_names:
            self._refresh_stages()

    def _run_stages(self, x: Tensor) -> Tensor:
        for stage in self._stages:
            x = stage(x)
        return x

    def modules_run_inline(self) -> dict[nn.Module, nn.Module]:
        """Sub-modules that ``forward`` runs as their parts, without calling them.

        Their own hooks do not fire; each is mapped to the layer whose output
        is theirs, where a hook sees the same tensor (as
        :func:`~blockzoo.regularization.attach_activity_penalty` does). Empty
        here; blockzoo's residual blocks run their plain conv-norm-act units
        inline.
        """
        return {}

    def own_param_roles(self) -> Mapping[str, Role]:
        """Roles of the parameters registered on this block itself (not on children).

        Override it to declare a role that cannot be inferred, such as
        :attr:`Role.SCALE` for a learned per-channel scale. Undeclared own
        parameters are :attr:`Role.OTHER`.
        """
        return {}

    def param_roles(self) -> dict[str, Role]:
        """The role of every parameter of this block (see :func:`blockzoo.param_roles`)."""
        return param_roles(self)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        """The output shape for an input of ``input_shape``, computed without data.

        The base class runs a forward pass on the meta device; blockzoo's own
        blocks override it with a static computation that also validates the
        input layout.
        """
        return infer_shape_meta(self, input_shape)

    def reset_parameters(self) -> None:
        """Re-initialise the block's sub-layers, in place, with the activation-aware defaults.

        Each conv and linear weight gets the initializer that suits the
        activation after it (see :func:`blockzoo.init.activation_initializer`)
        and its bias zero; norm layers and any sub-module that owns parameters
        reset themselves. Blocks that create layers call it at the end of
        their constructor. Override it for parameters the block owns itself.
        """
        default_init_(self)


class ChannelsFirstBlock(Block):
    """A block whose input is a channels-first map ``[N, C, *spatial]``.

    Subclasses set ``in_channels`` and ``spatial_dims`` and call
    ``self._check(x)`` at the top of ``forward``.

    Example:
        >>> import blockzoo
        >>> isinstance(blockzoo.ConvNormAct(3, 8), blockzoo.blocks.ChannelsFirstBlock)
        True
    """

    in_channels: int
    spatial_dims: int

    def _check(self, x: Tensor) -> None:
        # A handful of integer comparisons: cheap in eager mode, guards under compile.
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels or not x.is_floating_point():
            raise self._layout_error(x.shape, x.dtype)

    def _check_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if len(shape) != self.spatial_dims + 2 or shape[1] != self.in_channels:
            raise self._layout_error(shape, None)
        return shape

    def _layout_error(self, shape: Sequence[int], dtype: torch.dtype | None, hint: str | None = None) -> InputError:
        return layout_error(
            type(self).__name__,
            shape,
            dtype,
            expected=layout(self.in_channels, self.spatial_dims),
            channels=self.in_channels,
            rank=self.spatial_dims + 2,
            hint=hint,
        )


class TokenBlock(Block):
    """A block on token sequences ``[N, L, dim]``: checks its input's rank and width."""

    channel_dim = -1
    dim: int

    def _check(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.dim or not x.is_floating_point():
            raise tokens_error(type(self).__name__, x.shape, x.dtype, self.dim)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        shape = tuple(input_shape)
        if len(shape) != 3 or shape[-1] != self.dim:
            raise tokens_error(type(self).__name__, shape, None, self.dim)
        return torch.Size(shape)


class ChannelsLastMapBlock(Block):
    """A block on maps with the channels last, ``[N, H, W, dim]`` (Swin's): checks its input's rank and width."""

    channel_dim = -1
    dim: int

    def _layout_error(self, shape: Sequence[int], dtype: torch.dtype | None) -> InputError:
        hint = None
        floating = dtype is None or dtype.is_floating_point
        if floating and len(shape) == 4 and shape[1] == self.dim and shape[-1] != self.dim:
            hint = (
                "the input looks channels-first [N, C, H, W]; this block takes the channels last [N, H, W, C]: "
                "x.permute(0, 2, 3, 1)."
            )
        elif floating and len(shape) == 3 and shape[-1] == self.dim:
            hint = "the input looks like tokens [N, L, C]; this block takes the grid: x.view(N, H, W, C)."
        return layout_error(
            type(self).__name__,
            shape,
            dtype,
            expected=f"[N, H, W, {self.dim}]",
            channels=self.dim,
            rank=4,
            channel_dim=-1,
            hint=hint,
        )

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[-1] != self.dim or not x.is_floating_point():
            raise self._layout_error(x.shape, x.dtype)

    def _check_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if len(shape) != 4 or shape[-1] != self.dim:
            raise self._layout_error(shape, None)
        return shape

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        return torch.Size(self._check_shape(input_shape))
