"""The tensors inside a module's input or output (a tensor, or tuples, lists and dicts of them).

torch's pytree utilities are private (``torch.utils._pytree``) and a public
module does not exist in the torch versions blockzoo supports; module outputs
need only these three containers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

__all__ = ["map_tensors", "tensor_leaves"]


def tensor_leaves(value: Any) -> list[Tensor]:
    """Every tensor in ``value``, depth first, in order (a dict by its values).

    Example:
        >>> import torch
        >>> from blockzoo._trees import tensor_leaves
        >>> [t.shape for t in tensor_leaves((torch.zeros(1), {"a": [torch.zeros(2)], "b": 3}))]
        [torch.Size([1]), torch.Size([2])]
    """
    if isinstance(value, Tensor):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
    return [leaf for item in items for leaf in tensor_leaves(item)]


def map_tensors(fn: Callable[[Tensor], Any], value: Any) -> Any:
    """``value`` with every tensor ``t`` in it replaced by ``fn(t)``; tuples, lists and dicts rebuilt, the rest kept.

    Example:
        >>> import torch
        >>> from blockzoo._trees import map_tensors
        >>> map_tensors(lambda t: tuple(t.shape), {"a": [torch.zeros(2)], "b": (torch.zeros(1, 3), 7)})
        {'a': [(2,)], 'b': ((1, 3), 7)}
    """
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {key: map_tensors(fn, item) for key, item in value.items()}
    if isinstance(value, list):
        return [map_tensors(fn, item) for item in value]
    if isinstance(value, tuple):
        items = [map_tensors(fn, item) for item in value]
        if type(value) is not tuple:
            try:
                return type(value)(*items)  # a namedtuple
            except TypeError:
                pass  # another kind of tuple: its items, as a plain tuple
        return tuple(items)
    return value
