"""What ``fit``'s options resolve to: the device, the optimizer, the schedule and its stepping, mixed precision."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import torch
from torch import nn
from torch.optim import lr_scheduler

from blockzoo._checks import check_choice, check_device
from blockzoo.optim import create_optimizer, create_scheduler

__all__ = [
    "OptimizerLike",
    "Schedule",
    "SchedulerLike",
    "autocast",
    "grad_scaler",
    "resolve_device",
    "resolve_optimizer",
    "resolve_scheduler",
]

#: An optimizer: a name for :func:`~blockzoo.create_optimizer`, a dict of its arguments, or an ``Optimizer``.
OptimizerLike: TypeAlias = "str | Mapping[str, Any] | torch.optim.Optimizer"
#: A schedule: a name for :func:`~blockzoo.create_scheduler`, a dict of its arguments, or a scheduler.
SchedulerLike: TypeAlias = "str | Mapping[str, Any] | lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau"

#: How each named schedule steps: per optimizer step where its length is counted in steps
#: (warm-up, cosine, one-cycle), per epoch where the convention counts epochs (step, multistep,
#: exponential: their step_size, milestones and gamma are per epoch) or reads a metric (plateau).
SCHEDULE_INTERVAL = {
    "constant": "step",
    "cosine": "step",
    "onecycle": "step",
    "step": "epoch",
    "multistep": "epoch",
    "exponential": "epoch",
    "plateau": "epoch",
}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: cuda, then mps, then cpu; anything else as ``torch.device`` reads it."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    chosen = check_device("device", device, auto=True)
    if chosen.type == "cuda" and (not torch.cuda.is_available() or (chosen.index or 0) >= torch.cuda.device_count()):
        found = f"{torch.cuda.device_count()} CUDA device(s)" if torch.cuda.is_available() else "no CUDA device"
        raise ValueError(f"device {str(chosen)!r} is not here: torch sees {found}. Received: device={device!r}")
    mps = getattr(torch.backends, "mps", None)
    if chosen.type == "mps" and not (mps is not None and mps.is_available()):
        raise ValueError(f"device 'mps' is not here: torch sees no Apple GPU. Received: device={device!r}")
    return chosen


def resolve_optimizer(
    optimizer: Any, model: nn.Module, *, lr: float, weight_decay: float
) -> tuple[torch.optim.Optimizer, bool]:
    """``(optimizer, built)``: ``built`` is True when fit made it (a name or a dict)."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer, False
    if isinstance(optimizer, str):
        return create_optimizer(model, optimizer, lr=lr, weight_decay=weight_decay), True
    if isinstance(optimizer, Mapping):
        options = {"lr": lr, "weight_decay": weight_decay, **optimizer}
        return create_optimizer(model, **options), True
    raise TypeError(
        "optimizer must be a name (see blockzoo.list_optimizers()), a dict of create_optimizer's arguments, "
        f"or a torch.optim.Optimizer. Received: optimizer={type(optimizer).__name__}"
    )


class Schedule:
    """A scheduler and when ``fit`` steps it: ``"step"`` (each optimizer step) or ``"epoch"``; plateau gets the monitored metric."""

    def __init__(self, scheduler: Any, interval: str) -> None:
        self.scheduler = scheduler
        self.interval = interval
        self.reads_metric = isinstance(scheduler, lr_scheduler.ReduceLROnPlateau)

    def after_step(self) -> None:
        """Called after each optimizer step."""
        if self.interval == "step":
            self.scheduler.step()

    def after_epoch(self, metric: float) -> None:
        """Called after each epoch's validation, with the monitored metric."""
        if self.interval != "epoch":
            return
        if self.reads_metric:
            self.scheduler.step(metric)
        else:
            self.scheduler.step()


def resolve_scheduler(
    scheduler: Any,
    optimizer: torch.optim.Optimizer,
    *,
    interval: str | None,
    epochs: int,
    steps_per_epoch: int,
    mode: str,
) -> Schedule | None:
    """The :class:`Schedule` for ``fit``'s ``scheduler`` (``None`` for none).

    A name or a dict goes to :func:`~blockzoo.create_scheduler`; ``fit`` gives
    ``total_steps`` (in optimizer steps, or in epochs for a per-epoch schedule)
    and, for ``plateau``, the monitor's ``mode``.
    """
    if interval is not None:
        check_choice("scheduler_interval", interval, ("step", "epoch"))
    if scheduler is None:
        return None
    if isinstance(scheduler, (lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau)):
        if scheduler.optimizer is not optimizer:
            raise ValueError(
                "the scheduler drives another optimizer than the one fit trains with; build it on the optimizer "
                "you pass as optimizer=, or pass its name (or a dict) and fit builds it. "
                f"Received: scheduler={type(scheduler).__name__}"
            )
        default = "step" if isinstance(scheduler, lr_scheduler.OneCycleLR) else "epoch"
        if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau) and interval == "step":
            raise ValueError(
                "a plateau schedule reads the epoch's metric: it steps per epoch. Received: scheduler_interval='step'"
            )
        return Schedule(scheduler, interval or default)
    if isinstance(scheduler, str):
        options: dict[str, Any] = {"name": scheduler}
    elif isinstance(scheduler, Mapping):
        options = dict(scheduler)
        if "name" not in options:
            raise ValueError(f"a scheduler dict needs a 'name'. Received: scheduler={scheduler!r}")
    else:
        raise TypeError(
            "scheduler must be a name (see blockzoo.list_schedulers()), a dict of create_scheduler's arguments, "
            f"or a torch.optim.lr_scheduler scheduler. Received: scheduler={type(scheduler).__name__}"
        )
    name = options.pop("name")
    from blockzoo.optim._schedulers import canonical_schedule

    known = SCHEDULE_INTERVAL.get(canonical_schedule(name), "epoch")
    chosen = interval or known
    if options.get("warmup_steps") and chosen == "epoch":
        raise ValueError(
            f"warmup_steps counts optimizer steps, and the {name!r} schedule steps per epoch (its sizes and "
            "milestones count epochs); warm up a per-step schedule (cosine, onecycle, constant), or pass "
            f"scheduler_interval='step' and give its sizes in steps. Received: warmup_steps={options['warmup_steps']}"
        )
    if canonical_schedule(name) == "plateau":
        if chosen == "step":
            raise ValueError(
                "a plateau schedule reads the epoch's metric: it steps per epoch. Received: scheduler_interval='step'"
            )
        options.setdefault("mode", mode)
    else:
        options.setdefault("total_steps", epochs * steps_per_epoch if chosen == "step" else epochs)
    return Schedule(create_scheduler(optimizer, name, **options), chosen)


def autocast(amp: str | None, device: torch.device) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A factory of the autocast context for ``amp`` (``None``, ``"bf16"``, ``"fp16"``)."""
    if amp is None:
        return contextlib.nullcontext
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"amp must be None, 'bf16' or 'fp16'. Received: amp={amp!r}")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def grad_scaler(amp: str | None, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for ``"fp16"`` (float16 gradients underflow without one); none otherwise."""
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None
