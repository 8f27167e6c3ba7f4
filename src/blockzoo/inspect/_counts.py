"""count_params and flops: the two numbers people quote about a model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

from torch import nn

from blockzoo._checks import check_bool, check_module
from blockzoo.inspect._passes import check_materialized, make_inputs, trace

__all__ = ["count_params", "flops"]


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """The number of parameter elements in ``model``, each parameter counted once.

    A parameter reachable under two names (a tied embedding and classifier,
    or a module used in two places) is counted once, as
    ``model.parameters()`` lists it once.

    Args:
        model: Any module.
        trainable_only: Count only the parameters with ``requires_grad``.

    Returns:
        The number of elements.

    Raises:
        ValueError: a lazy layer has not run yet, so its parameters have no size.

    Example:
        >>> import torch.nn as nn
        >>> from blockzoo import count_params
        >>> model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
        >>> count_params(model)
        23
        >>> model[0].requires_grad_(False)
        Linear(in_features=4, out_features=3, bias=True)
        >>> count_params(model, trainable_only=True)
        8
    """
    check_module("model", model, caller="count_params")
    check_bool("trainable_only", trainable_only)
    check_materialized(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@overload
def flops(
    model: nn.Module, input_size: Sequence[int] | Sequence[Sequence[int]], *, by_module: Literal[False] = ...
) -> int: ...


@overload
def flops(
    model: nn.Module, input_size: Sequence[int] | Sequence[Sequence[int]], *, by_module: Literal[True]
) -> dict[str, int]: ...


def flops(
    model: nn.Module, input_size: Sequence[int] | Sequence[Sequence[int]], *, by_module: bool = False
) -> int | dict[str, int]:
    """The floating-point operations of one forward pass, as :class:`~torch.utils.flop_counter.FlopCounterMode` counts them.

    FlopCounterMode counts 2 FLOPs per multiply-accumulate of matrix
    multiplications and convolutions (and attention), and nothing for
    element-wise operations, norms and pooling. Papers often quote
    multiply-accumulates (MACs) as "FLOPs": those are half these. The pass
    runs on the meta device (no memory, no compute) in the model's modes, with
    the model's dtype, and leaves the model as it was (see :func:`summary`).

    Args:
        model: Any module.
        input_size: The shape of one input batch, batch dimension included,
            such as ``(1, 3, 32, 32)``; or one shape per positional input.
            The count is for that whole batch.
        by_module: Return each module's FLOPs (its children's included),
            keyed by qualified name, the whole model under ``""``.

    Returns:
        The FLOPs, or a dict of them.

    Example:
        >>> import torch.nn as nn
        >>> from blockzoo import flops
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> flops(model, (1, 3, 8, 8))  # 192 x 10 multiply-accumulates, 2 FLOPs each
        3840
        >>> flops(model, (4, 3, 8, 8), by_module=True)
        {'': 15360, '0': 0, '1': 15360}
    """
    check_module("model", model, caller="flops")
    if not isinstance(by_module, bool):
        raise TypeError(f"by_module must be a bool. Received: by_module={by_module!r}")
    inputs = make_inputs(model, input_size, None, None)
    if inputs is None:
        raise TypeError(
            "flops needs input_size, the shape of one input batch such as (1, 3, 32, 32). Received: input_size=None"
        )
    result = trace(model, inputs)
    if not by_module:
        return result.flops
    counted = {name: result.of(m)[0] for name, m in model.named_modules()}
    return {name: call.flops if call is not None else 0 for name, call in counted.items()}
