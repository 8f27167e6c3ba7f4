"""Progress: the epoch line, and what fit prints with progress="lines", "bar" and False."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor

from blockzoo.train import fit
from blockzoo.train._progress import Progress, format_row


def data() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(48, 4, generator=g), torch.randint(0, 3, (48,), generator=g)


def test_format_row() -> None:
    row = {
        "epoch": 3,
        "train_loss": 0.123449,
        "train_accuracy": 0.98614,
        "val_loss": math.nan,  # NaN columns are left out
        "lr": 1e-3,
        "seconds": 1.24,
        "samples_per_second": 1200.4,
    }
    assert format_row(row, 10) == (
        "epoch 3/10 | train_loss 0.1234 | train_accuracy 98.61% | lr 1.00e-03 | 1.2 s | 1,200 samples/s"
    )


def test_format_row_without_timing() -> None:
    assert format_row({"epoch": 1.0, "ema_val_accuracy": 0.5}, 2) == (
        "epoch 1/2 | ema_val_accuracy 50.00% | nan s | nan samples/s"
    )


def test_lines_print_one_line_per_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    history = fit(torch.nn.Linear(4, 3), data(), val_data=data(), epochs=3, batch_size=16, progress="lines", seed=0)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3
    for epoch, (line, row) in enumerate(zip(lines, history.rows, strict=True), start=1):
        assert line == format_row(row, 3)
        assert line.startswith(f"epoch {epoch}/3 | train_loss ")
        assert "val_accuracy" in line
    assert err == ""


def test_false_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    fit(torch.nn.Linear(4, 3), data(), epochs=2, batch_size=16, progress=False, seed=0)
    assert capsys.readouterr() == ("", "")


def test_true_without_a_terminal_prints_lines(capsys: pytest.CaptureFixture[str]) -> None:
    fit(torch.nn.Linear(4, 3), data(), epochs=2, batch_size=16, progress=True, seed=0)
    assert len(capsys.readouterr().out.splitlines()) == 2  # pytest's captured stderr is not a terminal


def test_bar_draws_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    fit(torch.nn.Linear(4, 3), data(), epochs=2, batch_size=16, progress="bar", seed=0)
    out, err = capsys.readouterr()
    assert out == ""
    assert "epoch 1/2" in err
    assert "epoch 2/2" in err
    assert "3/3" in err


def test_messages_show_unless_progress_is_off(capsys: pytest.CaptureFixture[str]) -> None:
    Progress("lines", epochs=1).message("early stopping")
    Progress(False, epochs=1).message("hidden")
    assert capsys.readouterr().err == "early stopping\n"


@pytest.mark.parametrize("bad", ["yes", 1, 0, None, "Lines"])
def test_bad_progress(bad: Any) -> None:
    with pytest.raises(
        ValueError, match=rf"progress must be True, False, 'bar' or 'lines'. Received: progress={bad!r}"
    ):
        Progress(bad, epochs=1)
