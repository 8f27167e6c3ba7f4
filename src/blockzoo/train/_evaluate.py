"""evaluate and predict: a model over a data set, in eval mode, without gradients."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from blockzoo._checks import check_int
from blockzoo.train._batches import Batches, call_model, check_data, split_parts, to_device
from blockzoo.train._metrics import LossLike, MetricsLike, MetricState, resolve_loss, resolve_metrics
from blockzoo.train._setup import autocast, resolve_device

__all__ = ["Evaluation", "evaluate", "predict"]


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured.

    Attributes:
        loss: The mean loss.
        accuracy: The share of samples whose top output is their class (NaN without the ``"accuracy"`` metric).
        metrics: Every metric by name, the loss included.
        samples: How many samples were seen.
        confusion_matrix: ``[classes, classes]`` counts, rows the true class and columns the predicted one, when asked for.
        classes: Class names for printing, when known.

    Example:
        >>> import torch
        >>> from blockzoo.train import evaluate
        >>> x, y = torch.eye(3), torch.tensor([0, 1, 1])
        >>> print(evaluate(torch.nn.Identity(), (x, y), confusion_matrix=True))
        loss 0.8848 | accuracy 66.67% | 3 samples
        confusion matrix (rows: true class, columns: predicted class)
          0 1 2
        0 1 0 0
        1 0 1 1
        2 0 0 0
    """

    loss: float
    accuracy: float
    metrics: dict[str, float]
    samples: int
    confusion_matrix: Tensor | None = None
    classes: Sequence[str] | None = field(default=None, repr=False)

    def __str__(self) -> str:
        lines = [f"loss {self.loss:.4f}"]
        if not math.isnan(self.accuracy):
            lines[0] += f" | accuracy {100 * self.accuracy:.2f}%"
        lines[0] += f" | {self.samples} samples"
        lines += [f"{k} {v:.4f}" for k, v in self.metrics.items() if k not in ("loss", "accuracy")]
        if self.confusion_matrix is not None:
            lines.append("confusion matrix (rows: true class, columns: predicted class)")
            lines.append(_matrix_table(self.confusion_matrix, self.classes))
        return "\n".join(lines)


def _matrix_table(matrix: Tensor, classes: Sequence[str] | None) -> str:
    n = matrix.shape[0]
    names = [str(c) for c in classes] if classes is not None and len(classes) == n else [str(i) for i in range(n)]
    cells = [[str(v) for v in row] for row in matrix.tolist()]
    width = max(len(s) for s in [*names, *(c for row in cells for c in row)])
    header = " " * (width + 1) + " ".join(name.rjust(width) for name in names)
    rows = [names[i].rjust(width) + " " + " ".join(c.rjust(width) for c in cells[i]) for i in range(n)]
    return "\n".join([header, *rows])


def _model_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        chosen = resolve_device(device)
        model.to(chosen)
        return chosen
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _batches(data: Any, batch_size: int, name: str) -> Batches:
    _, data = split_parts(None, data) if not isinstance(data, Tensor) else (None, (data,))
    return Batches(check_data(data, name), batch_size=batch_size, shuffle=False, seed=0)


def _outputs(model: nn.Module, batches: Iterator[Any], device: torch.device, amp: str | None) -> Iterator[Any]:
    """``(batch, output)`` for every batch, in eval mode without gradients; the mode is restored after."""
    was_training = model.training
    model.eval()
    context = autocast(amp, device)
    try:
        with torch.no_grad():
            for batch in batches:
                batch = to_device(batch, device)
                inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
                with context():
                    output = call_model(model, inputs)
                yield batch, output
    finally:
        model.train(was_training)


