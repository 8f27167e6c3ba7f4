"""Callbacks: the hooks fit calls and their order, trainer.stop(), and EarlyStopping."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import Tensor

from blockzoo.train import Callback, EarlyStopping, History, StepOutput, Trainer, fit


def data(n: int = 64) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


class FakeTrainer:
    """What EarlyStopping reads of a trainer: the history's monitor and mode, and stop()."""

    def __init__(self, monitor: str = "val_loss", mode: str = "auto") -> None:
        self.history = History(monitor=monitor, mode=mode)
        self.stopped: list[str] = []

    def stop(self, reason: str) -> None:
        self.stopped.append(reason)


def feed(callback: EarlyStopping, trainer: FakeTrainer, values: list[float], column: str = "val_loss") -> int | None:
    """The epoch (from 1) after which the callback asked to stop, or None."""
    for epoch, value in enumerate(values, start=1):
        callback.on_epoch_end(trainer, epoch, {"epoch": epoch, column: value})  # type: ignore[arg-type]
        if trainer.stopped:
            return epoch
    return None


# ------------------------------------------------------------ early stopping


@pytest.mark.parametrize(
    ("values", "patience", "min_delta", "stop"),
    [
        ([1.0, 0.9, 0.8, 0.7], 1, 0.0, None),  # improves every epoch
        ([1.0, 1.1, 0.9, 1.2], 1, 0.0, 2),
        ([1.0, 1.1, 0.9, 1.2, 1.0, 0.95], 2, 0.0, 5),  # 0.9 at epoch 3 reset the count
        ([1.0, 0.95, 0.91, 0.9], 2, 0.1, 3),  # improvements smaller than min_delta do not count
        ([1.0, 0.85, 0.8, 0.79], 2, 0.1, 4),  # 0.85 counts (by 0.15), 0.8 and 0.79 do not beat 0.85 by 0.1
    ],
)
def test_patience_and_min_delta(values: list[float], patience: int, min_delta: float, stop: int | None) -> None:
    trainer = FakeTrainer("val_loss")
    assert feed(EarlyStopping(patience=patience, min_delta=min_delta), trainer, values) == stop


def test_mode_follows_fits_monitor_by_default() -> None:
    rising = [0.5, 0.6, 0.7, 0.8]
    assert feed(EarlyStopping(patience=1), FakeTrainer("val_accuracy"), rising, "val_accuracy") is None  # maximised
    assert feed(EarlyStopping(patience=1), FakeTrainer("val_loss"), rising) == 2  # minimised
    assert feed(EarlyStopping(patience=1), FakeTrainer("val_loss", mode="max"), rising) is None  # fit's mode


def test_auto_mode_reads_the_monitored_column() -> None:
    # "auto" with fit's monitor: decided by that column's name, not by an empty name (which read as "max")
    assert feed(EarlyStopping(patience=1, mode="auto"), FakeTrainer("val_loss"), [1.0, 0.9, 0.8]) is None
    assert feed(EarlyStopping(patience=1, mode="auto"), FakeTrainer("val_accuracy"), [0.3, 0.2], "val_accuracy") == 2
    own = EarlyStopping(patience=1, monitor="train_loss")  # its own monitor: auto by that name
    assert feed(own, FakeTrainer("val_accuracy"), [1.0, 0.9, 0.95], "train_loss") == 3
    flipped = EarlyStopping(patience=1, monitor="train_loss", mode="max")
    assert feed(flipped, FakeTrainer("val_accuracy"), [1.0, 0.9], "train_loss") == 2


def test_nan_never_improves_and_an_all_nan_run_stops_with_a_message() -> None:
    trainer = FakeTrainer("val_loss")
    assert feed(EarlyStopping(patience=2), trainer, [1.0, math.nan, 0.9, math.nan, math.nan]) == 5
    trainer = FakeTrainer("val_loss")
    assert feed(EarlyStopping(patience=2), trainer, [math.nan, math.nan]) == 2
    assert trainer.stopped == ["early stopping: val_loss has not improved for 2 epochs (every value was NaN)"]


def test_stop_message_names_the_best() -> None:
    trainer = FakeTrainer("val_loss")
    feed(EarlyStopping(patience=1), trainer, [0.5, 0.7])
    assert trainer.stopped == ["early stopping: val_loss has not improved for 1 epochs (best 0.5)"]


def test_a_missing_column_is_an_error() -> None:
    with pytest.raises(
        ValueError,
        match=r"EarlyStopping: monitor must be a column .*Did you mean 'val_loss'\? Received: monitor='val_los'",
    ):
        feed(EarlyStopping(monitor="val_los"), FakeTrainer(), [1.0])


