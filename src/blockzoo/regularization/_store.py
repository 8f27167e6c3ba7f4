"""Where attachments live (on the model), their handles, the loss, the step and the listing.

Everything an ``attach_*`` call adds is an :class:`Attachment` object kept in a
plain attribute of the module it was attached to (``model.blockzoo_regularizers``),
as torch keeps hooks on their module and Keras keeps losses on their layer.
Hooks are bound methods of their attachment, so ``copy.deepcopy`` and
``pickle`` carry them and point the copy's hooks at the copy's parameters.
Gradient hooks on parameters are the one thing a copy of a tensor does not
carry; each attachment puts them back on the copy (:meth:`Attachment.install`).
An optimizer binding holds the original's optimizer and is not copied.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from blockzoo._names import GlobsLike, as_patterns, check_globs_match, matches_any
from blockzoo.roles import RolesLike, select

__all__ = [
    "ATTRIBUTE",
    "Attachment",
    "RegularizationHandle",
    "RegularizerRow",
    "RegularizerTable",
    "attach",
    "bind_implicitly",
    "bind_optimizer",
    "list_regularizers",
    "pick_modules",
    "pick_params",
    "regularization_loss",
    "step_regularizers",
]

#: The attribute of a module that holds what was attached to it.
ATTRIBUTE = "blockzoo_regularizers"


class Attachment:
    """One ``attach_*`` call's worth of regularization; subclasses say what it does.

    Attributes:
        kind: What it is (``"penalty"``, ``"constraint"``, ...).
        mode: How it acts (``"loss"``, ``"grad hook"``, ``"project"``, ...).
        what: How it reads in :func:`list_regularizers`.
        targets: The qualified names of the parameters (or modules) it acts on.
        key: Two attachments with equal keys may not share a target.
        objects: The parameters or modules it acts on, for that check.
        step: Training steps served, advanced by :func:`step_regularizers`;
            schedules read it.
    """

    kind = ""
    mode = ""

    def __init__(self, what: str, targets: Sequence[str], key: tuple[Any, ...], objects: Sequence[object]) -> None:
        self.what = what
        self.targets = list(targets)
        self.key = key
        self.objects = list(objects)
        self.step = 0
        self._grad_hooks: list[RemovableHandle] = []

    # What the model sees ---------------------------------------------------------------

    def apply(self) -> None:
        """Make the change on the model, once, when attached (hooks, parametrizations, rates)."""
        self.install()

    def undo(self) -> None:
        """Put everything :meth:`apply` changed back."""
        self.uninstall()

    def install(self) -> None:
        """(Re)register the gradient hooks on parameters, which copies of tensors do not carry."""

    def uninstall(self) -> None:
        for handle in self._grad_hooks:
            handle.remove()
        self._grad_hooks.clear()

    def hook_grads(self, params: Sequence[Tensor], hook: Callable[[Tensor], None]) -> None:
        """Run ``hook(param)`` each time a gradient is accumulated into ``param.grad``."""
        self._grad_hooks += [p.register_post_accumulate_grad_hook(hook) for p in params]  # type: ignore[no-untyped-call]

    def loss(self) -> Tensor | None:
        """This attachment's term of :func:`regularization_loss`, if it has one."""
        return None

    def after_step(self) -> None:
        """One training step has happened (see :func:`step_regularizers`)."""
        self.step += 1

    # Copies ------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_grad_hooks"] = []  # handles of the original's tensors; the copy makes its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.install()


