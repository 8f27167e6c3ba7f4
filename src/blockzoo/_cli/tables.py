"""Aligned text tables for the terminal: the model list, a model's options, a confusion matrix."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch

__all__ = ["confusion_table", "format_table"]

#: Above this many classes a confusion matrix is too wide for a terminal; the most confused pairs are shown.
MAX_MATRIX_CLASSES = 20


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[int] = ()) -> str:
    """Columns padded to their widest cell, two spaces apart; the columns in ``right`` right-aligned.

    Example:
        >>> from blockzoo._cli.tables import format_table
        >>> print(format_table(["name", "n"], [["a", "1"], ["bcd", "23"]], right={1}))
        name   n
        a      1
        bcd   23
    """
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    return "\n".join(line.rstrip() for line in lines)


def confusion_table(matrix: torch.Tensor, classes: Sequence[str]) -> str:
    r"""A confusion matrix (rows: true class, columns: predicted) as a table with the class names.

    With more than :data:`MAX_MATRIX_CLASSES` classes, the ten most frequent
    confusions instead.

    Example:
        >>> import torch
        >>> from blockzoo._cli.tables import confusion_table
        >>> print(confusion_table(torch.tensor([[5, 1], [0, 4]]), ["cat", "dog"]))
        true \ predicted  cat  dog
        cat                  5    1
        dog                  0    4
    """
    counts = matrix.tolist()
    if len(classes) <= MAX_MATRIX_CLASSES:
        rows = [[name, *(str(c) for c in row)] for name, row in zip(classes, counts, strict=True)]
        return format_table(["true \\ predicted", *classes], rows, right=range(1, len(classes) + 1))
    off_diagonal = matrix.clone()
    off_diagonal.fill_diagonal_(0)
    values, flat = off_diagonal.flatten().topk(10)
    pairs = [
        [classes[i // len(classes)], classes[i % len(classes)], str(v)]
        for v, i in zip(values.tolist(), flat.tolist(), strict=True)
        if v > 0
    ]
    title = f"{len(classes)} classes; the most frequent confusions:"
    return title + "\n" + format_table(["true", "predicted as", "count"], pairs, right={2})