def test_state_dict_round_trip_continues_the_count() -> None:
    values = [1.0, 0.8, 0.9, 0.95, 0.85, 0.99]
    whole = FakeTrainer()
    expected = feed(EarlyStopping(patience=3), whole, values)
    first, second = FakeTrainer(), FakeTrainer()
    callback = EarlyStopping(patience=3)
    assert feed(callback, first, values[:3]) is None
    state = callback.state_dict()
    assert state == {"best": 0.8, "waited": 1}
    resumed = EarlyStopping(patience=3)
    resumed.load_state_dict(state)
    stop = feed(resumed, second, values[3:])
    assert stop is not None
    assert stop + 3 == expected == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patience": 0}, r"patience must be .*Received: patience=0"),
        ({"patience": 1.5}, r"patience must be .*Received: patience=1.5"),
        ({"min_delta": -0.1}, r"min_delta must be .*Received: min_delta=-0.1"),
        ({"mode": "best"}, r"mode must be one of 'auto', 'min', 'max'. Received: mode='best'"),
    ],
)
def test_early_stopping_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)


def test_early_stopping_in_fit() -> None:
    def const(output: Tensor, target: Tensor) -> Tensor:
        return torch.tensor(0.5)

    stop = EarlyStopping(patience=2, monitor="train_const", mode="max")
    trainer = Trainer(
        torch.nn.Linear(4, 3), data(), epochs=6, metrics=[const], callbacks=[stop], progress=False, seed=0
    )
    history = trainer.fit()
    assert len(history) == 3  # epoch 1 sets the best; 2 and 3 do not beat it
    assert trainer.stop_reason == "early stopping: train_const has not improved for 2 epochs (best 0.5)"


def test_fits_monitor_must_be_a_column() -> None:
    with pytest.raises(
        ValueError, match=r"monitor must be a column .*Did you mean 'train_loss'\? Received: monitor='trian_loss'"
    ):
        fit(torch.nn.Linear(4, 3), data(), epochs=1, progress=False, monitor="trian_loss")


# ------------------------------------------------------------------- hooks


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_fit_start(self, trainer: Trainer) -> None:
        self.calls.append(("fit_start", trainer.global_step))

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.calls.append(("epoch_start", epoch))

    def on_batch_end(self, trainer: Trainer, batch: int, output: StepOutput) -> None:
        assert isinstance(output, StepOutput)
        assert output.loss.ndim == 0
        assert output.output is not None
        assert output.output.shape[1] == 3
        self.calls.append(("batch_end", batch, trainer.global_step))

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Mapping[str, float]) -> None:
        assert logs == trainer.history.rows[-1]
        self.calls.append(("epoch_end", epoch, len(trainer.history)))

    def on_fit_end(self, trainer: Trainer) -> None:
        self.calls.append(("fit_end",))


def test_hooks_are_called_in_order_with_their_arguments() -> None:
    recorder = Recorder()
    x, y = data()
    fit(
        torch.nn.Linear(4, 3),
        (x, y),
        val_data=(x[:16], y[:16]),
        epochs=2,
        batch_size=16,
        callbacks=[recorder],
        progress=False,
        seed=0,
    )
    expected: list[tuple[Any, ...]] = [("fit_start", 0)]
    for epoch in (1, 2):
        expected.append(("epoch_start", epoch))
        expected += [("batch_end", b, 4 * (epoch - 1) + b + 1) for b in range(4)]  # after each optimizer step
        expected.append(("epoch_end", epoch, epoch))
    expected.append(("fit_end",))
    assert recorder.calls == expected


def test_callbacks_run_in_the_order_given() -> None:
    seen: list[str] = []

    class Named(Callback):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Mapping[str, float]) -> None:
            seen.append(self.name)

    fit(torch.nn.Linear(4, 3), data(16), epochs=1, callbacks=[Named("a"), Named("b")], progress=False, seed=0)
    assert seen == ["a", "b"]


def test_stop_ends_training_after_the_batch() -> None:
    class StopAtSecondBatch(Callback):
        def on_batch_end(self, trainer: Trainer, batch: int, output: StepOutput) -> None:
            if trainer.epoch == 2 and batch == 1:
                trainer.stop("enough")

    recorder = Recorder()
    trainer = Trainer(
        torch.nn.Linear(4, 3),
        data(),
        epochs=4,
        batch_size=16,
        callbacks=[StopAtSecondBatch(), recorder],
        progress=False,
        seed=0,
    )
    history = trainer.fit()
    assert trainer.stop_reason == "enough"
    assert len(history) == 2  # the cut epoch still gets its row
    assert trainer.global_step == 4 + 2
    assert recorder.calls[-3:] == [("batch_end", 1, 6), ("epoch_end", 2, 2), ("fit_end",)]


def test_callbacks_must_be_callback_instances() -> None:
    with pytest.raises(TypeError, match=r"callbacks must be Callback instances. Received: function"):
        fit(torch.nn.Linear(4, 3), data(), epochs=1, callbacks=[lambda t: None], progress=False)  # type: ignore[list-item]


def test_base_callback_does_nothing_and_has_no_state() -> None:
    callback = Callback()
    history = fit(torch.nn.Linear(4, 3), data(16), epochs=1, callbacks=[callback], progress=False, seed=0)
    assert len(history) == 1
    assert callback.state_dict() == {}
