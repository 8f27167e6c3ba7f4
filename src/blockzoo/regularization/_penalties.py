"""Penalties: callables ``weight -> scalar`` with validated factors, as Keras's regularizers.

A factor is a finite non-negative number or a schedule, a callable of the step
(``lambda step: 1e-4 * min(1, step / 1000)``). Each penalty counts the steps it
has served (:attr:`Penalty.step`); the attach functions advance it once per
training step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from blockzoo._checks import check_number

__all__ = ["L1", "L1L2", "L2", "Factor", "Orthogonal", "Penalty", "check_factor"]

#: A finite non-negative number, or a callable of the step that returns one.
Factor = float | Callable[[int], float]


def check_factor(name: str, value: Factor) -> Factor:
    """``value`` if it is a callable, or as a float if it is a finite number ``>= 0``, else a ``ValueError`` naming ``name``.

    An infinite factor is refused, as Keras does: ``inf * 0`` is NaN.
    """
    if callable(value):
        return value
    return check_number(name, value, low=0, alternative="a callable of the step")


def _at(factor: Factor, step: int, name: str) -> float:
    """The factor at ``step``: a number as is, a schedule's value checked like a number factor."""
    if not callable(factor):
        return factor
    return check_number(f"{name}({step})", factor(step), low=0)


def _fmt(factor: Factor) -> str:
    return getattr(factor, "__name__", "schedule") if callable(factor) else f"{factor:g}"


class Penalty:
    """Base class of the built-in penalties: ``penalty(weight)`` is a scalar tensor, ``>= 0``.

    Subclasses implement :meth:`value` (differentiable) and may implement
    :meth:`grad`, the closed-form gradient that ``mode="grad"`` adds to a
    parameter's gradient without building a graph. Any callable
    ``weight -> scalar`` works where a penalty is expected; it then gets its
    gradient from autograd.

    Attributes:
        step: The training steps this penalty has served; schedules read it.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import Penalty
        >>> class SumOfSquares(Penalty):
        ...     def value(self, weight):
        ...         return weight.pow(2).sum()
        ...     def grad(self, weight):
        ...         return 2 * weight
        >>> penalty = SumOfSquares()
        >>> penalty(torch.tensor([1.0, -2.0]))
        tensor(5.)
        >>> penalty.grad(torch.tensor([1.0, -2.0]))
        tensor([ 2., -4.])
    """

    step: int = 0

    def value(self, weight: Tensor) -> Tensor:
        """The penalty of ``weight`` at the current step."""
        raise NotImplementedError

    def grad(self, weight: Tensor) -> Tensor | None:
        """``d penalty / d weight`` in closed form, or ``None`` to use autograd."""
        return None

    def add_grad_(self, grad: Tensor, weight: Tensor) -> bool:
        """Add :meth:`grad` into ``grad`` in place; ``False`` when there is no closed form.

        Override it to avoid the temporary tensor (as :class:`L2` does).
        """
        closed = self.grad(weight)
        if closed is None:
            return False
        grad.add_(closed)
        return True

    def __call__(self, weight: Tensor) -> Tensor:
        return self.value(weight)


class L1(Penalty):
    """``factor * sum(|w|)``; its gradient is ``factor * sign(w)``.

    Args:
        factor: A non-negative number or a schedule (a callable of the step).

    Example:
        >>> import torch
        >>> from blockzoo.regularization import L1
        >>> L1(0.1)(torch.tensor([1.0, -2.0]))
        tensor(0.3000)
    """

    def __init__(self, factor: Factor = 0.01) -> None:
        self.factor = check_factor("factor", factor)

    def value(self, weight: Tensor) -> Tensor:
        return _at(self.factor, self.step, "factor") * weight.abs().sum()

    def grad(self, weight: Tensor) -> Tensor:
        return weight.sign().mul_(_at(self.factor, self.step, "factor"))

    def __repr__(self) -> str:
        return f"L1(factor={_fmt(self.factor)})"


