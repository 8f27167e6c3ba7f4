"""``attach_penalty`` (loss or gradient mode) and ``attach_activity_penalty`` (forward hooks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from blockzoo._names import GlobsLike
from blockzoo._trees import tensor_leaves
from blockzoo.blocks import Block
from blockzoo.regularization._penalties import Penalty
from blockzoo.regularization._store import (
    Attachment,
    RegularizationHandle,
    attach,
    pick_modules,
    pick_params,
)
from blockzoo.roles import RolesLike

__all__ = ["attach_activity_penalty", "attach_penalty"]

PenaltyLike = Penalty | Callable[[Tensor], Tensor]


def _check_penalty(penalty: Any) -> PenaltyLike:
    if not callable(penalty):
        raise TypeError(
            "penalty must be a Penalty (L1, L2, L1L2, Orthogonal) or a callable weight -> scalar tensor. "
            f"Received: penalty={penalty!r}"
        )
    return penalty  # type: ignore[no-any-return]


def _key(kind: str, penalty: PenaltyLike) -> tuple[Any, ...]:
    # Two penalties of the same class on one tensor are one too many; a user callable is itself.
    return (kind, type(penalty)) if isinstance(penalty, Penalty) else (kind, penalty)


def _describe(penalty: PenaltyLike) -> str:
    return repr(penalty) if isinstance(penalty, Penalty) else getattr(penalty, "__qualname__", repr(penalty))


def _at_step(penalty: PenaltyLike, step: int) -> PenaltyLike:
    """``penalty`` with its schedule set to the attachment's ``step`` (a plain callable has none)."""
    if isinstance(penalty, Penalty):
        penalty.step = step
    return penalty


def _add_grad(penalty: PenaltyLike, grad: Tensor, weight: Tensor) -> None:
    """Add the penalty's gradient into ``grad``: closed form when it has one, else autograd on a detached copy."""
    if isinstance(penalty, Penalty) and penalty.add_grad_(grad, weight):
        return
    with torch.enable_grad():
        w = weight.detach().requires_grad_(True)
        (extra,) = torch.autograd.grad(penalty(w), w)
    grad.add_(extra)


class _LossPenalty(Attachment):
    """A penalty summed over its parameters into :func:`regularization_loss`."""

    kind = "penalty"
    mode = "loss"

    def __init__(self, penalty: PenaltyLike, params: list[tuple[str, nn.Parameter]]) -> None:
        super().__init__(_describe(penalty), [n for n, _ in params], _key("penalty", penalty), [p for _, p in params])
        self.penalty = penalty
        self.params = [p for _, p in params]

    def loss(self) -> Tensor:
        penalty = _at_step(self.penalty, self.step)
        return torch.stack([penalty(p).reshape(()) for p in self.params]).sum()


class _GradPenalty(_LossPenalty):
    """A penalty whose gradient a hook adds to each parameter's ``.grad``."""

    mode = "grad"

    def loss(self) -> None:  # type: ignore[override]
        return None

    def install(self) -> None:
        self.hook_grads(self.params, self._add_to_grad)

    def _add_to_grad(self, p: Tensor) -> None:
        if p.grad is None:
            return
        with torch.no_grad():
            _add_grad(_at_step(self.penalty, self.step), p.grad, p.detach())


def attach_penalty(
    model: nn.Module,
    penalty: PenaltyLike,
    *,
    roles: RolesLike = ("weight",),
    include: GlobsLike = None,
    exclude: GlobsLike = None,
    mode: Literal["loss", "grad"] = "loss",
) -> RegularizationHandle:
    """Attach a weight penalty to the parameters of ``model`` picked by role and name glob.

    ``mode="loss"``: :func:`regularization_loss` returns the sum of the
    penalty over the picked parameters; add it to your loss. ``mode="grad"``:
    a hook (``register_post_accumulate_grad_hook``) adds the penalty's
    gradient to each parameter's ``.grad`` as it is accumulated, without
    building a graph (``2 * factor * w`` for :class:`L2`, ``factor * sign(w)``
    for :class:`L1`; autograd for other penalties). Both give the same
    gradients. Frozen parameters are never picked.

    Args:
        model: Any module.
        penalty: A :class:`Penalty` or any callable ``weight -> scalar``.
        roles: Roles to pick (``None``: any); conv and linear weights by default.
        include: Name glob(s) to pick; each must match some parameter.
        exclude: Name glob(s) to leave out.
        mode: ``"loss"`` or ``"grad"``.

    Returns:
        A handle whose ``remove()`` detaches the penalty.

    Raises:
        ValueError: nothing is picked, a glob matches nothing, a bad mode, or
            a penalty of the same kind is already attached to a picked parameter.
        TypeError: ``penalty`` is not callable.

    Example:
        >>> import torch
        >>> import blockzoo
        >>> from blockzoo.regularization import L2, attach_penalty
        >>> model = blockzoo.create_model("mlp")
        >>> handle = attach_penalty(model, L2(1e-4), mode="grad")
        >>> model(torch.randn(2, 1, 28, 28)).sum().backward()  # gradients now include 2e-4 * w
        >>> handle.remove()
    """
    penalty = _check_penalty(penalty)
    if mode not in ("loss", "grad"):
        raise ValueError(f"mode must be 'loss' or 'grad'. Received: mode={mode!r}")
    params = pick_params(model, roles=roles, include=include, exclude=exclude, caller="attach_penalty")
    return attach(model, (_LossPenalty if mode == "loss" else _GradPenalty)(penalty, params))


