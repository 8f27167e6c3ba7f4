"""The optimizer registry: one spec per optimizer, with what its signature accepts."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from blockzoo._registry import Registry

__all__ = ["OptimizerSpec", "get_optimizer_spec", "list_optimizers", "register_optimizer"]


@dataclass(frozen=True)
class OptimizerSpec:
    """What blockzoo knows about one optimizer class.

    Attributes:
        name: The registered name.
        cls: The optimizer class.
        description: One line about the algorithm.
        kwargs: Keyword arguments its constructor accepts (besides ``params``).
        has_foreach: It has a multi-tensor (``foreach``) implementation.
        has_fused: It has a fused implementation.
        requires_closure: ``step`` needs a closure (L-BFGS).
        sparse_gradients: It is meant for sparse gradients (SparseAdam).
        param_ndim: The only parameter rank it accepts (2 for Muon), or ``None``.

    Example:
        >>> from blockzoo.optim import get_optimizer_spec
        >>> spec = get_optimizer_spec("adamw")
        >>> spec.cls.__name__, spec.has_fused, "betas" in spec.kwargs
        ('AdamW', True, True)
    """

    name: str
    cls: type[torch.optim.Optimizer]
    description: str
    kwargs: tuple[str, ...] = field(default=())
    has_foreach: bool = False
    has_fused: bool = False
    requires_closure: bool = False
    sparse_gradients: bool = False
    param_ndim: int | None = None


_OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer", list_call="blockzoo.list_optimizers()")


def _summary(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else cls.__name__


def register_optimizer(
    name: str,
    cls: type[torch.optim.Optimizer],
    *,
    description: str | None = None,
    requires_closure: bool = False,
    sparse_gradients: bool = False,
    param_ndim: int | None = None,
) -> OptimizerSpec:
    """Register an optimizer class (a third-party one, say) under ``name``.

    The accepted keyword arguments and the ``foreach`` / ``fused`` support are
    read from the constructor's signature.

    Args:
        name: The new name; a taken name raises ``ValueError``.
        cls: A :class:`torch.optim.Optimizer` subclass.
        description: One line; the class docstring's first line by default.
        requires_closure: ``step`` needs a closure.
        sparse_gradients: The optimizer is meant for sparse gradients.
        param_ndim: The only parameter rank it accepts, if any.

    Returns:
        The new spec.

    Raises:
        TypeError: ``cls`` is not an optimizer class.

    Example:
        >>> import torch
        >>> from blockzoo.optim import register_optimizer, list_optimizers
        >>> class MySGD(torch.optim.SGD):
        ...     '''SGD with a house style.'''
        >>> register_optimizer("my_sgd_demo", MySGD).description
        'SGD with a house style'
    """
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise TypeError(f"cls must be a torch.optim.Optimizer subclass. Received: cls={cls!r}")
    params = inspect.signature(cls.__init__).parameters
    accepted = tuple(
        p for p, v in params.items() if p not in ("self", "params") and v.kind is not inspect.Parameter.VAR_KEYWORD
    )
    spec = OptimizerSpec(
        name=name,
        cls=cls,
        description=description or _summary(cls),
        kwargs=accepted,
        has_foreach="foreach" in params,
        has_fused="fused" in params,
        requires_closure=requires_closure,
        sparse_gradients=sparse_gradients,
        param_ndim=param_ndim,
    )
    _OPTIMIZERS.register(name, spec)
    return spec


def get_optimizer_spec(name: str) -> OptimizerSpec:
    """The spec registered under ``name``.

    Raises:
        UnknownNameError: with close matches.

    Example:
        >>> from blockzoo.optim import get_optimizer_spec
        >>> get_optimizer_spec("rmsprop").cls
        <class 'torch.optim.rmsprop.RMSprop'>
    """
    return _OPTIMIZERS.get(name)


def list_optimizers(include: str | Sequence[str] | None = "*", exclude: str | Sequence[str] | None = None) -> list[str]:
    """Sorted names of the registered optimizers, filtered by globs.

    Every optimizer the installed torch.optim has is registered.

    Example:
        >>> import blockzoo
        >>> blockzoo.list_optimizers("ada*")
        ['adadelta', 'adafactor', 'adagrad', 'adam', 'adamax', 'adamw']
    """
    return _OPTIMIZERS.list(include, exclude)


_TORCH_OPTIMIZERS = {
    "sgd": ("SGD", {}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "rmsprop": ("RMSprop", {}),
    "adagrad": ("Adagrad", {}),
    "adadelta": ("Adadelta", {}),
    "adamax": ("Adamax", {}),
    "nadam": ("NAdam", {}),
    "radam": ("RAdam", {}),
    "asgd": ("ASGD", {}),
    "rprop": ("Rprop", {}),
    "lbfgs": ("LBFGS", {"requires_closure": True}),
    "sparse_adam": ("SparseAdam", {"sparse_gradients": True}),
    "adafactor": ("Adafactor", {}),
    "muon": ("Muon", {"param_ndim": 2}),
}
for _name, (_cls_name, _extra) in _TORCH_OPTIMIZERS.items():
    _cls = getattr(torch.optim, _cls_name, None)
    if _cls is not None:  # Adafactor and Muon arrived in later torch releases
        register_optimizer(_name, _cls, **_extra)  # type: ignore[arg-type]
