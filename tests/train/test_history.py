"""History: columns, the best epoch, JSON and state_dict round trips, and the curves."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockzoo.train import History

PNG = b"\x89PNG\r\n\x1a\n"


def rows() -> list[dict[str, float]]:
    return [
        {"epoch": 1, "train_loss": 0.9, "val_loss": 0.7, "val_accuracy": 0.81, "lr": 1e-3},
        {"epoch": 2, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.90, "lr": 1e-3},
        {"epoch": 3, "train_loss": 0.3, "val_loss": 0.45, "val_accuracy": 0.88, "lr": 5e-4},
    ]


def test_columns_and_keys_in_first_seen_order() -> None:
    history = History(rows())
    assert len(history) == 3
    assert history["val_loss"] == [0.7, 0.4, 0.45]
    assert history.keys() == ["epoch", "train_loss", "val_loss", "val_accuracy", "lr"]
    history.append({"epoch": 4, "train_loss": 0.2, "ema_val_loss": 0.3})
    assert history.keys() == ["epoch", "train_loss", "val_loss", "val_accuracy", "lr", "ema_val_loss"]
    column = history["ema_val_loss"]  # epochs that lack it read NaN
    assert all(math.isnan(v) for v in column[:3])
    assert column[3] == 0.3
    assert [r["epoch"] for r in history.rows] == [1, 2, 3, 4]
    assert "ema_val_loss" in history
    assert "val_acc" not in history
    assert list(history) == history.keys()  # like a dict of columns
    assert dict(zip(history, (history[k] for k in history), strict=True))["lr"][:2] == [1e-3, 1e-3]


def test_rows_are_copied_in() -> None:
    given_rows = rows()
    history = History(given_rows)
    given_rows[0]["val_loss"] = 99.0
    row = {"epoch": 4, "val_loss": 0.1}
    history.append(row)
    row["val_loss"] = 99.0
    assert history["val_loss"] == [0.7, 0.4, 0.45, 0.1]


def test_missing_column_names_the_columns() -> None:
    history = History(rows())
    with pytest.raises(
        KeyError, match=r"no epoch recorded 'val_acc'; the columns are \[.*'val_accuracy'.*Received: key='val_acc'"
    ):
        history["val_acc"]


@pytest.mark.parametrize(
    ("monitor", "mode", "epoch"),
    [
        ("val_accuracy", "auto", 2),  # maximised
        ("val_loss", "auto", 2),  # minimised
        ("train_loss", "auto", 3),
        ("val_loss", "max", 1),
        ("val_accuracy", "min", 1),
        ("lr", "auto", 1),  # not a loss: maximised; 1 and 2 tie, the first wins
    ],
)
def test_best_by_monitor_and_mode(monitor: str, mode: str, epoch: int) -> None:
    assert History(rows(), monitor=monitor, mode=mode).best()["epoch"] == epoch


def test_best_ties_go_to_the_first_and_nan_never_wins() -> None:
    history = History(monitor="val_loss")
    for epoch, value in enumerate([math.nan, 0.5, 0.5, math.nan, 0.6], start=1):
        history.append({"epoch": epoch, "val_loss": value})
    assert history.best()["epoch"] == 2


def test_best_without_the_monitored_column() -> None:
    history = History([{"epoch": 1, "train_loss": 0.3}], monitor="val_accuracy")
    with pytest.raises(KeyError, match="no epoch recorded the monitored metric 'val_accuracy'"):
        history.best()
    with pytest.raises(KeyError, match="no epoch recorded the monitored metric 'val_loss'"):
        History([{"epoch": 1, "val_loss": math.nan}], monitor="val_loss").best()


def test_is_better_with_min_delta() -> None:
    low = History(monitor="val_loss")
    assert low.is_better(0.5, None)
    assert low.is_better(0.5, math.nan)
    assert not low.is_better(math.nan, 0.5)
    assert low.is_better(0.4, 0.5)
    assert not low.is_better(0.45, 0.5, min_delta=0.1)
    high = History(monitor="val_accuracy")
    assert high.is_better(0.61, 0.5, min_delta=0.1)
    assert not high.is_better(0.6, 0.5, min_delta=0.1)


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match=r"mode must be one of 'auto', 'min', 'max'. Received: mode='best'"):
        History(mode="best")


finite = st.floats(allow_nan=False, allow_infinity=False)
values = st.one_of(finite, st.just(math.nan))
names = st.sampled_from(["train_loss", "val_loss", "val_accuracy", "lr", "seconds"])


@given(st.lists(st.dictionaries(names, values, min_size=1), max_size=6), st.sampled_from(["auto", "min", "max"]))
def test_json_round_trip(drawn: list[dict[str, float]], mode: str) -> None:
    history = History([{"epoch": i + 1, **r} for i, r in enumerate(drawn)], monitor="val_loss", mode=mode)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.json"
        assert history.to_json(path) == path
        raw = json.loads(path.read_text())  # strict JSON: NaN is written as null
        back = History.from_json(str(path))
    assert all(v is None or math.isfinite(v) for r in raw["rows"] for v in r.values())
    assert back.monitor == history.monitor
    assert back.mode == history.mode
    assert len(back) == len(history)
    for got, want in zip(back.rows, history.rows, strict=True):
        assert got.keys() == want.keys()
        for k, v in want.items():
            assert (math.isnan(got[k]) and math.isnan(v)) or got[k] == v


def test_json_writes_null_for_nan(tmp_path: Path) -> None:
    path = History([{"epoch": 1, "val_loss": math.nan}]).to_json(tmp_path / "h.json")
    assert '"val_loss": null' in path.read_text()
    assert json.loads(path.read_text())["rows"][0]["val_loss"] is None


def test_state_dict_round_trip() -> None:
    history = History(rows(), monitor="val_loss", mode="max")
    state = history.state_dict()
    assert state == {"monitor": "val_loss", "mode": "max", "rows": rows()}
    back = History.from_state_dict(state)
    assert back.rows == history.rows
    assert back.monitor == "val_loss"
    assert back.mode == "max"
    state["rows"][0]["val_loss"] = 99.0  # a copy: changing it leaves the history alone
    assert history["val_loss"][0] == 0.7


def test_repr() -> None:
    assert repr(History(rows()[:1])) == (
        "History(1 epochs, monitor='val_accuracy', columns=['epoch', 'train_loss', 'val_loss', 'val_accuracy', 'lr'])"
    )


def test_plot_loss_and_accuracy(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    history = History([{**r, "train_accuracy": r["val_accuracy"] - 0.05} for r in rows()])
    path = tmp_path / "curves.png"
    figure = history.plot(path)
    loss_ax, accuracy_ax = figure.axes
    # train, validation and the best epoch's marker on each
    assert len(loss_ax.lines) == 3
    assert len(accuracy_ax.lines) == 3
    assert list(loss_ax.lines[0].get_ydata()) == history["train_loss"]
    assert list(loss_ax.lines[1].get_ydata()) == history["val_loss"]
    assert list(accuracy_ax.lines[2].get_xdata()) == [2, 2]  # best val_accuracy at epoch 2
    assert loss_ax.get_ylabel() == "loss"
    assert accuracy_ax.get_ylabel() == "accuracy"
    assert path.read_bytes()[:8] == PNG


def test_plot_train_loss_only_and_empty() -> None:
    pytest.importorskip("matplotlib")
    figure = History([{"epoch": 1, "train_loss": 0.5}], monitor="train_loss").plot()
    (ax,) = figure.axes
    assert len(ax.lines) == 2  # the curve and the best epoch
    (ax,) = History().plot().axes  # nothing recorded: an empty loss panel
    assert len(ax.lines) == 0
