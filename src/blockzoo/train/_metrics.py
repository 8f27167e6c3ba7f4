"""Losses by name, metrics, and their running sums on the device (read once per epoch, not per step)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import torch
import torch.nn.functional as F
from torch import Tensor

from blockzoo._checks import check_number
from blockzoo._registry import Registry

__all__ = ["LossLike", "MetricState", "MetricsLike", "list_metrics", "resolve_loss", "resolve_metrics"]

LossFn: TypeAlias = Callable[[Tensor, Tensor], Tensor]
#: A loss: ``"cross_entropy"``, ``"nll"`` (for heads that end in ``LogSoftmax``), or ``fn(output, target) -> scalar``.
LossLike: TypeAlias = str | LossFn
MetricFn: TypeAlias = Callable[[Tensor, Tensor], Tensor]
#: Metrics: names (``"accuracy"``, ``"top5_accuracy"``), ``fn(output, target) -> batch mean``, or a dict of them by name.
MetricsLike: TypeAlias = Sequence[str | MetricFn] | Mapping[str, MetricFn]

_LOSSES: Registry[Callable[[float], LossFn]] = Registry("loss", list_call="the loss names 'cross_entropy' and 'nll'")


@_LOSSES.register("cross_entropy")
def _cross_entropy(label_smoothing: float) -> LossFn:
    return functools.partial(F.cross_entropy, label_smoothing=label_smoothing)


@_LOSSES.register("nll")
def _nll(label_smoothing: float) -> LossFn:
    if not label_smoothing:
        return F.nll_loss

    # torch's nll_loss has no label_smoothing; this is cross_entropy's smoothing
    # applied to log-probabilities: (1 - e) * NLL + e * mean over classes of -log p.
    def smoothed(log_probs: Tensor, target: Tensor) -> Tensor:
        nll = F.nll_loss(log_probs, target)
        uniform = -log_probs.mean(dim=1).mean()
        return (1 - label_smoothing) * nll + label_smoothing * uniform

    return smoothed


def resolve_loss(loss: LossLike, *, label_smoothing: float = 0.0) -> LossFn:
    """The loss function for ``loss``.

    Raises:
        UnknownNameError: an unknown name.
        TypeError: neither a name nor a callable.
        ValueError: ``label_smoothing`` outside [0, 1), or given with a callable loss.
    """
    label_smoothing = check_number("label_smoothing", label_smoothing, low=0, high=1, high_open=True)
    if isinstance(loss, str):
        return _LOSSES.get(loss)(label_smoothing)
    if not callable(loss):
        raise TypeError(
            f"loss must be 'cross_entropy', 'nll' or a callable (output, target) -> loss. Received: loss={loss!r}"
        )
    if label_smoothing:
        raise ValueError(
            "label_smoothing applies to the named losses only; smooth the targets in your own loss. "
            f"Received: label_smoothing={label_smoothing}"
        )
    return loss


def _correct(output: Tensor, target: Tensor, k: int) -> Tensor:
    """Samples whose true class is among the ``k`` highest outputs (soft targets: their argmax)."""
    if target.ndim == output.ndim:  # probabilities or one-hot, as mixup makes
        target = target.argmax(dim=1)
    if k == 1:
        return (output.argmax(dim=1) == target).sum()
    top = output.topk(min(k, output.shape[1]), dim=1).indices
    return (top == target.unsqueeze(1)).any(dim=1).sum()


_METRICS: Registry[MetricFn] = Registry("metric", list_call="blockzoo.train.list_metrics()")
_METRICS.register("accuracy", functools.partial(_correct, k=1))
_METRICS.register("top5_accuracy", functools.partial(_correct, k=5))


def list_metrics() -> list[str]:
    """The built-in metrics that ``metrics=`` takes by name (any callable works too).

    Example:
        >>> from blockzoo.train import list_metrics
        >>> list_metrics()
        ['accuracy', 'top5_accuracy']
    """
    return _METRICS.list()


def resolve_metrics(metrics: MetricsLike) -> dict[str, tuple[MetricFn, bool]]:
    """``name -> (fn, counts)``: ``counts`` is True for built-ins that return a count of correct samples."""
    if isinstance(metrics, Mapping):
        items: list[tuple[str, Any]] = list(metrics.items())
    elif isinstance(metrics, (str, bytes)) or not isinstance(metrics, Sequence):
        raise TypeError(
            "metrics must be a list of names ('accuracy', 'top5_accuracy') or callables, or a dict of them. "
            f"Received: metrics={metrics!r}"
        )
    else:
        items = [(m, m) if isinstance(m, str) else (getattr(m, "__name__", type(m).__name__), m) for m in metrics]
    resolved: dict[str, tuple[MetricFn, bool]] = {}
    for name, fn in items:
        if isinstance(fn, str):
            resolved[name] = (_METRICS.get(fn), True)  # an unknown name: UnknownNameError with close matches
        elif callable(fn):
            resolved[name] = (fn, False)
        else:
            raise TypeError(f"metric {name!r} must be a name or a callable. Received: {fn!r}")
        if name == "loss":
            raise ValueError(f"'loss' is always recorded; name the metric otherwise. Received: metrics={metrics!r}")
    return resolved


class MetricState:
    """Sums of the loss and each metric over an epoch, kept on the device.

    Nothing is read back per step: :meth:`compute` reads every sum at once.
    The sums are plain tensors, so processes can add them up
    (``torch.distributed.all_reduce``) before :meth:`compute`.
    """

    def __init__(self, metrics: dict[str, tuple[MetricFn, bool]], *, num_classes: int | None = None) -> None:
        self.metrics = metrics
        self.num_classes = num_classes
        self.sums: dict[str, Tensor] = {}
        self.count = 0
        self.confusion: Tensor | None = None

    def update(self, loss: Tensor | None, output: Tensor | None, target: Tensor | None, n: int) -> None:
        """Add a batch of ``n`` samples (the loss is its mean)."""
        self.count += n
        if loss is not None:
            self._add("loss", loss.detach().float() * n)
        if output is None or target is None:
            return
        output = output.detach()
        for name, (fn, counts) in self.metrics.items():
            value = fn(output, target)
            self._add(name, value.float() if counts else value.detach().float() * n)
        if self.num_classes is not None:
            self._add_confusion(output, target)

    def _add(self, name: str, value: Tensor) -> None:
        current = self.sums.get(name)
        self.sums[name] = value if current is None else current + value

    def _add_confusion(self, output: Tensor, target: Tensor) -> None:
        c = self.num_classes
        if c is None:
            return
        if target.ndim == output.ndim:
            target = target.argmax(dim=1)
        low, high = int(target.min()), int(target.max())  # evaluate only: a host sync per batch is fine there
        if low < 0 or high >= c:
            raise ValueError(
                f"confusion_matrix needs class indices in [0, {c}) for a model with {c} outputs. "
                f"Received: targets from {low} to {high}"
            )
        pairs = target.long() * c + output.argmax(dim=1)
        counts = torch.bincount(pairs.flatten(), minlength=c * c)[: c * c].reshape(c, c)
        self.confusion = counts if self.confusion is None else self.confusion + counts

    def compute(self) -> dict[str, float]:
        """The means over every sample so far (NaN for what was never given)."""
        if not self.sums or not self.count:
            return {}
        names = list(self.sums)
        values = torch.stack([self.sums[n].reshape(()).to(torch.float64) for n in names]).cpu().tolist()
        return {n: v / self.count for n, v in zip(names, values, strict=True)}

    def state_dict(self) -> dict[str, Any]:
        """The running sums, for a checkpoint in the middle of an epoch."""
        return {"count": self.count, "sums": {k: v.detach().cpu() for k, v in self.sums.items()}}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        """Restore :meth:`state_dict` onto ``device``."""
        self.count = int(state["count"])
        self.sums = {k: v.to(device) for k, v in state["sums"].items()}
