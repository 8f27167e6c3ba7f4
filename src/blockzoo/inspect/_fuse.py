"""Fold every conv -> batch-norm pair of a model into the conv, for inference."""

from __future__ import annotations

import copy
import itertools
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_conv_bn_weights

from blockzoo._checks import check_bool, check_module
from blockzoo.blocks import Block

__all__ = ["FusionReport", "explain_fusion", "fuse_conv_bn"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)

_Transposed = nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d
_Conv = nn.Conv1d | nn.Conv2d | nn.Conv3d | _Transposed
_BatchNorm = nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d | nn.SyncBatchNorm
_NOT_AFTER_CONV = "not found right after a conv"
# The forwards that fuse_conv_bn_eval's arithmetic describes: torch's own, not a subclass's.
_TORCH_FORWARDS = {cls.forward for cls in (*_Conv.__args__, *_BatchNorm.__args__)}
# torch's conv classes compute in the private _conv_forward; a subclass may change it (weight standardisation)
# instead of forward, and torch has no public way to tell, so both are compared with torch's own
_TORCH_CONV_FORWARDS = {cls._conv_forward for cls in _Conv.__args__ if hasattr(cls, "_conv_forward")}
# torchvision's blocks name their pairs conv1/bn1, conv2/bn2, ... and call bnK(convK(x)) in forward;
# the names alone are trusted only in torchvision's own classes.
_NAMED_NORM = re.compile(r"bn(\d*)")


@dataclass(frozen=True)
class FusionReport:
    """What :func:`fuse_conv_bn` folds in a model, what it cannot fold and why.

    Names are the modules' qualified names in the model (``model.get_submodule(name)``).

    Attributes:
        folded: ``(conv, norm)`` pairs that are folded: the conv takes the
            norm's scale and shift, the norm becomes ``nn.Identity``.
        skipped: ``(conv, norm, reason)`` for pairs that cannot be folded;
            :func:`fuse_conv_bn` raises for them unless ``strict=False``.
        unpaired: ``(norm, reason)`` for batch norms that no conv feeds
            directly (a pre-activation block's norm, a norm after a linear
            layer); they stay as they are.

    Example:
        >>> import blockzoo
        >>> report = blockzoo.explain_fusion(blockzoo.ConvBlock(3, 8, num_convs=2))
        >>> report.folded
        (('convs.0.conv', 'convs.0.norm'), ('convs.1.conv', 'convs.1.norm'))
        >>> print(report)
        2 conv -> batch-norm pairs folded:
          convs.0.conv -> convs.0.norm
          convs.1.conv -> convs.1.norm
    """

    folded: tuple[tuple[str, str], ...]
    skipped: tuple[tuple[str, str, str], ...]
    unpaired: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        lines = [f"{len(self.folded)} conv -> batch-norm pair{_s(self.folded)} folded" + (":" if self.folded else "")]
        lines += [f"  {conv} -> {norm}" for conv, norm in self.folded]
        if self.skipped:
            lines.append(f"{len(self.skipped)} pair{_s(self.skipped)} not folded:")
            lines += [f"  {conv} -> {norm}: {why}" for conv, norm, why in self.skipped]
        if self.unpaired:
            lines.append(f"{len(self.unpaired)} batch norm{_s(self.unpaired)} left as they are:")
            lines += [f"  {norm}: {why}" for norm, why in self.unpaired]
        return "\n".join(lines)


def _frozen_norm() -> type[nn.Module] | None:
    """Torchvision's ``FrozenBatchNorm2d``, when torchvision's ops are loaded (no instance can exist before)."""
    # Looked up rather than imported: importing torchvision costs a second, and a model can hold a
    # FrozenBatchNorm2d only if torchvision.ops.misc is already in sys.modules.
    return getattr(sys.modules.get("torchvision.ops.misc"), "FrozenBatchNorm2d", None)


def _is_norm(module: nn.Module | None) -> bool:
    frozen = _frozen_norm()
    return isinstance(module, _BatchNorm) or (frozen is not None and isinstance(module, frozen))


def _s(items: tuple[object, ...]) -> str:
    return "" if len(items) == 1 else "s"


