"""Callbacks: hooks at every batch and epoch of ``fit``, and early stopping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from blockzoo._checks import check_choice, check_int, check_number
from blockzoo._names import did_you_mean
from blockzoo.train._history import improves, resolve_mode

if TYPE_CHECKING:
    from blockzoo.train._trainer import StepOutput, Trainer

__all__ = ["Callback", "EarlyStopping"]


class Callback:
    """Hooks that :func:`~blockzoo.train.fit` calls; override the ones you need.

    A callback reads and changes the run through the :class:`Trainer` it is
    given (``trainer.model``, ``trainer.optimizer``, ``trainer.history``) and
    ends it with ``trainer.stop(reason)``. What it must keep across a resumed
    run goes in :meth:`state_dict` (plain numbers, strings, lists, dicts and
    tensors, which ``torch.load(weights_only=True)`` reads).

    Example:
        >>> from blockzoo.train import Callback
        >>> class StopAtLoss(Callback):  # reads the epoch's row: no device sync per step
        ...     def on_epoch_end(self, trainer, epoch, logs):
        ...         if logs["train_loss"] < 0.05:
        ...             trainer.stop("the training loss is below 0.05")
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first batch (after a resume's state is loaded)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before the epoch's first batch; ``epoch`` counts from 1."""

    def on_batch_end(self, trainer: Trainer, batch: int, output: StepOutput) -> None:
        """After a training batch (its backward pass, and the optimizer step that ends an accumulation); ``batch`` counts from 0 within the epoch."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Mapping[str, float]) -> None:
        """After validation; ``logs`` is the epoch's row of the history."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch, however training ended (before the best weights are restored)."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs of this callback."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved for ``patience`` epochs.

    Args:
        patience: Epochs without improvement before stopping.
        min_delta: The least change that counts as an improvement.
        monitor: A history column (``"val_loss"``, ...); ``None`` uses ``fit``'s ``monitor``.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (losses are minimised); ``None`` uses ``fit``'s.

    Example:
        >>> from blockzoo.train import EarlyStopping
        >>> EarlyStopping(patience=3)
        EarlyStopping(patience=3, min_delta=0.0, monitor=None)
    """

    def __init__(
        self, *, patience: int = 5, min_delta: float = 0.0, monitor: str | None = None, mode: str | None = None
    ) -> None:
        self.patience = check_int("patience", patience, low=1)
        self.min_delta = check_number("min_delta", min_delta, low=0)
        self.monitor = monitor
        # "auto" is resolved against the monitored column at each epoch: it may be fit's, unknown here
        self.mode = None if mode is None else check_choice("mode", mode, ("auto", "min", "max"))
        self.best: float | None = None
        self.waited = 0

    def __repr__(self) -> str:
        return f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, monitor={self.monitor!r})"

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Mapping[str, float]) -> None:
        """Count the epochs since the last improvement; stop after ``patience`` of them."""
        monitor = self.monitor or trainer.history.monitor
        if self.mode is not None:
            mode = resolve_mode(monitor, self.mode)
        else:
            mode = trainer.history.mode if self.monitor is None else resolve_mode(monitor, "auto")
        if monitor not in logs:  # stopping after `patience` epochs for a missing column would be silent and wrong
            raise ValueError(
                f"EarlyStopping: monitor must be a column of this run's history: {list(logs)}."
                f"{did_you_mean(monitor, logs)} Received: monitor={monitor!r}"
            )
        value = logs[monitor]
        if improves(value, self.best, mode=mode, min_delta=self.min_delta):
            self.best, self.waited = value, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            best = "every value was NaN" if self.best is None else f"best {self.best:.4g}"
            trainer.stop(f"early stopping: {monitor} has not improved for {self.waited} epochs ({best})")

    def state_dict(self) -> dict[str, Any]:
        """The best value and the epochs waited."""
        return {"best": self.best, "waited": self.waited}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.best, self.waited = state["best"], int(state["waited"])
