"""History: what each epoch of ``fit`` measured, with its curves and its JSON file."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blockzoo._checks import check_choice

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["History", "improves", "new_figure", "resolve_mode"]


def new_figure(owner: str, size: tuple[float, float]) -> Figure:
    """A matplotlib ``Figure`` (no pyplot, so no GUI backend); an ImportError naming ``owner`` without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(f"{owner} needs matplotlib: pip install 'blockzoo[train]'") from err
    return Figure(figsize=size, layout="constrained")


def resolve_mode(monitor: str, mode: str) -> str:
    """``"min"`` or ``"max"``: ``"auto"`` minimises losses and maximises everything else."""
    check_choice("mode", mode, ("auto", "min", "max"))
    if mode != "auto":
        return mode
    return "min" if monitor.endswith("loss") else "max"


def improves(value: float, than: float | None, *, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``than`` (``None`` or NaN: nothing yet) by more than ``min_delta``; NaN never does."""
    if math.isnan(value):
        return False
    if than is None or math.isnan(than):
        return True
    return value < than - min_delta if mode == "min" else value > than + min_delta


class History:
    """One row per epoch: ``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``lr``, ``seconds``, ``samples_per_second`` (and any other metric).

    ``history["val_accuracy"]`` is a column (a list, one value per epoch),
    ``"val_accuracy" in history`` says whether there is one, ``history.rows`` the rows, and :meth:`best` the best row by the monitored
    metric. :meth:`to_json` and :meth:`from_json` save and load it;
    :meth:`plot` draws the loss and accuracy curves.

    Args:
        rows: The epochs so far.
        monitor: The metric that decides the best epoch.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (losses are minimised).

    Example:
        >>> from blockzoo.train import History
        >>> history = History(monitor="val_accuracy")
        >>> history.append({"epoch": 1, "train_loss": 0.9, "val_loss": 0.7, "val_accuracy": 0.81})
        >>> history.append({"epoch": 2, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.90})
        >>> history["val_loss"], history.best()["epoch"]
        ([0.7, 0.4], 2)
    """

    def __init__(
        self, rows: list[dict[str, float]] | None = None, *, monitor: str = "val_accuracy", mode: str = "auto"
    ) -> None:
        self.rows: list[dict[str, float]] = [dict(r) for r in rows or []]
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)

    def append(self, row: Mapping[str, float]) -> None:
        """Add an epoch's row."""
        self.rows.append(dict(row))

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: object) -> bool:
        return any(key in r for r in self.rows)

    def __iter__(self) -> Iterator[str]:
        # the columns, as a dict's keys (without it, iteration would call history[0] and fail with a KeyError)
        return iter(self.keys())

    def __getitem__(self, key: str) -> list[float]:
        if not any(key in r for r in self.rows):
            raise KeyError(f"no epoch recorded {key!r}; the columns are {self.keys()}. Received: key={key!r}")
        return [r.get(key, math.nan) for r in self.rows]

    def keys(self) -> list[str]:
        """The columns, in the order they first appear."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def is_better(self, value: float, than: float | None, *, min_delta: float = 0.0) -> bool:
        """Whether ``value`` of the monitored metric beats ``than`` by more than ``min_delta``."""
        return improves(value, than, mode=self.mode, min_delta=min_delta)

    def best(self) -> dict[str, float]:
        """The row of the best epoch by ``monitor`` (the first, on ties).

        Raises:
            KeyError: no row records the monitored metric.
        """
        best: dict[str, float] | None = None
        for row in self.rows:
            if self.monitor in row and self.is_better(row[self.monitor], None if best is None else best[self.monitor]):
                best = row
        if best is None:
            raise KeyError(f"no epoch recorded the monitored metric {self.monitor!r}; the columns are {self.keys()}")
        return best

    def state_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, strings, floats), for JSON and ``torch.save``."""
        return {"monitor": self.monitor, "mode": self.mode, "rows": [dict(r) for r in self.rows]}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> History:
        """The history :meth:`state_dict` described."""
        return cls(list(state["rows"]), monitor=state["monitor"], mode=state["mode"])

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the history as JSON (NaN as ``null``); returns the path."""
        rows = [
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in self.rows
        ]
        target = Path(path)
        target.write_text(json.dumps({**self.state_dict(), "rows": rows}, indent=1) + "\n")
        return target

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> History:
        """Read a history that :meth:`to_json` wrote."""
        state = json.loads(Path(path).read_text())
        rows = [{k: (math.nan if v is None else v) for k, v in r.items()} for r in state["rows"]]
        return cls.from_state_dict({**state, "rows": rows})

    def __repr__(self) -> str:
        return f"History({len(self)} epochs, monitor={self.monitor!r}, columns={self.keys()})"

    def plot(self, path: str | os.PathLike[str] | None = None) -> Figure:
        """Loss and accuracy curves, train and validation, side by side, with the best epoch marked.

        Args:
            path: Where to save the figure (any format matplotlib writes); ``None`` to only return it.

        Returns:
            The matplotlib ``Figure``.

        Raises:
            ImportError: matplotlib is missing (it comes with ``blockzoo[train]``).
        """
        kinds = [k for k in ("loss", "accuracy") if any(f"{split}_{k}" in self.keys() for split in ("train", "val"))]
        kinds = kinds or ["loss"]
        figure = new_figure("History.plot", (5.0 * len(kinds), 3.6))
        axes = figure.subplots(1, len(kinds), squeeze=False)[0]
        for ax, kind in zip(axes, kinds, strict=True):
            for split, label, style in (("train", "train", "-"), ("val", "validation", "--")):
                column = f"{split}_{kind}"
                if column in self.keys():
                    ax.plot(self["epoch"], self[column], style, marker="o", markersize=3, label=label)
            self._mark_best(ax, kind)
            ax.set_xlabel("epoch")
            ax.set_ylabel(kind)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:  # an empty history has nothing to label
                ax.legend()
        if path is not None:
            figure.savefig(path, dpi=120)
        return figure

    def _mark_best(self, ax: Any, kind: str) -> None:
        try:
            best = self.best()
        except KeyError:
            return
        ax.axvline(best["epoch"], color="grey", linewidth=0.8, linestyle=":", label=f"best ({self.monitor})")
