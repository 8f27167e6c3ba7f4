"""What is attached where: the attachment records, their handles, the loss and the listing."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from blockzoo._names import as_patterns, matches_any
from blockzoo.roles import Role, select

__all__ = [
    "Attachment",
    "RegularizationHandle",
    "RegularizerRow",
    "RegularizerTable",
    "attach",
    "grad_hook",
    "list_regularizers",
    "pick_modules",
    "pick_params",
    "regularization_loss",
]


@dataclass(eq=False)
class Attachment:
    """One thing attached to a model; ``undo`` puts everything back."""

    kind: str
    what: str
    mode: str
    targets: list[str]
    key: tuple[Any, ...]
    objects: list[object]  # the parameters or modules it acts on, for the duplicate check
    undo: Callable[[], None]
    loss: Callable[[], Tensor | None] | None = None
    advance: Callable[[], None] | None = None  # moves a schedule on by one step, after each loss


# Attachments by the module they were attached to; modules compare by identity, so a
# WeakKeyDictionary is safe here (it is not for tensors).
_ATTACHED: weakref.WeakKeyDictionary[nn.Module, list[Attachment]] = weakref.WeakKeyDictionary()


def _attachments(model: nn.Module) -> Iterator[Attachment]:
    for module in model.modules():
        yield from _ATTACHED.get(module, ())


class RegularizationHandle:
    """What an ``attach_*`` call returns: :meth:`remove` restores the exact previous behaviour.

    ``remove()`` is idempotent; the handle is also a context manager that
    removes on exit.

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
        if attachment is None:
            return
        attachment.undo()
        model = self._model()
        if model is not None:
            entries = _ATTACHED.get(model, [])
            if attachment in entries:
                entries.remove(attachment)

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


def grad_hook(param: Tensor, hook: Callable[[Tensor], None]) -> Callable[[], None]:
    """Run ``hook(param)`` each time a gradient is accumulated into ``param.grad``; returns the remover."""
    handle = param.register_post_accumulate_grad_hook(hook)  # type: ignore[no-untyped-call]
    return handle.remove  # type: ignore[no-any-return]


def attach(model: nn.Module, attachment: Attachment) -> RegularizationHandle:
    """Record ``attachment`` on ``model`` after refusing a second attachment of the same thing."""
    ids = {id(o) for o in attachment.objects}
    for entries in list(_ATTACHED.values()):
        for other in entries:
            shared = ids & {id(o) for o in other.objects}
            if other.key == attachment.key and shared:
                names = [t for t, o in zip(attachment.targets, attachment.objects, strict=False) if id(o) in shared]
                attachment.undo()  # the new attachment's hooks are already in place: take them out again
                raise ValueError(
                    f"{attachment.what} is already attached to {', '.join(names[:3])} "
                    f"({other.kind}, {other.what}); remove() the first handle, or attach it once"
                )
    _ATTACHED.setdefault(model, []).append(attachment)
    return RegularizationHandle(model, attachment)


def pick_params(
    model: nn.Module,
    *,
    roles: Role | str | Sequence[Role | str] | None,
    include: str | Sequence[str] | None,
    exclude: str | Sequence[str] | None,
    caller: str,
) -> list[tuple[str, nn.Parameter]]:
    """``select`` with errors instead of silent no-ops: every include glob must match, and something must be picked."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{caller}: model must be an nn.Module. Received: model={type(model).__name__}")
    names = [name for name, _ in model.named_parameters()]
    for pattern in as_patterns(include, "include"):
        if not any(matches_any(n, (pattern,)) for n in names):
            raise ValueError(
                f"{caller}: include={pattern!r} matches no parameter of {type(model).__name__} "
                f"(names look like {names[:3]}). Received: include={include!r}"
            )
    chosen = select(model, roles=roles, include=include, exclude=exclude)
    chosen = [(n, p) for n, p in chosen if p.requires_grad]
    if not chosen:
        raise ValueError(
            f"{caller}: roles={roles!r}, include={include!r}, exclude={exclude!r} pick no "
            f"trainable parameter of {type(model).__name__}"
        )
    return chosen


def pick_modules(model: nn.Module, include: str | Sequence[str] | None, *, caller: str) -> list[tuple[str, nn.Module]]:
    """Modules by name glob (``None``: the model itself); each glob must match."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{caller}: model must be an nn.Module. Received: model={type(model).__name__}")
    if include is None:
        return [("", model)]
    patterns = as_patterns(include, "include")
    modules = [(name, m) for name, m in model.named_modules() if name]
    for pattern in patterns:
        if not any(matches_any(name, (pattern,)) for name, _ in modules):
            raise ValueError(
                f"{caller}: include={pattern!r} matches no sub-module of {type(model).__name__} "
                f"(names look like {[n for n, _ in modules[:3]]}). Received: include={include!r}"
            )
    return [(name, m) for name, m in modules if matches_any(name, patterns)]


def regularization_loss(model: nn.Module) -> Tensor:
    """The differentiable sum of every loss-mode penalty and collected activity penalty attached to ``model``.

    Add it to the task loss before ``backward()``. Grad-mode penalties are not
    in it: they act on the gradients directly. Each call counts as one step for
    the schedules of the penalties it evaluates.

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
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module. Received: model={type(model).__name__}")
    terms: list[Tensor] = []
    for attachment in _attachments(model):
        if attachment.loss is not None:
            term = attachment.loss()
            if term is not None:
                terms.append(term)
    for attachment in _attachments(model):
        if attachment.advance is not None:
            attachment.advance()
    if not terms:
        ref = next(model.parameters(), None)
        return torch.zeros((), device=ref.device if ref is not None else None)
    return torch.stack([t.to(terms[0].dtype) for t in terms]).sum() if len(terms) > 1 else terms[0]


@dataclass(frozen=True)
class RegularizerRow:
    """One attachment in :func:`list_regularizers`."""

    kind: str
    what: str
    mode: str
    targets: tuple[str, ...]


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
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module. Received: model={type(model).__name__}")
    return RegularizerTable(RegularizerRow(a.kind, a.what, a.mode, tuple(a.targets)) for a in _attachments(model))
