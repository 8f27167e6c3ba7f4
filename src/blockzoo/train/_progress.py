"""Progress: a tqdm bar per epoch in a terminal, one line per epoch otherwise, or nothing."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["Progress", "format_row"]


def format_row(row: Mapping[str, float], epochs: int) -> str:
    """``epoch 3/10 | train_loss 0.1234 | val_accuracy 98.61% | lr 1.00e-03 | 1.2 s | 1,200 samples/s``."""
    parts = [f"epoch {int(row['epoch'])}/{epochs}"]
    for key, value in row.items():
        if key in ("epoch", "seconds", "samples_per_second"):
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        if key.endswith("accuracy"):
            parts.append(f"{key} {100 * value:.2f}%")
        elif key == "lr":
            parts.append(f"lr {value:.2e}")
        else:
            parts.append(f"{key} {value:.4f}")
    parts.append(f"{row.get('seconds', math.nan):.1f} s")
    parts.append(f"{row.get('samples_per_second', math.nan):,.0f} samples/s")
    return " | ".join(parts)


class Progress:
    """What ``fit`` shows as it runs.

    Args:
        progress: ``True`` (a bar in a terminal, lines otherwise), ``False``,
            ``"bar"`` or ``"lines"``.
        epochs: The epochs of the run.
        show: False in every process but the first of a distributed run.
    """

    def __init__(self, progress: bool | str, *, epochs: int, show: bool = True) -> None:
        if not isinstance(progress, bool) and progress not in ("bar", "lines"):  # 1 == True: check the type
            raise ValueError(f"progress must be True, False, 'bar' or 'lines'. Received: progress={progress!r}")
        mode = "off" if progress is False or not show else str(progress)
        if mode in ("True", "bar"):
            mode = "bar" if _has_tqdm() and (progress == "bar" or sys.stderr.isatty()) else "lines"
        self.mode = mode
        self.epochs = epochs
        self._bar: Any = None

    def mute(self) -> None:
        """Show nothing from now on (every process of a distributed run but rank 0)."""
        self.close()
        self.mode = "off"

    def start_epoch(self, epoch: int, batches: int, *, done: int = 0) -> None:
        """Open the bar of ``epoch`` (from 1), ``done`` of its ``batches`` already run."""
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=batches, initial=done, desc=f"epoch {epoch}/{self.epochs}", unit="batch", leave=True)

    def advance(self, batches: int, loss: float | None = None) -> None:
        """Move the bar on by ``batches``, showing ``loss`` when given."""
        if self._bar is not None:
            if loss is not None:
                self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self._bar.update(batches)

    def end_epoch(self, row: Mapping[str, float]) -> None:
        """Close the bar with the epoch's figures, or print its line."""
        text = format_row(row, self.epochs)
        if self._bar is not None:
            self._bar.set_postfix_str(text.split(" | ", 1)[1], refresh=True)
            self._bar.close()
            self._bar = None
        elif self.mode == "lines":
            print(text, flush=True)

    def message(self, text: str) -> None:
        """A line that is always shown (unless progress is off), above any bar."""
        if self.mode == "off":
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        """Close an open bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True