def _join(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def _run_order(parent: nn.Module) -> list[str]:
    """Children of ``parent`` that its forward runs one after the other, each on the previous one's output."""
    if isinstance(parent, nn.Sequential) and type(parent).forward is nn.Sequential.forward:
        return [name for name, _ in parent.named_children()]
    if isinstance(parent, Block):
        # A block's declared stages: _run_stages calls them in this order (ConvNormAct's conv, norm, act).
        return list(parent._stage_names)
    return []


def _adjacent_pairs(parent: nn.Module) -> Iterator[tuple[str, str]]:
    """``(previous, norm)`` child names where ``norm`` is a batch norm that runs on ``previous``'s output."""
    children = dict(parent.named_children())
    found: set[str] = set()
    for before, name in itertools.pairwise(_run_order(parent)):
        if _is_norm(children.get(name)) and before in children:
            found.add(name)
            yield before, name
    if not type(parent).__module__.startswith("torchvision."):
        return
    for name, child in children.items():
        match = _NAMED_NORM.fullmatch(name)
        conv = f"conv{match.group(1)}" if match else ""
        if name not in found and _is_norm(child) and isinstance(children.get(conv), _Conv):
            yield conv, name


def _own_forward(module: nn.Module) -> str | None:
    """Why ``module``'s computation is not torch's own conv or batch norm; ``None`` when it is."""
    kind = type(module)
    frozen = _frozen_norm()
    if kind.forward not in _TORCH_FORWARDS and (frozen is None or kind.forward is not frozen.forward):
        return f"{kind.__name__} has its own forward"
    conv_forward = getattr(kind, "_conv_forward", None)
    if conv_forward is not None and conv_forward not in _TORCH_CONV_FORWARDS:
        return f"{kind.__name__} has its own _conv_forward"
    return None


def _edges(model: nn.Module) -> dict[int, set[tuple[int, str]]]:
    """For each module of ``model``: every ``(id(parent), attribute)`` it is held under, over all paths."""
    edges: dict[int, set[tuple[int, str]]] = defaultdict(set)
    for path, module in model.named_modules(remove_duplicate=False):
        if path:
            parent, _, name = path.rpartition(".")
            edges[id(module)].add((id(model.get_submodule(parent)), name))
    return edges


def _why_not(
    parent: nn.Module, names: tuple[str, str], conv: _Conv, norm: nn.Module, edges: dict[int, set[tuple[int, str]]]
) -> str | None:
    """Why ``norm`` cannot be folded into ``conv``, ``parent``'s children ``names``; ``None`` when it can."""
    for module in (conv, norm):
        own = _own_forward(module)
        if own is not None:
            return f"{own}, which folding would drop"
    forward = type(parent).forward
    if isinstance(parent, Block) and not getattr(forward, "__module__", "").startswith("blockzoo."):
        return (
            f"{type(parent).__name__} overrides its block's forward, so the conv's output "
            "may not go (only) into the norm"
        )
    running_mean = getattr(norm, "running_mean", None)
    if running_mean is None or getattr(norm, "running_var", None) is None:
        return (
            "the norm keeps no running statistics (track_running_stats=False), so it normalises with each "
            "batch's own statistics, which no conv can hold"
        )
    features = len(running_mean)
    if conv.out_channels != features:
        return f"the conv gives {conv.out_channels} channels and the norm expects {features}"
    if isinstance(conv, _Transposed) and conv.groups > 1:
        return f"a transposed conv with groups={conv.groups}: torch's fuse_conv_bn_eval folds those only with groups=1"
    if any(nn.parameter.is_lazy(t) for t in (*conv.parameters(), *norm.parameters(), *norm.buffers())):
        return "a lazy module that has not run yet: its parameters have no shape"
    if parametrize.is_parametrized(conv) or parametrize.is_parametrized(norm):
        return (
            "a parametrized weight (torch.nn.utils.parametrize); remove the parametrization "
            "(leave_parametrized=True) before folding"
        )
    # A block used in several places is folded once, in place, for all of them; a conv or norm that is also
    # held elsewhere (outside this parent, or under a second name) would change there too.
    if edges[id(conv)] != {(id(parent), names[0])} or edges[id(norm)] != {(id(parent), names[1])}:
        return "the conv or the norm is also used elsewhere in the model, outside this pair"
    return None


def explain_fusion(model: nn.Module) -> FusionReport:
    """Which conv -> batch-norm pairs :func:`fuse_conv_bn` folds in ``model``, which it cannot and why.

    A pair is a convolution (1d/2d/3d, transposed or not) whose output goes
    straight into a batch norm, where the model's structure says so: adjacent
    layers of an ``nn.Sequential`` (torchvision's VGG, MobileNet v2 and ResNet
    downsample), consecutive stages of a blockzoo block (the ``conv`` and
    ``norm`` of :class:`~blockzoo.ConvNormAct` and of every block built on
    it), and the ``convK`` and ``bnK`` layers of torchvision's own modules
    (its ResNet stem and blocks, whose ``forward`` computes ``bnK(convK(x))``).
    A module with its own ``forward`` is not read, so a norm there is listed
    as unpaired: put the conv and its norm in an ``nn.Sequential`` (or use
    :class:`~blockzoo.ConvNormAct`) to have them folded. A pair is folded
    only when the conv and the norm compute what torch's own classes do and
    a blockzoo block's ``forward`` is blockzoo's own: a subclass that
    overrides one of them (a norm that adds an activation, a conv that
    standardises its weight) is listed under ``skipped`` with the reason.
    Nothing is changed or copied.

    Args:
        model: Any model.

    Returns:
        The :class:`FusionReport`.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> import blockzoo
        >>> report = blockzoo.explain_fusion(blockzoo.ConvNormAct(3, 8, order="norm-act-conv"))
        >>> report.folded
        ()
        >>> report.unpaired
        (('norm', 'not found right after a conv'),)
    """
    check_module("model", model)
    edges = _edges(model)
    folded: list[tuple[str, str]] = []
    skipped: list[tuple[str, str, str]] = []
    after_conv: set[str] = set()
    after_linear: set[str] = set()
    for parent_name, parent in model.named_modules():
        for before, name in _adjacent_pairs(parent):
            conv, norm = parent.get_submodule(before), parent.get_submodule(name)
            conv_name, norm_name = _join(parent_name, before), _join(parent_name, name)
            if isinstance(conv, _Conv) and _is_norm(norm):
                after_conv.add(norm_name)
                why = _why_not(parent, (before, name), conv, norm, edges)
                if why is None:
                    folded.append((conv_name, norm_name))
                else:
                    skipped.append((conv_name, norm_name, why))
            elif isinstance(conv, nn.Linear):
                after_linear.add(norm_name)
    unpaired = [
        (name, "follows a linear layer; only convolutions are folded" if name in after_linear else _NOT_AFTER_CONV)
        for name, module in model.named_modules()
        if _is_norm(module) and name not in after_conv
    ]
    return FusionReport(tuple(folded), tuple(skipped), tuple(unpaired))


def _fold(conv: _Conv, norm: Any) -> _Conv:
    transpose = isinstance(conv, _Transposed)
    if isinstance(norm, _BatchNorm):
        return fuse_conv_bn_eval(conv, norm, transpose=transpose)
    # torchvision's FrozenBatchNorm2d keeps its affine map in buffers; torch's arithmetic is the same
    folded = copy.deepcopy(conv)
    folded.weight, folded.bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.eps, norm.weight, norm.bias, transpose
    )
    return folded


