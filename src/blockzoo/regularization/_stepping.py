"""When attachments move: :func:`step_regularizers`, and the optimizer whose steps run it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from blockzoo._checks import check_module
from blockzoo.regularization._store import Attachment, RegularizationHandle, attach, attachments

__all__ = ["bind_implicitly", "bind_optimizer", "bound_optimizer", "step_regularizers"]


def step_regularizers(model: nn.Module) -> None:
    """Tell ``model``'s attachments that one training step has happened.

    Projection constraints project their parameters, and every schedule (a
    penalty factor or a gradient-noise std given as a callable of the step)
    moves on by one. Call it after each ``optimizer.step()``, or let an
    optimizer do it: :func:`bind_optimizer`, or ``attach_constraint(...,
    optimizer=opt)``, runs it after each of that optimizer's steps. Reading
    :func:`regularization_loss` never advances anything.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import L2, attach_penalty, regularization_loss, step_regularizers
        >>> model = torch.nn.Linear(2, 1, bias=False)
        >>> with torch.no_grad():
        ...     _ = model.weight.fill_(1.0)
        >>> handle = attach_penalty(model, L2(lambda step: 0.1 * (step + 1)))
        >>> regularization_loss(model), regularization_loss(model)
        (tensor(0.2000, grad_fn=<...>), tensor(0.2000, grad_fn=<...>))
        >>> step_regularizers(model)
        >>> regularization_loss(model)
        tensor(0.4000, grad_fn=<...>)
    """
    for attachment in list(attachments(check_module("model", model, caller="step_regularizers"))):
        if not isinstance(attachment, _OptimizerBinding):
            attachment.after_step()


class _OptimizerBinding(Attachment):
    """Runs :func:`step_regularizers` after each step of one optimizer.

    ``implicit``: made by ``attach_constraint(optimizer=...)`` rather than by
    :func:`bind_optimizer`; it goes when nothing else is attached.
    """

    kind = "optimizer"
    mode = "step hook"
    copied = False

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, implicit: bool = False) -> None:
        super().__init__(type(optimizer).__name__, ["<model>"], ("optimizer",), [optimizer])
        self.model = model
        self.optimizer = optimizer
        self.goes_when_alone = implicit
        self._hook: RemovableHandle | None = None

    def apply(self) -> None:
        self._hook = self.optimizer.register_step_post_hook(self._after_optimizer_step)

    def undo(self) -> None:
        if self._hook is not None:
            self._hook.remove()

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        step_regularizers(self.model)


def bound_optimizer(model: nn.Module) -> torch.optim.Optimizer | None:
    """The optimizer whose steps drive ``model``'s attachments, if one is bound.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import bind_optimizer, bound_optimizer
        >>> model = torch.nn.Linear(2, 2)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> handle = bind_optimizer(model, opt)
        >>> bound_optimizer(model) is opt
        True
    """
    for attachment in attachments(model):
        if isinstance(attachment, _OptimizerBinding):
            return attachment.optimizer
    return None


def bind_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> RegularizationHandle:
    """Run :func:`step_regularizers` on ``model`` after each ``optimizer.step()``.

    One optimizer drives a model's attachments; binding a second one is an
    error (remove the first handle). A copy of the model is not bound: the
    optimizer holds the original's parameters, so bind the copy's own.

    Args:
        model: A module with attachments (or that will have them).
        optimizer: The optimizer that trains it.

    Returns:
        A handle whose ``remove()`` unbinds it.

    Raises:
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer``.
        ValueError: another optimizer is already bound to ``model``.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import MaxNorm, attach_constraint, bind_optimizer
        >>> model = torch.nn.Linear(16, 4)
        >>> opt = torch.optim.SGD(model.parameters(), lr=10.0)
        >>> binding = bind_optimizer(model, opt)
        >>> handle = attach_constraint(model, MaxNorm(1.0))  # projected after each opt.step()
        >>> model(torch.randn(8, 16)).pow(2).sum().backward()
        >>> opt.step()
        >>> bool(model.weight.norm(dim=1).max() <= 1.0 + 1e-6)
        True
    """
    check_module("model", model, caller="bind_optimizer")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer. Received: optimizer={type(optimizer).__name__}")
    current = bound_optimizer(model)
    if current is not None:
        if current is optimizer:
            raise ValueError(
                f"{type(optimizer).__name__} is already bound to this model; bind it once. "
                f"Received: optimizer={type(optimizer).__name__}"
            )
        raise ValueError(
            f"{type(current).__name__} is already bound to this model, and one optimizer drives its "
            f"attachments; remove() the first binding. Received: optimizer={type(optimizer).__name__}"
        )
    return attach(model, _OptimizerBinding(model, optimizer))


def bind_implicitly(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Bind ``optimizer`` for an attachment that needs it; the binding goes once nothing else is attached."""
    attach(model, _OptimizerBinding(model, optimizer, implicit=True))