class L2(Penalty):
    """``factor * sum(w ** 2)`` (Keras's definition); its gradient is ``2 * factor * w``.

    With SGD, ``L2(factor)`` in ``mode="grad"`` adds the same gradient as
    ``weight_decay=2 * factor``; see the regularization page for how it
    differs from decoupled weight decay (AdamW).

    Args:
        factor: A non-negative number or a schedule (a callable of the step).

    Example:
        >>> import torch
        >>> from blockzoo.regularization import L2
        >>> L2(0.5)(torch.tensor([1.0, -2.0]))
        tensor(2.5000)
    """

    def __init__(self, factor: Factor = 0.01) -> None:
        self.factor = check_factor("factor", factor)

    def value(self, weight: Tensor) -> Tensor:
        return _at(self.factor, self.step, "factor") * weight.square().sum()

    def grad(self, weight: Tensor) -> Tensor:
        return weight.mul(2 * _at(self.factor, self.step, "factor"))

    def add_grad_(self, grad: Tensor, weight: Tensor) -> bool:
        grad.add_(weight, alpha=2 * _at(self.factor, self.step, "factor"))  # no temporary
        return True

    def __repr__(self) -> str:
        return f"L2(factor={_fmt(self.factor)})"


class L1L2(Penalty):
    """``l1 * sum(|w|) + l2 * sum(w ** 2)``.

    Args:
        l1: Factor of the L1 term (number or schedule).
        l2: Factor of the L2 term (number or schedule).

    Example:
        >>> import torch
        >>> from blockzoo.regularization import L1L2
        >>> L1L2(l1=0.1, l2=0.5)(torch.tensor([1.0, -2.0]))
        tensor(2.8000)
    """

    def __init__(self, l1: Factor = 0.0, l2: Factor = 0.0) -> None:
        self.l1 = check_factor("l1", l1)
        self.l2 = check_factor("l2", l2)

    def value(self, weight: Tensor) -> Tensor:
        l1, l2 = _at(self.l1, self.step, "l1"), _at(self.l2, self.step, "l2")
        return l1 * weight.abs().sum() + l2 * weight.square().sum()

    def grad(self, weight: Tensor) -> Tensor:
        l1, l2 = _at(self.l1, self.step, "l1"), _at(self.l2, self.step, "l2")
        return weight.sign().mul_(l1).add_(weight, alpha=2 * l2)

    def __repr__(self) -> str:
        return f"L1L2(l1={_fmt(self.l1)}, l2={_fmt(self.l2)})"


class Orthogonal(Penalty):
    """Push the rows (or columns) of a weight towards orthogonality, as Keras's ``OrthogonalRegularizer``.

    The weight is read as a matrix ``[out, in * kernel]`` (torch's layout).
    The rows, or columns, are normalised to unit length, and the penalty is
    ``factor`` times the mean absolute cosine between distinct pairs: zero
    when they are orthogonal. ``mode="rows"`` makes each output unit's weights
    orthogonal to the others' (Keras's ``"columns"`` on its ``[in, out]``
    kernels); ``"columns"`` does it for the input dimensions.

    Args:
        factor: A non-negative number or a schedule.
        mode: ``"rows"`` or ``"columns"``.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import Orthogonal
        >>> Orthogonal(1.0)(torch.eye(3))
        tensor(0.)
        >>> Orthogonal(1.0)(torch.ones(2, 2))
        tensor(1.0000)
    """

    def __init__(self, factor: Factor = 0.01, mode: Literal["rows", "columns"] = "rows") -> None:
        self.factor = check_factor("factor", factor)
        if mode not in ("rows", "columns"):
            raise ValueError(f"mode must be 'rows' or 'columns'. Received: mode={mode!r}")
        self.mode = mode

    def value(self, weight: Tensor) -> Tensor:
        if weight.dim() < 2:
            raise ValueError(f"Orthogonal needs a weight of 2 or more dimensions. Received: shape={list(weight.shape)}")
        matrix = weight.flatten(1)
        if self.mode == "columns":
            matrix = matrix.T
        n = matrix.shape[0]
        if n < 2:
            return matrix.new_zeros(())
        unit = F.normalize(matrix, dim=1)
        cosines = unit @ unit.T
        off_diagonal = cosines - torch.diag_embed(torch.diagonal(cosines))
        # Each pair appears twice in the symmetric matrix: halve the sum, then average over the n(n-1)/2 pairs.
        return _at(self.factor, self.step, "factor") * off_diagonal.abs().sum() / (n * (n - 1))

    def __repr__(self) -> str:
        return f"Orthogonal(factor={_fmt(self.factor)}, mode={self.mode!r})"
