"""``attach_penalty`` (loss or gradient mode) and ``attach_activity_penalty`` (forward hooks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

from blockzoo.regularization._penalties import Penalty
from blockzoo.regularization._store import (
    Attachment,
    RegularizationHandle,
    attach,
    grad_hook,
    pick_modules,
    pick_params,
)
from blockzoo.roles import Role

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


def _advancer(penalty: PenaltyLike) -> Callable[[], None] | None:
    """What moves ``penalty``'s schedule on after each ``regularization_loss`` (a plain callable has none)."""
    if not isinstance(penalty, Penalty):
        return None

    def advance() -> None:
        penalty.step += 1

    return advance


def _add_grad(penalty: PenaltyLike, grad: Tensor, weight: Tensor) -> None:
    """Add the penalty's gradient into ``grad``: closed form when it has one, else autograd on a detached copy."""
    if isinstance(penalty, Penalty) and penalty.add_grad_(grad, weight):
        return
    with torch.enable_grad():
        w = weight.detach().requires_grad_(True)
        (extra,) = torch.autograd.grad(penalty(w), w)
    grad.add_(extra)


def attach_penalty(
    model: nn.Module,
    penalty: PenaltyLike,
    *,
    roles: Role | str | Sequence[Role | str] | None = ("weight",),
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
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
    names = [n for n, _ in params]
    tensors = [p for _, p in params]
    what = _describe(penalty)
    if mode == "loss":

        def loss() -> Tensor:
            return torch.stack([penalty(p).reshape(()) for p in tensors]).sum()

        attachment = Attachment(
            "penalty",
            what,
            "loss",
            names,
            _key("penalty", penalty),
            list(tensors),
            lambda: None,
            loss,
            advance=_advancer(penalty),
        )
        return attach(model, attachment)

    counts = [0] * len(tensors)

    def make_hook(i: int) -> Callable[[Tensor], None]:
        def hook(p: Tensor) -> None:
            if p.grad is None:
                return
            if isinstance(penalty, Penalty):
                penalty.step = counts[i]  # the schedule's step: backward passes this parameter has seen
            counts[i] += 1
            with torch.no_grad():
                _add_grad(penalty, p.grad, p.detach())

        return hook

    removers = [grad_hook(p, make_hook(i)) for i, p in enumerate(tensors)]

    def undo() -> None:
        for remove in removers:
            remove()

    return attach(model, Attachment("penalty", what, "grad", names, _key("penalty", penalty), list(tensors), undo))


def _first_tensor(output: Any) -> Tensor | None:
    for leaf in tree_leaves(output):
        if isinstance(leaf, Tensor):
            return leaf
    return None


def attach_activity_penalty(
    model: nn.Module, penalty: PenaltyLike, *, include: str | Sequence[str] | None = None
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
    collected: list[Tensor] = []

    def record(module: nn.Module, args: Any, output: Any) -> None:
        out = _first_tensor(output)
        if out is not None:
            batch = out.shape[0] if out.dim() > 0 else 1
            # A copy: a later in-place layer (ReLU(inplace=True), a block's in-place activation or
            # residual sum) would otherwise change the tensor the penalty saved for backward.
            collected.append(penalty(out.clone() if out.requires_grad else out) / batch)

    def clear(module: nn.Module, args: Any) -> None:
        collected.clear()

    handles = [model.register_forward_pre_hook(clear)]
    handles += [m.register_forward_hook(record) for _, m in modules]

    def undo() -> None:
        for h in handles:
            h.remove()
        collected.clear()

    def loss() -> Tensor | None:
        return torch.stack([c.reshape(()) for c in collected]).sum() if collected else None

    names = [name or "<model output>" for name, _ in modules]
    attachment = Attachment(
        "activity penalty",
        _describe(penalty),
        "forward hook",
        names,
        _key("activity", penalty),
        [m for _, m in modules],
        undo,
        loss,
        advance=_advancer(penalty),
    )
    return attach(model, attachment)
