"""find_lr: the learning-rate range test (Smith 2017), leaving the model, its optimizer and the RNGs as they were."""

from __future__ import annotations

import contextlib
import copy
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
from torch import Tensor, nn

from blockzoo._checks import check_int, check_module, check_number
from blockzoo._registry import Registry
from blockzoo.regularization import list_regularizers, regularization_loss
from blockzoo.regularization._store import attachments
from blockzoo.train._batches import Batches, call_model, check_data, seed_everything, split_parts, to_device
from blockzoo.train._checkpoint import capture_rng, restore_rng
from blockzoo.train._history import new_figure
from blockzoo.train._metrics import LossLike, resolve_loss
from blockzoo.train._setup import resolve_device, resolve_optimizer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["LRFinderResult", "RuleFn", "SuggestionLike", "find_lr"]

#: A suggestion rule: ``rule(lrs, smoothed_losses) -> lr``, given at least two points.
RuleFn: TypeAlias = Callable[[Sequence[float], Sequence[float]], float]
#: A rule's name (``"steepest"``, ``"minimum"``, ``"valley"``) or a :data:`RuleFn`.
SuggestionLike: TypeAlias = "str | RuleFn"

#: Non-finite losses in a row that end the test (one alone is skipped: a bad batch, not divergence).
_NON_FINITE_PATIENCE = 3

_RULES: Registry[RuleFn] = Registry("suggestion rule", list_call="find_lr's documentation")


