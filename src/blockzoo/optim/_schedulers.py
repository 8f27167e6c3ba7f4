"""create_scheduler: torch.optim.lr_scheduler by name, with linear warm-up."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import lr_scheduler

from blockzoo._checks import check_int, is_int
from blockzoo._names import GlobsLike, reject_unknown_keywords
from blockzoo._registry import Registry

__all__ = ["canonical_schedule", "create_scheduler", "list_schedulers"]

Scheduler = lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau
_Builder = Callable[..., Scheduler]

# name -> (scheduler class, builder(optimizer, steps, **kwargs)); the class's
# signature is what user keywords are checked against.
_SCHEDULERS: Registry[tuple[Callable[..., Any], _Builder]] = Registry(
    "scheduler", list_call="blockzoo.list_schedulers()"
)


def _needs_steps(name: str, steps: int | None) -> int:
    if steps is None:
        raise ValueError(
            f"the {name!r} schedule needs total_steps (the steps after any warm-up). Received: total_steps=None"
        )
    return steps


_SCHEDULERS.register(
    "constant",
    (lr_scheduler.ConstantLR, lambda opt, steps, **kw: lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0, **kw)),
)
_SCHEDULERS.register("step", (lr_scheduler.StepLR, lambda opt, steps, **kw: lr_scheduler.StepLR(opt, **kw)))
_SCHEDULERS.register(
    "multistep", (lr_scheduler.MultiStepLR, lambda opt, steps, **kw: lr_scheduler.MultiStepLR(opt, **kw))
)
_SCHEDULERS.register(
    "exponential", (lr_scheduler.ExponentialLR, lambda opt, steps, **kw: lr_scheduler.ExponentialLR(opt, **kw))
)
_SCHEDULERS.register(
    "cosine",
    (
        lr_scheduler.CosineAnnealingLR,
        lambda opt, steps, **kw: lr_scheduler.CosineAnnealingLR(opt, T_max=_needs_steps("cosine", steps), **kw),
    ),
)
_SCHEDULERS.register(
    "onecycle",
    (
        lr_scheduler.OneCycleLR,
        # max_lr per group keeps lr multipliers and layer decay
        lambda opt, steps, **kw: lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=_needs_steps("onecycle", steps), **kw
        ),
    ),
    aliases=("one_cycle",),
)
_SCHEDULERS.register(
    "plateau", (lr_scheduler.ReduceLROnPlateau, lambda opt, steps, **kw: lr_scheduler.ReduceLROnPlateau(opt, **kw))
)
_SET_BY_US = {"constant": {"factor", "total_iters"}, "cosine": {"T_max"}, "onecycle": {"max_lr", "total_steps"}}


def list_schedulers(include: GlobsLike = "*", exclude: GlobsLike = None) -> list[str]:
    """Sorted names of the learning-rate schedules :func:`create_scheduler` builds.

    Example:
        >>> import blockzoo
        >>> blockzoo.list_schedulers()
        ['constant', 'cosine', 'exponential', 'multistep', 'onecycle', 'plateau', 'step']
    """
    return _SCHEDULERS.list(include, exclude)


def canonical_schedule(name: str) -> str:
    """The registered name of a schedule name or alias (``"one_cycle"`` is ``"onecycle"``); unknown names raise."""
    return _SCHEDULERS.canonical(name)


def create_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    warmup_steps: int = 0,
    total_steps: int | None = None,
    **kwargs: Any,
) -> Scheduler:
    """Build a ``torch.optim.lr_scheduler`` schedule by name, with optional linear warm-up.

    ``total_steps`` counts every step, warm-up included; ``cosine`` and
    ``onecycle`` need it. With ``warmup_steps``, the lr rises linearly from
    ``lr / (warmup_steps + 1)`` to ``lr`` over the warm-up, then the named
    schedule runs (``torch.optim.lr_scheduler.SequentialLR``). Every group's lr
    follows the schedule, so lr multipliers and layer decay keep their ratios.
    A config dict works too: ``create_scheduler(opt, **{"name": "cosine", "total_steps": 100})``.

    Args:
        optimizer: The optimizer.
        name: A name from :func:`list_schedulers`.
        warmup_steps: Steps of linear warm-up (0 for none).
        total_steps: All the steps of training.
        **kwargs: Passed to the scheduler class; checked against its signature.

    Returns:
        The scheduler; call ``step()`` once per optimizer step
        (``step(metric)`` for ``plateau``).

    Raises:
        UnknownNameError: ``name`` is not registered.
        TypeError: a keyword the scheduler does not take.
        ValueError: missing ``total_steps`` or a keyword the scheduler needs
            (``gamma`` for ``exponential``), bad ``warmup_steps``, or warm-up
            with ``plateau`` or ``onecycle`` (which has its own, ``pct_start``).

    Example:
        >>> import torch
        >>> from blockzoo import create_scheduler
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = create_scheduler(opt, "cosine", warmup_steps=3, total_steps=10)
        >>> lrs = []
        >>> for _ in range(10):
        ...     lrs.append(round(opt.param_groups[0]["lr"], 3))
        ...     opt.step()
        ...     sched.step()
        >>> lrs
        [0.25, 0.5, 0.75, 1.0, 0.95, 0.812, 0.611, 0.389, 0.188, 0.05]
    """
    cls, build = _SCHEDULERS.get(name)
    name = _SCHEDULERS.canonical(name)
    warmup_steps = check_int("warmup_steps", warmup_steps, low=0)
    if total_steps is not None and (not is_int(total_steps) or total_steps <= warmup_steps):
        raise ValueError(
            f"total_steps must be an int greater than warmup_steps ({warmup_steps}). Received: total_steps={total_steps!r}"
        )
    parameters = inspect.signature(cls).parameters
    accepted = [p for p in parameters if p not in ("optimizer", "last_epoch", "verbose")]
    accepted = [p for p in accepted if p not in _SET_BY_US.get(name, set())]
    owner = f"the {name!r} schedule ({getattr(cls, '__name__', cls)})"
    reject_unknown_keywords(kwargs, accepted, owner=owner)
    needed = [p for p in accepted if parameters[p].default is inspect.Parameter.empty and p not in kwargs]
    if needed:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no keywords"
        raise ValueError(
            f"{owner} needs {' and '.join(needed)}, e.g. create_scheduler(opt, {name!r}, "
            f"{', '.join(f'{p}=...' for p in needed)}). Received: {given}"
        )
    if warmup_steps and name in ("plateau", "onecycle"):
        why = "it reacts to a metric" if name == "plateau" else "it warms up by itself (pct_start)"
        raise ValueError(f"the {name!r} schedule takes no warmup_steps: {why}. Received: warmup_steps={warmup_steps}")
    main_steps = None if total_steps is None else total_steps - warmup_steps
    main = build(optimizer, main_steps, **kwargs)
    if not warmup_steps:
        return main
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup_steps + 1), total_iters=warmup_steps)
    return lr_scheduler.SequentialLR(optimizer, schedulers=[warmup, main], milestones=[warmup_steps])