class _Attachments:
    """The attachments of one module, in attach order; a binding to an optimizer is not copied."""

    def __init__(self) -> None:
        self.items: list[Attachment] = []

    def __getstate__(self) -> dict[str, Any]:
        return {"items": [a for a in self.items if not isinstance(a, _OptimizerBinding)]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _own(module: nn.Module) -> _Attachments | None:
    found = getattr(module, ATTRIBUTE, None)
    return found if isinstance(found, _Attachments) else None


def _attachments(model: nn.Module) -> Iterator[Attachment]:
    seen: set[int] = set()
    for module in model.modules():
        own = _own(module)
        for attachment in own.items if own is not None else ():
            if id(attachment) not in seen:
                seen.add(id(attachment))
                yield attachment


class RegularizationHandle:
    """What an ``attach_*`` call returns: :meth:`remove` restores the exact previous behaviour.

    ``remove()`` is idempotent; the handle is also a context manager that
    removes on exit. It acts on the model it came from: a copy of the model
    keeps its own attachments (``list_regularizers(copy)`` has their handles).

    Attributes:
        kind: What was attached (``"penalty"``, ``"constraint"``, ...).
        targets: The qualified names of the parameters (or modules) it acts on.
    """

    def __init__(self, model: nn.Module, attachment: Attachment) -> None:
        self._model = weakref.ref(model)
        self._attachment: Attachment | None = attachment
        self.kind = attachment.kind
        self.targets = list(attachment.targets)

    def remove(self) -> None:
        """Detach it: hooks removed, parametrizations undone, rates restored."""
        attachment, self._attachment = self._attachment, None
        model = self._model()
        if attachment is None or model is None:
            return
        own = _own(model)
        if own is not None and attachment in own.items:
            attachment.undo()
            own.items.remove(attachment)
            _release_implicit_bindings(own)

    @property
    def removed(self) -> bool:
        """Whether :meth:`remove` has run."""
        return self._attachment is None

    def __enter__(self) -> RegularizationHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "removed" if self.removed else f"{len(self.targets)} targets"
        return f"RegularizationHandle({self.kind}, {state})"


def attach(model: nn.Module, attachment: Attachment) -> RegularizationHandle:
    """Apply ``attachment`` and keep it on ``model``, after refusing a second attachment of the same thing."""
    ids = {id(o) for o in attachment.objects}
    for other in _attachments(model):
        shared = ids & {id(o) for o in other.objects}
        if other.key == attachment.key and shared:
            names = [t for t, o in zip(attachment.targets, attachment.objects, strict=False) if id(o) in shared]
            raise ValueError(
                f"{attachment.what} is already attached to {', '.join(names[:3])} "
                f"({other.kind}, {other.what}); remove() the first handle, or attach it once"
            )
    try:
        attachment.apply()
    except BaseException:
        attachment.undo()  # what was applied before the failure: nothing is left half-changed
        raise
    own = _own(model)
    if own is None:
        own = _Attachments()
        setattr(model, ATTRIBUTE, own)  # a plain attribute: no state-dict key, carried by deepcopy and pickle
    own.items.append(attachment)
    return RegularizationHandle(model, attachment)


def _check_model(model: Any, caller: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{caller}: model must be an nn.Module. Received: model={type(model).__name__}")
    return model


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
    for attachment in list(_attachments(_check_model(model, "step_regularizers"))):
        if not isinstance(attachment, _OptimizerBinding):
            attachment.after_step()


class _OptimizerBinding(Attachment):
    """Runs :func:`step_regularizers` after each step of one optimizer.

    ``implicit``: made by ``attach_constraint(optimizer=...)`` rather than by
    :func:`bind_optimizer`; it goes when nothing else is attached.
    """

    kind = "optimizer"
    mode = "step hook"

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, implicit: bool = False) -> None:
        super().__init__(type(optimizer).__name__, ["<model>"], ("optimizer",), [optimizer])
        self.model = model
        self.optimizer = optimizer
        self.implicit = implicit
        self._hook: RemovableHandle | None = None

    def apply(self) -> None:
        self._hook = self.optimizer.register_step_post_hook(self._after_optimizer_step)

    def undo(self) -> None:
        if self._hook is not None:
            self._hook.remove()

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        step_regularizers(self.model)


def bound_optimizer(model: nn.Module) -> torch.optim.Optimizer | None:
    """The optimizer whose steps drive ``model``'s attachments, if one is bound."""
    for attachment in _attachments(model):
        if isinstance(attachment, _OptimizerBinding):
            return attachment.optimizer
    return None


def _release_implicit_bindings(own: _Attachments) -> None:
    """Remove the bindings that ``attach_constraint`` made once they are all that is left."""
    if all(isinstance(a, _OptimizerBinding) and a.implicit for a in own.items):
        for binding in own.items:
            binding.undo()
        own.items.clear()


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
    _check_model(model, "bind_optimizer")
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


def pick_params(
    model: nn.Module, *, roles: RolesLike, include: GlobsLike, exclude: GlobsLike, caller: str
) -> list[tuple[str, nn.Parameter]]:
    """The trainable parameters that :func:`~blockzoo.select` picks (strict globs); picking none is an error."""
    _check_model(model, caller)
    chosen = [(n, p) for n, p in select(model, roles=roles, include=include, exclude=exclude) if p.requires_grad]
    if not chosen:
        raise ValueError(
            f"{caller}: roles={roles!r}, include={include!r}, exclude={exclude!r} pick no "
            f"trainable parameter of {type(model).__name__}"
        )
    return chosen


def pick_modules(model: nn.Module, include: GlobsLike, *, caller: str) -> list[tuple[str, nn.Module]]:
    """Modules by name glob (``None``: the model itself); each glob must match, as in :func:`~blockzoo.select`."""
    _check_model(model, caller)
    if include is None:
        return [("", model)]
    patterns = as_patterns(include, "include")
    modules = [(name, m) for name, m in model.named_modules() if name]
    names = [name for name, _ in modules]
    check_globs_match("include", patterns, names, what=f"sub-module of {type(model).__name__}", received=include)
    return [(name, m) for name, m in modules if matches_any(name, patterns)]


def regularization_loss(model: nn.Module) -> Tensor:
    """The differentiable sum of every loss-mode penalty and collected activity penalty attached to ``model``.

    Add it to the task loss before ``backward()``. Grad-mode penalties are not
    in it: they act on the gradients directly. Reading it changes nothing:
    two calls give the same value, and schedules move only with
    :func:`step_regularizers`. Attachments are found on ``model`` and every
    sub-module, so a model wrapped by DDP or ``torch.compile`` gives the same sum.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import L2, attach_penalty, regularization_loss
        >>> model = torch.nn.Linear(2, 1, bias=False)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[1.0, 2.0]]))
        >>> handle = attach_penalty(model, L2(0.1))
        >>> regularization_loss(model)
        tensor(0.5000, grad_fn=<...>)
    """
    terms = [t for a in _attachments(_check_model(model, "regularization_loss")) if (t := a.loss()) is not None]
    if not terms:
        ref = next(model.parameters(), None)
        return torch.zeros((), device=ref.device if ref is not None else None)
    return torch.stack([t.to(terms[0].dtype) for t in terms]).sum() if len(terms) > 1 else terms[0]


@dataclass(frozen=True)
class RegularizerRow:
    """One attachment in :func:`list_regularizers`; ``handle.remove()`` detaches it."""

    kind: str
    what: str
    mode: str
    targets: tuple[str, ...]
    handle: RegularizationHandle = field(compare=False, repr=False)


class RegularizerTable(list[RegularizerRow]):
    """The rows of :func:`list_regularizers`; ``print`` it for a table."""

    def __str__(self) -> str:
        cells = [("kind", "what", "mode", "where")] + [
            (
                r.kind,
                r.what,
                r.mode,
                ", ".join(r.targets[:4]) + (f", ... ({len(r.targets)})" if len(r.targets) > 4 else ""),
            )
            for r in self
        ]
        widths = [max(len(c[i]) for c in cells) for i in range(4)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def list_regularizers(model: nn.Module) -> RegularizerTable:
    """What is attached to ``model`` and its sub-modules, and where.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import L2, attach_penalty, list_regularizers
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        >>> _ = attach_penalty(model, L2(1e-4), include="1.*")
        >>> print(list_regularizers(model))
        kind     what               mode  where
        penalty  L2(factor=0.0001)  loss  1.weight
    """
    _check_model(model, "list_regularizers")
    rows = RegularizerTable()
    for module in model.modules():
        own = _own(module)
        for a in own.items if own is not None else ():
            rows.append(RegularizerRow(a.kind, a.what, a.mode, tuple(a.targets), RegularizationHandle(module, a)))
    return rows