class _ActivityPenalty(Attachment):
    """Forward hooks that collect ``penalty(output) / batch`` from picked modules during a forward pass."""

    kind = "activity penalty"
    mode = "forward hook"

    def __init__(self, model: nn.Module, penalty: PenaltyLike, modules: list[tuple[str, nn.Module]]) -> None:
        names = [name or "<model output>" for name, _ in modules]
        super().__init__(_describe(penalty), names, _key("activity", penalty), [m for _, m in modules])
        self.model = model
        self.penalty = penalty
        self.modules = [m for _, m in modules]
        self.collected: list[Tensor] = []
        self._batch: int | None = None  # the batch size of the forward pass in progress (see _clear)
        self._handles: list[RemovableHandle] = []

    def apply(self) -> None:
        self._handles = [self.model.register_forward_pre_hook(self._clear)]
        self._handles += [m.register_forward_hook(self._record) for m in self.modules]

    def undo(self) -> None:
        for h in self._handles:
            h.remove()
        self.collected.clear()

    def _clear(self, module: nn.Module, args: Any) -> None:
        self.collected.clear()
        # The batch is the model's: a layer may see the positions folded into its first dimension (an MLP
        # on tokens runs its layers on [N * L, features] with autograd), which is not the batch size.
        inputs = tensor_leaves(args)
        self._batch = inputs[0].shape[0] if inputs and inputs[0].dim() > 0 else None

    def _record(self, module: nn.Module, args: Any, output: Any) -> None:
        leaves = tensor_leaves(output)
        if not leaves:
            return
        out = leaves[0]
        batch = getattr(self, "_batch", None)
        if batch is None:  # a model called without a tensor argument: the output's first dimension
            batch = out.shape[0] if out.dim() > 0 else 1
        if batch == 0:  # an empty batch adds nothing (not 0 / 0)
            return
        penalty = _at_step(self.penalty, self.step)
        # A copy: a later in-place layer (ReLU(inplace=True), a block's in-place activation or
        # residual sum) would otherwise change the tensor the penalty saved for backward.
        self.collected.append(penalty(out.clone() if out.requires_grad else out) / batch)

    def loss(self) -> Tensor | None:
        return torch.stack([c.reshape(()) for c in self.collected]).sum() if self.collected else None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["collected"] = []  # this forward's graph belongs to the original
        return state


def attach_activity_penalty(
    model: nn.Module, penalty: PenaltyLike, *, include: GlobsLike = None
) -> RegularizationHandle:
    """Penalise the outputs of sub-modules (Keras's ``activity_regularizer``) through forward hooks.

    During each forward pass, every picked module's output (its first tensor)
    adds ``penalty(output) / batch_size`` to a collection that
    :func:`regularization_loss` sums; the collection is cleared when the
    next forward pass of ``model`` (the outermost one) begins. The penalty
    is computed on a copy of the output (when it requires grad), so layers
    that later modify it in place do not break ``backward()``; the copy costs
    one output-sized tensor per picked module until the backward pass. Name
    globs match across dots (``"stage*"`` also picks every layer inside the
    stages); ``"stage?.?"``-style patterns pick one level.

    Args:
        model: Any module; its forward starts each collection.
        penalty: A :class:`Penalty` or any callable ``tensor -> scalar``.
        include: Sub-module name glob(s); ``None`` for ``model``'s own output.

    Returns:
        A handle whose ``remove()`` removes the hooks.

    Raises:
        ValueError: a glob matches no sub-module, or the same kind of activity
            penalty is already attached to a picked module.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from blockzoo.regularization import L1, attach_activity_penalty, regularization_loss
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> handle = attach_activity_penalty(model, L1(1e-3), include="1")
        >>> out = model(torch.randn(16, 4))
        >>> bool(regularization_loss(model) > 0)
        True
    """
    penalty = _check_penalty(penalty)
    modules = pick_modules(model, include, caller="attach_activity_penalty")
    # A block may run some of its parts inline (see Block.modules_run_inline): hook
    # the layer that produces such a part's output, which sees the same tensor.
    inline: dict[nn.Module, nn.Module] = {}
    for block in model.modules():
        if isinstance(block, Block):
            inline.update(block.modules_run_inline())
    return attach(model, _ActivityPenalty(model, penalty, [(name, inline.get(m, m)) for name, m in modules]))
