"""Where attachments live (on the model), their handles, the loss, the step and the listing.

Everything an ``attach_*`` call adds is an :class:`Attachment` object kept in a
plain attribute of the module it was attached to (``model.blockzoo_regularizers``),
as torch keeps hooks on their module and Keras keeps losses on their layer.
Hooks are bound methods of their attachment, so ``copy.deepcopy`` and
``pickle`` carry them and point the copy's hooks at the copy's parameters.
Gradient hooks on parameters are the one thing a copy of a tensor does not
carry; each attachment puts them back on the copy (:meth:`Attachment.install`).
An optimizer binding (``_stepping.py``) holds the original's optimizer and is
not copied.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from blockzoo._checks import check_module
from blockzoo._names import GlobsLike, as_patterns, check_globs_match, matches_any
from blockzoo.roles import RolesLike, select

__all__ = [
    "ATTRIBUTE",
    "Attachment",
    "RegularizationHandle",
    "RegularizerRow",
    "RegularizerTable",
    "attach",
    "attachments",
    "list_regularizers",
    "pick_modules",
    "pick_params",
    "regularization_loss",
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
    #: Whether a copy of the model gets a copy of it (an optimizer binding does not).
    copied = True
    #: Whether it goes by itself once it is all that is attached (a binding made for a constraint).
    goes_when_alone = False

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
        return {"items": [a for a in self.items if a.copied]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _own(module: nn.Module) -> _Attachments | None:
    found = getattr(module, ATTRIBUTE, None)
    return found if isinstance(found, _Attachments) else None


def attachments(model: nn.Module) -> Iterator[Attachment]:
    seen: set[int] = set()
    for module in model.modules():
        own = _own(module)
        for attachment in own.items if own is not None else ():
            if id(attachment) not in seen:
                seen.add(id(attachment))
                yield attachment


class RegularizationHandle:
    """What an ``attach_*`` call returns: :meth:`~RegularizationHandle.remove` restores the exact previous behaviour.

    ``remove()`` is idempotent; the handle is also a context manager that
    removes on exit. It acts on the model it came from: a copy of the model
    keeps its own attachments (``list_regularizers(copy)`` has their handles).

    Attributes:
        kind: What was attached (``"penalty"``, ``"constraint"``, ...).
        targets: The qualified names of the parameters (or modules) it acts on.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import L2, attach_penalty, list_regularizers
        >>> model = torch.nn.Linear(4, 2)
        >>> handle = attach_penalty(model, L2(1e-4))
        >>> handle, handle.targets
        (RegularizationHandle(penalty, 1 targets), ['weight'])
        >>> handle.remove()
        >>> handle.removed, len(list_regularizers(model))
        (True, 0)
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
            if all(a.goes_when_alone for a in own.items):
                for leftover in own.items:
                    leftover.undo()
                own.items.clear()

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
    for other in attachments(model):
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


def pick_params(
    model: nn.Module, *, roles: RolesLike, include: GlobsLike, exclude: GlobsLike, caller: str
) -> list[tuple[str, nn.Parameter]]:
    """The trainable parameters that :func:`~blockzoo.select` picks (strict globs); picking none is an error."""
    check_module("model", model, caller=caller)
    chosen = [(n, p) for n, p in select(model, roles=roles, include=include, exclude=exclude) if p.requires_grad]
    if not chosen:
        raise ValueError(
            f"{caller}: roles={roles!r}, include={include!r}, exclude={exclude!r} pick no "
            f"trainable parameter of {type(model).__name__}"
        )
    return chosen


def pick_modules(model: nn.Module, include: GlobsLike, *, caller: str) -> list[tuple[str, nn.Module]]:
    """Modules by name glob (``None``: the model itself); each glob must match, as in :func:`~blockzoo.select`."""
    check_module("model", model, caller=caller)
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
    terms = [
        t
        for a in attachments(check_module("model", model, caller="regularization_loss"))
        if (t := a.loss()) is not None
    ]
    if not terms:
        ref = next(model.parameters(), None)
        return torch.zeros((), device=ref.device if ref is not None else None)
    return torch.stack([t.to(terms[0].dtype) for t in terms]).sum() if len(terms) > 1 else terms[0]


@dataclass(frozen=True)
class RegularizerRow:
    """One attachment in :func:`list_regularizers`; ``handle.remove()`` detaches it.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import L1, attach_penalty, list_regularizers
        >>> model = torch.nn.Linear(4, 2)
        >>> _ = attach_penalty(model, L1(1e-3), mode="grad")
        >>> row = list_regularizers(model)[0]
        >>> row.kind, row.what, row.mode, row.targets
        ('penalty', 'L1(factor=0.001)', 'grad', ('weight',))
    """

    kind: str
    what: str
    mode: str
    targets: tuple[str, ...]
    handle: RegularizationHandle = field(compare=False, repr=False)


class RegularizerTable(list[RegularizerRow]):
    """The rows of :func:`list_regularizers`; ``print`` it for a table.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import MaxNorm, attach_constraint, list_regularizers
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        >>> _ = attach_constraint(model, MaxNorm(2.0), mode="parametrize")
        >>> table = list_regularizers(model)
        >>> len(table), table[0].kind
        (1, 'constraint')
        >>> print(table)
        kind        what                  mode         where
        constraint  MaxNorm(max_value=2)  parametrize  0.weight, 1.weight
    """

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
    check_module("model", model, caller="list_regularizers")
    rows = RegularizerTable()
    for module in model.modules():
        own = _own(module)
        for a in own.items if own is not None else ():
            rows.append(RegularizerRow(a.kind, a.what, a.mode, tuple(a.targets), RegularizationHandle(module, a)))
    return rows