@_RULES.register("steepest")
def _steepest(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """The lr where the smoothed loss falls fastest against log(lr), at or before its lowest point."""
    loss = torch.tensor(smoothed, dtype=torch.float64)
    log_lr = torch.tensor(lrs, dtype=torch.float64).log()
    # central differences inside, one-sided at the ends; the spacing is uneven where NaN steps were skipped
    (slope,) = torch.gradient(loss, spacing=(log_lr,))
    lowest = int(loss.argmin())
    return lrs[int(slope[: lowest + 1].argmin())]


@_RULES.register("minimum")
def _minimum(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """A tenth of the lr at the lowest smoothed loss: the loss still falls well there."""
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    return lrs[lowest] / 10


@_RULES.register("valley")
def _valley(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """Two thirds of the way along the longest run of steps over which the smoothed loss keeps falling."""
    best_start, best_length, start = 0, 0, 0
    for i in range(1, len(smoothed)):
        if smoothed[i] >= smoothed[i - 1]:
            start = i
        elif i - start > best_length:
            best_start, best_length = start, i - start
    return lrs[best_start + 2 * best_length // 3]


def _resolve_rule(suggestion: Any) -> tuple[str, RuleFn]:
    if isinstance(suggestion, str):
        return suggestion, _RULES.get(suggestion)
    if callable(suggestion):
        return str(getattr(suggestion, "__name__", type(suggestion).__name__)), suggestion
    raise TypeError(
        "suggestion must be 'steepest', 'minimum', 'valley' or a callable (lrs, smoothed_losses) -> lr. "
        f"Received: suggestion={suggestion!r}"
    )


@dataclass(frozen=True, repr=False)
class LRFinderResult:
    """The curve that :func:`find_lr` measured, and the learning rate it suggests.

    Attributes:
        lrs: The learning rate of each recorded step (steps whose loss was NaN or infinite are left out).
        losses: The loss of each recorded step's batch.
        smoothed: ``losses`` smoothed by an exponential moving average (bias-corrected).
        suggestion: The learning rate that ``rule`` picks from the curve (NaN when fewer than two steps were recorded).
        rule: The rule's name.

    Example:
        >>> from blockzoo.train import LRFinderResult
        >>> result = LRFinderResult((1e-4, 1e-3, 1e-2), (2.3, 1.9, 4.0), (2.3, 2.1, 2.8), 1e-3, "steepest")
        >>> result
        LRFinderResult(steps=3, suggestion=0.001, rule='steepest')
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggestion: float
    rule: str

    def __repr__(self) -> str:
        return f"LRFinderResult(steps={len(self.lrs)}, suggestion={self.suggestion:.3g}, rule={self.rule!r})"

    def plot(self, path: str | os.PathLike[str] | None = None) -> Figure:
        """The loss against the learning rate (log scale), raw and smoothed, with the suggestion marked.

        Args:
            path: Where to save the figure (any format matplotlib writes); ``None`` to only return it.

        Returns:
            The matplotlib ``Figure``.

        Raises:
            ImportError: matplotlib is missing (it comes with ``blockzoo[train]``).
        """
        figure = new_figure("LRFinderResult.plot", (5.5, 3.8))
        ax = figure.subplots()
        ax.plot(self.lrs, self.losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="loss")
        ax.plot(self.lrs, self.smoothed, color="tab:blue", label="smoothed loss")
        if math.isfinite(self.suggestion):
            ax.axvline(self.suggestion, color="tab:red", linestyle="--", label=f"{self.rule}: {self.suggestion:.2e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
        if path is not None:
            figure.savefig(path, dpi=120)
        return figure


def find_lr(
    model: nn.Module,
    data: Any,
    *,
    optimizer: Any = "adamw",
    loss: LossLike = "cross_entropy",
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    batch_size: int = 64,
    smooth: float = 0.05,
    diverge: float = 4.0,
    suggestion: SuggestionLike = "steepest",
    device: str | torch.device | None = None,
    seed: int | None = None,
) -> LRFinderResult:
    """The learning-rate range test: train briefly while the lr grows, and read a good lr off the loss curve.

    The lr grows exponentially from ``start_lr`` to ``end_lr`` over ``num_steps``
    optimizer steps (Smith 2017, "Cyclical Learning Rates for Training Neural
    Networks"; fastai's ``lr_find``), one training batch each, going round the
    data again when it has fewer batches. Each step's loss is recorded, raw and
    smoothed by an exponential moving average with weight ``smooth`` on the new
    value (bias-corrected, as Adam corrects its moments). The test stops early
    once the smoothed loss exceeds ``diverge`` times the lowest smoothed loss so
    far. A step whose loss is NaN or infinite is left out of the curve and
    takes no optimizer step; three in a row end the test.

    The suggestion comes from a named rule applied to the smoothed curve:

    * ``"steepest"``: the lr where the loss falls fastest against log(lr),
      looking at the points up to the lowest loss (central differences).
    * ``"minimum"``: a tenth of the lr at the lowest loss.
    * ``"valley"``: the longest run of steps over which the loss keeps
      falling, and the lr two thirds of the way along it.

    A callable ``rule(lrs, smoothed_losses) -> lr`` may take their place.

    Afterwards everything is as it was, so the training that follows is the
    same as without the test: the model's parameters, their gradients and its
    buffers (batch-norm statistics and ``num_batches_tracked`` included), every
    sub-module's train/eval mode, the state of an optimizer you passed (and of
    any schedule its steps drive), the step counts of attached regularizers,
    and the torch, CUDA, Python and numpy RNG states. A model moved to
    ``device`` for the test is moved back.

    Args:
        model: The model to train (attached loss penalties are added to the loss, as :func:`fit` does).
        data: An ``(inputs, targets)`` pair of tensors, a ``Dataset``, a
            ``DataLoader`` or a :func:`~blockzoo.data.digits` split (its training part).
        optimizer: A name for :func:`~blockzoo.create_optimizer`, a dict of its
            arguments, or an ``Optimizer``. Each parameter group keeps its ratio
            to the optimizer's base lr (``lr_multipliers`` and ``layer_decay``
            carry over); the curve's lr is the base lr, the value to give
            :func:`fit` as ``lr``.
        loss: ``"cross_entropy"``, ``"nll"`` or ``fn(output, target) -> loss``.
        start_lr: The first lr.
        end_lr: The last lr, greater than ``start_lr``.
        num_steps: Optimizer steps from ``start_lr`` to ``end_lr`` (at least 2).
        batch_size: Samples per batch (a ``DataLoader`` keeps its own).
        smooth: The weight of each new loss in the moving average, in (0, 1]; 1 is no smoothing.
        diverge: Stop once the smoothed loss exceeds this many times its lowest
            value (> 1; ``math.inf`` never stops early). It assumes a positive loss.
        suggestion: ``"steepest"``, ``"minimum"``, ``"valley"``, or a callable rule.
        device: Where to run; ``None`` for where the model is.
        seed: Seed the order of the batches and the RNGs during the test (they are restored after).

    Returns:
        An :class:`LRFinderResult`; ``result.plot()`` draws the curve.

    Raises:
        ValueError, TypeError: a bad argument, named with what was received.
        UnknownNameError: an unknown rule, optimizer or loss name.

    Warns:
        RuntimeWarning: fewer than two steps had a finite loss, so there is no
        suggestion (it is NaN).

    Example:
        >>> from blockzoo import create_model
        >>> from blockzoo.data import digits
        >>> from blockzoo.train import find_lr
        >>> model = create_model("simple_cnn", in_channels=1, img_size=8)
        >>> result = find_lr(model, digits(images=True), num_steps=30, seed=0)
        >>> result.rule, len(result.lrs) > 0, result.lrs[0]
        ('steepest', True, 1e-07)
    """
    check_module("model", model)
    start_lr = check_number("start_lr", start_lr, low=0, low_open=True)
    end_lr = check_number("end_lr", end_lr, low=0, low_open=True)
    if end_lr <= start_lr:
        raise ValueError(f"end_lr must be greater than start_lr ({start_lr:g}). Received: end_lr={end_lr!r}")
    num_steps = check_int("num_steps", num_steps, low=2)
    batch_size = check_int("batch_size", batch_size, low=1)
    smooth = check_number("smooth", smooth, low=0, high=1, low_open=True)
    diverge = check_number("diverge", diverge, low=1, low_open=True, allow_inf=True)
    seed = check_int("seed", seed, low=0, allow_none=True)
    rule_name, rule = _resolve_rule(suggestion)
    loss_fn = resolve_loss(loss)
    data = check_data(split_parts(data, None)[0], "data")
    chosen = None if device is None else resolve_device(device)
    given = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
    with _put_back(model, given, chosen) as run_device:
        if seed is not None:
            seed_everything(seed)
        sampler_seed = seed if seed is not None else int(torch.randint(0, 2**62, ()).item())
        batches = _cycle(Batches(data, batch_size=batch_size, shuffle=True, seed=sampler_seed))
        built, _ = resolve_optimizer(optimizer, model, lr=start_lr, weight_decay=0.0)
        schedule = [start_lr * (end_lr / start_lr) ** (i / (num_steps - 1)) for i in range(num_steps)]
        steps = zip(schedule, batches, strict=False)  # the batches never end: the schedule does
        lrs, losses, smoothed = _run(model, built, loss_fn, steps, run_device, smooth=smooth, diverge=diverge)
    return LRFinderResult(lrs, losses, smoothed, _suggest(rule, lrs, smoothed), rule_name)


_Curve: TypeAlias = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]


def _run(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], Tensor],
    steps: Iterator[tuple[float, Any]],
    device: torch.device,
    *,
    smooth: float,
    diverge: float,
) -> _Curve:
    """Train one batch per ``(lr, batch)`` of ``steps``; the recorded ``(lrs, losses, smoothed)``."""
    scales = _group_scales(optimizer)
    penalties = any(row.kind != "optimizer" for row in list_regularizers(model))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average, lowest, non_finite = 0.0, math.inf, 0
    model.train()
    optimizer.zero_grad(set_to_none=True)
    for lr, batch in steps:
        for group, scale in zip(optimizer.param_groups, scales, strict=True):
            group["lr"] = lr * scale
        batch = to_device(batch, device)
        step_loss = loss_fn(call_model(model, batch[0]), batch[1])
        value = float(step_loss.detach())  # read every step: the curve and the stopping rule need it
        if not math.isfinite(value):  # no backward, no step: the weights stay finite
            non_finite += 1
            if non_finite == _NON_FINITE_PATIENCE:
                break
            continue
        non_finite = 0
        (step_loss + regularization_loss(model) if penalties else step_loss).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        average = (1 - smooth) * average + smooth * value
        lrs.append(lr)
        losses.append(value)
        smoothed.append(average / (1 - (1 - smooth) ** len(losses)))
        lowest = min(lowest, smoothed[-1])
        if smoothed[-1] > diverge * lowest:
            break
    return tuple(lrs), tuple(losses), tuple(smoothed)


def _group_scales(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's lr over the optimizer's base lr (its ``defaults["lr"]``, else the first group's)."""
    groups = [float(g["lr"]) for g in optimizer.param_groups]
    base = optimizer.defaults.get("lr")
    base = float(base) if isinstance(base, (int, float, Tensor)) and float(base) > 0 else groups[0]
    return [g / base if base > 0 else 1.0 for g in groups]


def _cycle(batches: Batches) -> Iterator[Any]:
    """The batches of epoch 0, 1, 2, ... without end."""
    epoch = 0
    while True:
        empty = True
        for batch in batches.epoch(epoch):
            empty = False
            yield batch
        if empty:
            raise ValueError("data: gives no batch. Received: an empty data source")
        epoch += 1


def _suggest(rule: RuleFn, lrs: tuple[float, ...], smoothed: tuple[float, ...]) -> float:
    if len(lrs) < 2:
        warnings.warn(
            f"find_lr recorded {len(lrs)} step(s) with a finite loss, too few for a suggestion (it is NaN): "
            "the loss was NaN or infinite from the start. Check the data and the model, or lower start_lr.",
            RuntimeWarning,
            stacklevel=3,
        )
        return math.nan
    return float(rule(lrs, smoothed))


@contextlib.contextmanager
def _put_back(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, device: torch.device | None
) -> Iterator[torch.device]:
    """Run the body on ``device`` (``None``: where the model is), then put everything it changes back."""
    first = next(model.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    rng = capture_rng(device if device is not None else home)
    modes = [(m, m.training) for m in model.modules()]
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    grads = {name: None if p.grad is None else p.grad.detach().clone() for name, p in model.named_parameters()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    steps = [(a, a.step) for a in attachments(model)]
    optimizer_state = None if optimizer is None else copy.deepcopy(optimizer.state_dict())
    moved = device is not None and device != home
    try:
        if moved:
            model.to(device)
            if optimizer is not None and optimizer_state is not None:
                # load_state_dict casts the optimizer's state to where the parameters now are
                optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        yield device if device is not None else home
    finally:
        if moved:
            model.to(home)
        with torch.no_grad():  # by name: moving the model back replaced its buffer tensors
            for name, p in model.named_parameters():
                p.copy_(params[name])
                p.grad = grads[name]
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        for module, training in modes:  # the flag itself: train() recurses, and some modules override it
            module.training = training
        for attachment, step in steps:
            attachment.step = step
        if optimizer is not None and optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        restore_rng(rng)
