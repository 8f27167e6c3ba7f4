"""The tensors inside a module's output (a tensor, or tuples, lists and dicts of them).

torch's pytree utilities are private (``torch.utils._pytree``) and a public
module does not exist in the torch versions blockzoo supports; module outputs
need only these three containers.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

__all__ = ["tensor_leaves"]


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