def _check_eval(model: nn.Module) -> None:
    training = [name or "(the model)" for name, module in model.named_modules() if module.training]
    if training:
        shown = ", ".join(training[:3]) + (f" and {len(training) - 3} more" if len(training) > 3 else "")
        raise ValueError(
            "model must be in eval mode to fold its batch norms: folding bakes in their running statistics, "
            f"which only eval mode uses; call model.eval() first. Received: modules in training mode: {shown}"
        )


def fuse_conv_bn(model: ModuleT, *, strict: bool = True) -> ModuleT:
    """A copy of ``model`` for inference, with each batch norm folded into the conv before it.

    A batch norm in eval mode is a per-channel affine map, so the conv that
    feeds it can take it over: :func:`torch.nn.utils.fusion.fuse_conv_bn_eval`
    scales the conv's kernel and gives it a bias. The copy's folded norms
    become ``nn.Identity`` (so ``print(model)`` and the other state-dict keys
    stay as they were), and it computes the same outputs in one pass less per
    pair. ``model`` itself is not changed. :func:`explain_fusion` lists the
    pairs that are found, and those that cannot be folded with the reason.

    Args:
        model: A model in eval mode.
        strict: Raise when a pair cannot be folded (a norm without running
            statistics, channel counts that differ, a grouped transposed
            conv, a parametrized or shared layer, a conv or norm subclass with
            its own forward, a block whose forward a subclass overrides);
            ``False`` folds the others and leaves those as they are.

    Returns:
        The fused copy, in eval mode.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, or ``strict`` is not a bool.
        ValueError: ``model`` (or one of its modules) is in training mode, or,
            with ``strict=True``, a pair cannot be folded (all are listed).

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("simple_cnn").eval()
        >>> fused = blockzoo.fuse_conv_bn(model)
        >>> fused.features.stage1.convs[0]
        ConvNormAct(
          (conv): Conv2d(3, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
          (norm): Identity()
          (act): ReLU(inplace=True)
        )
        >>> x = torch.randn(2, 3, 32, 32)
        >>> torch.allclose(fused(x), model(x), atol=1e-5)
        True
    """
    strict = check_bool("strict", strict)
    report = explain_fusion(model)
    _check_eval(model)
    if strict and report.skipped:
        pairs = "; ".join(f"{conv} -> {norm}: {why}" for conv, norm, why in report.skipped)
        raise ValueError(
            f"fuse_conv_bn cannot fold {len(report.skipped)} conv -> batch-norm pair{_s(report.skipped)}: {pairs}. "
            "Pass strict=False to fold the others and leave these as they are. Received: strict=True"
        )
    fused = copy.deepcopy(model)
    for conv_name, norm_name in report.folded:
        parent_name, _, conv_attr = conv_name.rpartition(".")
        norm_attr = norm_name.rpartition(".")[2]
        parent = fused.get_submodule(parent_name)
        conv = cast(_Conv, parent.get_submodule(conv_attr))  # explain_fusion checked both types
        folded = _fold(conv, parent.get_submodule(norm_attr))
        if folded.bias is not None:  # torch's new bias is frozen when the conv had none; follow the kernel
            folded.bias.requires_grad_(folded.weight.requires_grad)
        setattr(parent, conv_attr, folded)
        setattr(parent, norm_attr, nn.Identity())
    return fused.eval()
