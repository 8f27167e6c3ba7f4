"""Constraints: projections ``weight -> weight`` that hold a property after every update, as Keras's.

Axis convention: torch stores a linear weight as ``[out, in]`` and a conv
weight as ``[out, in, *kernel]``; Keras stores them as ``[in, out]`` and
``[*kernel, in, out]``. The norm-based constraints here take ``dim``, the
dimensions the norm runs over; the default, ``None``, means every dimension
but the first, so each output unit's incoming weights are constrained. That is
Keras's default (``axis=0`` for a Dense kernel, ``[0, 1, 2]`` for a Conv2D one)
in torch's layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from blockzoo._checks import check_number, is_int

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"]

_EPS = 1e-7  # Keras's epsilon: keeps a zero row at zero instead of dividing by zero


def _check_dim(dim: int | Sequence[int] | None) -> tuple[int, ...] | None:
    if dim is None:
        return None
    dims: Any = (dim,) if is_int(dim) else dim
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence) or not dims or not all(map(is_int, dims)):
        raise TypeError(f"dim must be an int, a sequence of ints or None. Received: dim={dim!r}")
    return tuple(int(d) for d in dims)


class Constraint:
    """Base class: ``constraint(weight)`` returns the projected weight (a new tensor).

    Subclass it and implement ``__call__``; :meth:`satisfied` tells
    whether a weight already holds the property (the tests use it).

    Example:
        >>> import torch
        >>> from blockzoo.regularization import Constraint
        >>> class Clip(Constraint):
        ...     def __call__(self, weight):
        ...         return weight.clamp(-1.0, 1.0)
        >>> clip = Clip()
        >>> clip(torch.tensor([-3.0, 0.5, 2.0]))
        tensor([-1.0000,  0.5000,  1.0000])
        >>> clip.satisfied(torch.tensor([0.25, -0.5])), clip.satisfied(torch.tensor([2.0]))
        (True, False)
    """

    def __call__(self, weight: Tensor) -> Tensor:
        raise NotImplementedError

    def satisfied(self, weight: Tensor, *, atol: float = 1e-5) -> bool:
        """Whether projecting ``weight`` would leave it (almost) unchanged."""
        with torch.no_grad():
            return bool(torch.allclose(self(weight), weight, atol=atol, rtol=1e-4))


class _NormConstraint(Constraint):
    def __init__(self, dim: int | Sequence[int] | None) -> None:
        self.dim = _check_dim(dim)

    def _norms(self, weight: Tensor) -> Tensor:
        dims = self.dim if self.dim is not None else tuple(range(1, weight.dim()))
        if not dims:  # a 1-D weight: each element is its own unit
            return weight.abs()
        norms: Tensor = torch.linalg.vector_norm(weight, dim=dims, keepdim=True)
        return norms

    def _dim_repr(self) -> str:
        return "" if self.dim is None else f", dim={self.dim if len(self.dim) > 1 else self.dim[0]}"


class MaxNorm(_NormConstraint):
    """Scale each unit's weights down to a norm of at most ``max_value`` (Srivastava et al. 2014).

    Args:
        max_value: The largest norm allowed, ``>= 0``; ``inf`` makes the
            constraint a no-op.
        dim: Dimensions the norm runs over; ``None`` for all but the first.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import MaxNorm
        >>> MaxNorm(1.0)(torch.tensor([[3.0, 4.0], [0.3, 0.4]]))
        tensor([[0.6000, 0.8000],
                [0.3000, 0.4000]])
    """

    def __init__(self, max_value: float = 2.0, dim: int | Sequence[int] | None = None) -> None:
        super().__init__(dim)
        self.max_value = check_number("max_value", max_value, low=0, allow_inf=True)

    def __call__(self, weight: Tensor) -> Tensor:
        norms = self._norms(weight)
        return weight * (norms.clamp(max=self.max_value) / (norms + _EPS))

    def __repr__(self) -> str:
        return f"MaxNorm(max_value={self.max_value:g}{self._dim_repr()})"


class UnitNorm(_NormConstraint):
    """Scale each unit's weights to norm one.

    Args:
        dim: Dimensions the norm runs over; ``None`` for all but the first.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import UnitNorm
        >>> UnitNorm()(torch.tensor([[3.0, 4.0]]))
        tensor([[0.6000, 0.8000]])
    """

    def __init__(self, dim: int | Sequence[int] | None = None) -> None:
        super().__init__(dim)

    def __call__(self, weight: Tensor) -> Tensor:
        return weight / (self._norms(weight) + _EPS)

    def __repr__(self) -> str:
        return f"UnitNorm({self._dim_repr().lstrip(', ')})"


class NonNeg(Constraint):
    """Zero the negative entries.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import NonNeg
        >>> NonNeg()(torch.tensor([-1.0, 2.0]))
        tensor([0., 2.])
    """

    def __call__(self, weight: Tensor) -> Tensor:
        out: Tensor = weight.clamp(min=0)
        return out

    def __repr__(self) -> str:
        return "NonNeg()"


class MinMaxNorm(_NormConstraint):
    """Move each unit's norm into ``[min_value, max_value]``, at a ``rate`` (Keras's ``MinMaxNorm``).

    The new norm is ``rate * clip(norm, min_value, max_value) + (1 - rate) * norm``;
    ``rate=1`` enforces the interval at once.

    Args:
        min_value: The smallest norm, ``>= 0``.
        max_value: The largest norm, ``>= min_value``.
        rate: In ``[0, 1]``.
        dim: Dimensions the norm runs over; ``None`` for all but the first.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import MinMaxNorm
        >>> MinMaxNorm(1.0, 2.0)(torch.tensor([[0.3, 0.4], [6.0, 8.0]]))
        tensor([[0.6000, 0.8000],
                [1.2000, 1.6000]])
    """

    def __init__(
        self,
        min_value: float = 0.0,
        max_value: float = 1.0,
        rate: float = 1.0,
        dim: int | Sequence[int] | None = None,
    ) -> None:
        super().__init__(dim)
        self.min_value = check_number("min_value", min_value, low=0)
        self.max_value = check_number("max_value", max_value, low=self.min_value, allow_inf=True)
        self.rate = check_number("rate", rate, low=0, high=1)

    def __call__(self, weight: Tensor) -> Tensor:
        norms = self._norms(weight)
        desired = self.rate * norms.clamp(self.min_value, self.max_value) + (1 - self.rate) * norms
        return weight * (desired / (norms + _EPS))

    def __repr__(self) -> str:
        return f"MinMaxNorm(min_value={self.min_value:g}, max_value={self.max_value:g}, rate={self.rate:g}{self._dim_repr()})"