def _target(batch: Any, data: Any) -> Tensor:
    """The targets of an ``(inputs, targets)`` batch; a clear error for inputs alone."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[1], Tensor):
        return batch[1]
    raise ValueError(
        "evaluate: data must give (inputs, targets) pairs (predict takes inputs alone). "
        f"Received: data={type(data).__name__} giving batches of {_describe(batch)}"
    )


def _describe(batch: Any) -> str:
    if isinstance(batch, (tuple, list)):
        return f"{len(batch)} element(s)"
    return type(batch).__name__


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    loss: LossLike = "cross_entropy",
    metrics: MetricsLike = ("accuracy",),
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: str | None = None,
    confusion_matrix: bool = False,
) -> Evaluation:
    """The loss and metrics of ``model`` on ``data`` (and the confusion matrix on request).

    The model runs in eval mode without gradients, and its mode is put back after.

    Args:
        model: A classifier.
        data: An ``(inputs, targets)`` pair of tensors, a ``Dataset`` of such
            pairs, a ``DataLoader``, or a :func:`~blockzoo.data.digits` split
            (its validation part).
        loss: ``"cross_entropy"``, ``"nll"`` or a callable ``(output, target) -> loss``.
        metrics: Metric names or callables, as for :func:`fit`.
        batch_size: Samples per batch (not for a ``DataLoader``).
        device: Where to run; ``None`` for where the model is (another device moves the model).
        amp: ``None``, ``"bf16"`` or ``"fp16"`` autocast.
        confusion_matrix: Count every (true class, predicted class) pair.

    Returns:
        An :class:`Evaluation`; ``print`` it for a report.

    Example:
        >>> import torch
        >>> from blockzoo.train import evaluate
        >>> model = torch.nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.eye(2)), model.bias.zero_()
        >>> x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1])
        >>> result = evaluate(model, (x, y), confusion_matrix=True)
        >>> round(result.accuracy, 3), result.confusion_matrix.tolist()
        (0.667, [[1, 0], [1, 1]])
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    loss_fn = resolve_loss(loss)
    state = MetricState(resolve_metrics(metrics))
    chosen = _model_device(model, device)
    for batch, output in _outputs(model, _batches(data, batch_size, "data").epoch(0), chosen, amp):
        target = _target(batch, data)
        if confusion_matrix and state.num_classes is None:
            state.num_classes = output.shape[1]
        state.update(loss_fn(output.float(), target), output, target, len(target))
    values = state.compute()
    classes = getattr(data.dataset if isinstance(data, DataLoader) else data, "classes", None)
    return Evaluation(
        loss=values.get("loss", math.nan),
        accuracy=values.get("accuracy", math.nan),
        metrics=values,
        samples=state.count,
        confusion_matrix=None if state.confusion is None else state.confusion.cpu(),
        classes=classes if isinstance(classes, (list, tuple)) else None,
    )


def predict(
    model: nn.Module,
    data: Tensor | tuple[Tensor, ...] | Dataset[Any] | DataLoader[Any],
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: str | None = None,
) -> Tensor:
    """The model's outputs for every sample of ``data``, in order, on the CPU.

    Args:
        model: Any module that takes one tensor.
        data: Inputs as a tensor, an ``(inputs, targets)`` pair (targets
            ignored), a ``Dataset`` or a ``DataLoader`` (the first element of
            each item or batch is the input).
        batch_size: Samples per batch (not for a ``DataLoader``).
        device: Where to run; ``None`` for where the model is.
        amp: ``None``, ``"bf16"`` or ``"fp16"`` autocast.

    Returns:
        The outputs, concatenated: ``[samples, ...]``.

    Example:
        >>> import torch
        >>> from blockzoo.train import predict
        >>> predict(torch.nn.Linear(4, 3), torch.randn(10, 4), batch_size=4).shape
        torch.Size([10, 3])
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    chosen = _model_device(model, device)
    outputs = [out.cpu() for _, out in _outputs(model, _batches(data, batch_size, "data").epoch(0), chosen, amp)]
    if not outputs:
        raise ValueError("predict: data has no samples. Received: an empty data set")
    return torch.cat(outputs)
