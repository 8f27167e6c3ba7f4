"""Residual blocks: a branch, a shortcut, stochastic depth, and the sum."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from blockzoo._checks import check_choice, check_number, check_positive_int, check_probability, check_spatial_dims
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import Block, ChannelsFirstBlock, _MissingStage
from blockzoo.blocks._conv import ConvNormAct, run_units, units_run_inline
from blockzoo.blocks._drop import DropPath
from blockzoo.blocks._se import SqueezeExcite
from blockzoo.blocks._shortcut import shortcut_for
from blockzoo.errors import InputError
from blockzoo.init._records import set_record
from blockzoo.layers import LayerSpec, Placement, build_layer, keep_channels_last
from blockzoo.roles import Role, param_roles
from blockzoo.shapes import infer_shape

__all__ = ["BasicBlock", "Bottleneck", "ResidualBlock"]


class ResidualBlock(Block):
    """``act(drop_path(branch(x)) + shortcut(x))``: any branch made residual.

    The parts are public children (``branch``, ``shortcut``, ``drop_path``,
    ``act``), so tools find them in any residual block:
    :meth:`zero_init_last_` starts the block as its shortcut, and stochastic
    depth sets ``drop_path``. :class:`BasicBlock`, :class:`Bottleneck` and
    :class:`InvertedResidual` are residual blocks with the classic branches.
    A block built with ``has_shortcut=False`` (a MobileNet block that changes
    the shape) is ``act(branch(x))``: tools that act on the shortcut
    (stochastic depth, :meth:`zero_init_last_`) leave it alone. An identity
    shortcut is a disabled slot: like a block's disabled stages, it is not
    called (its hooks do not fire), and the input is added as it is.

    Args:
        branch: The residual branch.
        shortcut: The shortcut; ``None`` for the identity.
        act_layer: Activation after the sum, or ``None``.
        drop_path_rate: Stochastic-depth probability of dropping the branch.
        has_shortcut: ``False`` for a block without the sum (then ``shortcut``
            must be ``None`` and ``drop_path_rate`` 0).
        device: Where the activation's tensors are created, if it has any.
        dtype: Their dtype.

    Shape:
        - Input: what ``branch`` takes.
        - Output: what ``branch`` returns; ``shortcut`` must return the same shape.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from blockzoo import ConvNormAct, ResidualBlock
        >>> block = ResidualBlock(nn.Sequential(ConvNormAct(8, 8), ConvNormAct(8, 8, act_layer=None)), act_layer="relu")
        >>> block(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
        >>> _ = block.zero_init_last_().eval()
        >>> x = torch.randn(2, 8, 5, 5)
        >>> torch.equal(block(x), torch.relu(x))
        True
    """

    def __init__(
        self,
        branch: nn.Module,
        shortcut: nn.Module | None = None,
        *,
        act_layer: LayerSpec = None,
        drop_path_rate: float = 0.0,
        has_shortcut: bool = True,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        rate = check_probability("drop_path_rate", drop_path_rate)
        if not isinstance(has_shortcut, bool):
            raise TypeError(f"has_shortcut must be True or False. Received: has_shortcut={has_shortcut!r}")
        if not has_shortcut and (shortcut is not None or rate != 0):
            raise ValueError(
                "has_shortcut=False takes shortcut=None and drop_path_rate=0 (dropping the branch would drop the "
                f"block's only path). Received: shortcut={shortcut!r}, drop_path_rate={drop_path_rate!r}"
            )
        if not isinstance(branch, nn.Module):
            raise TypeError(f"branch must be an nn.Module. Received: branch={type(branch).__name__}")
        if shortcut is not None and not isinstance(shortcut, nn.Module):
            raise TypeError(f"shortcut must be an nn.Module or None. Received: shortcut={type(shortcut).__name__}")
        self.branch = branch
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.drop_path = DropPath(rate)
        self.has_shortcut = has_shortcut
        self._set_stages("act")
        self.act = build_layer("act", act_layer, device=device, dtype=dtype, inplace=True)  # on the fresh sum

    #: Add the shortcut into the branch's output in place (saving one block-sized
    #: tensor, as torchvision does); only for branches known to return a new tensor,
    #: never the block's input. A branch replaced after construction is added out of
    #: place: it may return its input, a view of it, or a tensor autograd saved.
    _add_in_place: bool = False

    # branch, shortcut and drop_path are kept in the instance dictionary as ``_parts`` (see _refresh_stages)
    _watched_names = ("branch", "shortcut", "drop_path")
    _parts: tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor] | None, Callable[[Tensor], Tensor]]

    def _refresh_stages(self) -> None:
        """Also keep ``(branch, shortcut, drop_path)`` as ``_parts``, the shortcut ``None`` when it is an identity.

        ``forward`` reads them there: through ``nn.Module.__getattr__`` the
        three cost about a module call more per forward. Like ``_stages``,
        they are rebuilt whenever one is replaced through attribute
        assignment, ``add_module`` or ``del``; a child written straight into
        ``_modules`` (as ``torch.ao.quantization``'s eager-mode ``convert``
        does) is not seen by either.
        """
        super()._refresh_stages()
        name = type(self).__name__
        found = [getattr(self, n, None) for n in self._watched_names]
        branch, shortcut, drop_path = (
            m if isinstance(m, nn.Module) else _MissingStage(name, n)
            for m, n in zip(found, self._watched_names, strict=True)
        )
        previous = self.__dict__.get("_parts")
        built = "_stage_names" in self.__dict__  # the constructor has declared its stages: it is done with the parts
        if built and previous is not None and branch is not previous[0]:
            self.__dict__["_add_in_place"] = False  # see _add_in_place
        self.__dict__["_parts"] = (branch, None if type(shortcut) is nn.Identity else shortcut, drop_path)

    def forward(self, x: Tensor) -> Tensor:
        out = self.run_branch(x)
        _, shortcut, drop_path = self._parts
        out = drop_path(out)
        if self.has_shortcut:
            short = x if shortcut is None else shortcut(x)
            if self._add_in_place:
                out += short
            else:
                out = out + short
        for stage in self._stages:  # self._run_stages(out), without one more call per forward
            out = stage(out)
        return out

    def run_branch(self, x: Tensor) -> Tensor:
        """The branch's output for ``x``; here ``self.branch(x)``."""
        return self._parts[0](x)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        out = infer_shape(self.branch, input_shape)
        if not self.has_shortcut:
            return out
        short = infer_shape(self.shortcut, input_shape)
        if out != short:
            raise InputError(
                f"{type(self).__name__}: the branch gives {list(out)} but the shortcut {list(short)} for input "
                f"{list(input_shape)}; they must match to be added."
            )
        return out

    #: The roles whose last parameter :meth:`zero_init_last_` zeroes: the first of them the branch has. By
    #: default a norm's scale, else a kernel and its bias. A branch that ends after its last norm (ConvNeXt's,
    #: a pre-norm transformer half's) lists ``Role.SCALE`` (a layer scale) and ``Role.WEIGHT`` instead.
    zero_init_roles: tuple[Role, ...] = (Role.NORM, Role.WEIGHT)

    @torch.no_grad()
    def zero_init_last_(self) -> ResidualBlock:
        """Zero the last layer of the branch that silences it, so the block starts as its shortcut.

        Goyal et al. 2017: each residual block then outputs ``act(shortcut(x))``
        at initialisation. The layer is found by the roles of the branch's
        parameters, in the order of :attr:`zero_init_roles`: by default the
        last norm's scale (``weight``), else the last kernel and its bias. A
        block without a shortcut is left as it is: zeroing it would zero its
        output. Returns the block.
        """
        if not self.has_shortcut:
            return self
        roles = param_roles(self.branch)
        for wanted in self.zero_init_roles:
            # a norm's shift has the role norm too; its scale is what silences it
            last = [n for n, r in roles.items() if r is wanted and n.rpartition(".")[2] != "bias"]
            if last:
                owner_name, _, name = last[-1].rpartition(".")
                owner = self.branch.get_submodule(owner_name)
                for attr in (name, "bias") if wanted is Role.WEIGHT else (name,):
                    tensor = getattr(owner, attr, None)
                    if isinstance(tensor, nn.Parameter):
                        nn.init.zeros_(tensor)
                        set_record(owner, attr, "zeros (zero_init_last_)", 0.0)
                return self
        wanted_roles = " or ".join(role.value for role in self.zero_init_roles)
        raise ValueError(
            f"zero_init_last_ needs a parameter of role {wanted_roles} in {type(self).__name__}.branch to zero. "
            f"Received: branch={type(self.branch).__name__}"
        )


class _ChannelsResidual(ResidualBlock, ChannelsFirstBlock):
    """A residual block on channels-first maps: checks its input like every conv block."""

    _add_in_place = True  # the branches below end in a conv-norm, always a new tensor
    #: Whether the branch narrows to one channel, where torch's convolutions lose
    #: channels_last memory (a one-channel map is also contiguous); the output is
    #: then put back in the input's memory format.
    _narrow = False

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        out = super().forward(x)
        return keep_channels_last(x, out) if self._narrow else out

    def run_branch(self, x: Tensor) -> Tensor:
        """The branch; a plain ``nn.Sequential`` one through :func:`~blockzoo.blocks._conv.run_units`.

        As in torchvision's blocks, which call ``conv1``, ``bn1``, ``relu`` in
        their own forward, each plain :class:`ConvNormAct` unit runs as its
        ``conv``, ``norm`` and ``act``: calling the unit would keep its input
        alive until its norm and activation return (one activation map more
        at the peak of an eval forward). Any other unit (a subclass with its
        own ``forward``, a squeeze-excite, your own module), and a branch that
        is not a plain ``nn.Sequential``, is called as a module.
        """
        branch = self._parts[0]
        return run_units(branch, x) if type(branch) is nn.Sequential else branch(x)

    def modules_run_inline(self) -> dict[nn.Module, nn.Module]:
        return units_run_inline(self.branch) if type(self.branch) is nn.Sequential else {}

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        return super().output_shape(self._check_shape(input_shape))


class BasicBlock(_ChannelsResidual):
    """The ResNet basic block (He et al. 2016): two 3x3 conv-norm layers and a shortcut, then the activation.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        stride: Stride of the first conv (and of the shortcut).
        shortcut: ``"conv"`` (a 1x1 conv-norm projection, option B) or
            ``"pad"`` (subsample and zero-pad, option A, as in the CIFAR
            ResNets), used when the shape changes.
        norm_layer: As in :class:`ConvNormAct`.
        act_layer: As in :class:`ConvNormAct`; also after the sum.
        drop_path_rate: Stochastic-depth probability.
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, out_channels, *ceil(spatial / stride)]``.

    Example:
        >>> import torch
        >>> from blockzoo import BasicBlock
        >>> block = BasicBlock(16, 32, stride=2)
        >>> block(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 32, 4, 4])
        >>> [name for name, _ in block.named_children()]
        ['branch', 'shortcut', 'drop_path', 'act']
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        shortcut: str = "conv",
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu",
        drop_path_rate: float = 0.0,
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        nd = check_spatial_dims(spatial_dims)
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("stride", stride)
        check_choice("shortcut", shortcut, ("conv", "pad"))
        placement: Placement = {"device": device, "dtype": dtype}
        common = {"norm_layer": norm_layer, "spatial_dims": nd, **placement}
        branch = nn.Sequential(
            ConvNormAct(in_channels, out_channels, 3, stride=stride, act_layer=act_layer, **common),  # type: ignore[arg-type]
            ConvNormAct(out_channels, out_channels, 3, act_layer=None, **common),  # type: ignore[arg-type]
        )
        super().__init__(
            branch,
            shortcut_for(shortcut, in_channels, out_channels, stride, norm_layer, nd, placement),
            act_layer=act_layer,
            drop_path_rate=drop_path_rate,
            **placement,
        )
        self.in_channels, self.out_channels, self.spatial_dims = in_channels, out_channels, nd


class Bottleneck(_ChannelsResidual):
    """The ResNet bottleneck block: 1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand, plus a shortcut.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        mid_channels: Width of the 3x3 conv; ``out_channels // 4`` by default
            (torchvision's ``planes``); ResNeXt and wide ResNets set it.
        stride: Stride of the 3x3 conv (and of the shortcut), as in torchvision
            ("ResNet v1.5").
        groups: Groups of the 3x3 conv (ResNeXt's cardinality).
        se_ratio: A :class:`SqueezeExcite` after the 3x3 conv, its bottleneck
            ``round(se_ratio * in_channels)`` wide, as in RegNetY; ``None``
            for none.
        shortcut: ``"conv"`` or ``"pad"``, as in :class:`BasicBlock`.
        norm_layer: As in :class:`ConvNormAct`.
        act_layer: As in :class:`ConvNormAct`; also after the sum.
        drop_path_rate: Stochastic-depth probability.
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, out_channels, *ceil(spatial / stride)]``.

    Example:
        >>> import torch
        >>> from blockzoo import Bottleneck
        >>> block = Bottleneck(64, 256)
        >>> block.branch[1].conv
        Conv2d(64, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
        >>> block(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 256, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        mid_channels: int | None = None,
        stride: int = 1,
        groups: int = 1,
        se_ratio: float | None = None,
        shortcut: str = "conv",
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu",
        drop_path_rate: float = 0.0,
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        nd = check_spatial_dims(spatial_dims)
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        se = check_number("se_ratio", se_ratio, low=0, high=1, low_open=True, allow_none=True)
        mid = check_positive_int(
            "mid_channels", mid_channels if mid_channels is not None else max(1, out_channels // 4)
        )
        check_choice("shortcut", shortcut, ("conv", "pad"))
        placement: Placement = {"device": device, "dtype": dtype}
        common = {"norm_layer": norm_layer, "spatial_dims": nd, **placement}
        layers: list[nn.Module] = [
            ConvNormAct(in_channels, mid, 1, act_layer=act_layer, **common),  # type: ignore[arg-type]
            ConvNormAct(mid, mid, 3, stride=stride, groups=groups, act_layer=act_layer, **common),  # type: ignore[arg-type]
        ]
        if se is not None:
            rd = max(1, round(se * in_channels))
            layers.append(SqueezeExcite(mid, rd_channels=rd, act_layer=act_layer, spatial_dims=nd, **placement))
        layers.append(ConvNormAct(mid, out_channels, 1, act_layer=None, **common))  # type: ignore[arg-type]
        branch = nn.Sequential(*layers)
        super().__init__(
            branch,
            shortcut_for(shortcut, in_channels, out_channels, stride, norm_layer, nd, placement),
            act_layer=act_layer,
            drop_path_rate=drop_path_rate,
            **placement,
        )
        self.in_channels, self.out_channels, self.spatial_dims = in_channels, out_channels, nd
        self._narrow = mid == 1
