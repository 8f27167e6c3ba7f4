"""create_optimizer: any torch.optim optimizer by name, with role-based groups."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from blockzoo._names import reject_unknown_keywords
from blockzoo.optim._groups import DEFAULT_NO_WEIGHT_DECAY_ROLES, GroupRule, ParamsLike, param_groups
from blockzoo.optim._specs import OptimizerSpec, get_optimizer_spec
from blockzoo.roles import Role

__all__ = ["create_optimizer"]


#: Keys that :func:`create_optimizer` writes into every param group, so that what
#: it decided travels with the optimizer (``copy.deepcopy``, ``state_dict``).
RULE_KEY = "rule"
IMPLEMENTATION_KEY = "implementation"

_FUSED_DEVICES = ("cpu", "cuda", "xpu")


def _has_sparse_layers(model_or_params: ParamsLike) -> bool:
    if not isinstance(model_or_params, nn.Module):
        return False
    return any(getattr(m, "sparse", False) is True for m in model_or_params.modules())


def _dense_and_non_overlapping(p: torch.Tensor) -> bool:
    """Whether ``p``'s elements fill its memory span exactly once, in some order of dimensions.

    torch has no public test for this (its own sits in a private module), so it is
    computed from ``stride()``: sorted by stride, each dimension of size above one
    must step over exactly the elements of the dimensions before it. Contiguous,
    channels_last and transposed tensors pass; a view that skips elements
    (``x[..., 0]``) or repeats them (``expand``) does not.
    """
    if p.numel() == 0:  # nothing to update
        return True
    expected = 1
    for stride, size in sorted((st, n) for st, n in zip(p.stride(), p.shape, strict=True) if n != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _strided_note(names: list[str]) -> str:
    count = "1 parameter is a strided view" if len(names) == 1 else f"{len(names)} parameters are strided views"
    shown = ", ".join(map(repr, names[:3])) + (", ..." if len(names) > 3 else "")
    return f"{count}, which fused kernels mishandle: {shown}"


def _choose_implementation(
    spec: OptimizerSpec, groups: list[dict[str, Any]], kwargs: dict[str, Any], sparse: bool
) -> tuple[dict[str, bool], str]:
    """Pick fused, then foreach, when the user did not choose."""
    named = [(n, p) for g in groups for n, p in g["params"]]
    # torch's fused kernels (Adam, AdamW, SGD, Adagrad in torch 2.14) update a parameter that is a view with
    # gaps between its elements as if it were contiguous, and give wrong results; foreach and for-loop do not.
    strided = [n for n, p in named if not _dense_and_non_overlapping(p)]
    if "fused" in kwargs or "foreach" in kwargs:
        chosen = "fused" if kwargs.get("fused") else "foreach" if kwargs.get("foreach") else "for-loop"
        if chosen == "fused" and strided:
            warnings.warn(
                f"{_strided_note(strided)}; their fused updates will be wrong. Leave fused out (blockzoo then "
                "picks foreach) or make them contiguous. Received: fused=True",
                UserWarning,
                stacklevel=4,
            )
            return {}, f"fused (as requested; {_strided_note(strided)})"
        return {}, f"{chosen} (as requested)"
    if sparse or kwargs.get("differentiable"):
        return {}, "torch's default (sparse or differentiable parameters)"
    params = [p for _, p in named]
    plain = all(type(p) is nn.Parameter for p in params)  # DTensor and other subclasses: let torch decide
    fused_capable = plain and all(p.is_floating_point() and p.device.type in _FUSED_DEVICES for p in params)
    if spec.has_fused and fused_capable and not strided:
        return {"fused": True}, "fused (chosen: every parameter is a floating-point tensor on a fused-capable device)"
    why_not_fused = _strided_note(strided) if spec.has_fused and fused_capable else None
    if spec.has_foreach:
        return {"foreach": True}, f"foreach (chosen: {why_not_fused or 'no fused implementation for these parameters'})"
    if why_not_fused:
        return {}, f"for-loop (chosen: {why_not_fused})"
    return {}, "for-loop (the only implementation)"


def _merge_by_lr(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without weight decay only the lr tells groups apart (L-BFGS takes a single group)."""
    merged: dict[float, dict[str, Any]] = {}
    for group in groups:
        target = merged.setdefault(group["lr"], {"params": [], "lr": group["lr"], "initial_lr": group["lr"]})
        target["params"].extend(group["params"])
    return list(merged.values())


def create_optimizer(
    model_or_params: ParamsLike,
    name: str = "adamw",
    *,
    lr: float,
    weight_decay: float = 0.0,
    no_weight_decay_roles: Iterable[Role | str] = DEFAULT_NO_WEIGHT_DECAY_ROLES,
    lr_multipliers: Mapping[str, float] | None = None,
    layer_decay: float | None = None,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """Build any registered optimizer with parameter groups by role.

    Biases, norm parameters, embeddings, scales and other 1-D parameters get no
    weight decay by default; frozen parameters are left out; ``lr_multipliers``
    and ``layer_decay`` write the real ``lr`` (and ``initial_lr``) into each
    group, so any ``torch.optim.lr_scheduler`` keeps the ratios (see
    :func:`param_groups`). When neither ``fused`` nor ``foreach`` is given, the
    fastest implementation that gives correct results is chosen: fused when
    every parameter is a dense floating-point tensor on a fused-capable device
    (torch's fused kernels mishandle strided views such as ``x[..., 0]``), else
    foreach; :func:`explain_param_groups` says which and why.

    What was decided travels with the optimizer: every group holds its rule
    under the key ``"rule"`` and the implementation choice under
    ``"implementation"`` (plain strings), so ``copy.deepcopy``,
    ``state_dict()`` / ``load_state_dict()`` and ``torch.load(...,
    weights_only=True)`` keep what :func:`explain_param_groups` shows.

    A whole configuration can come from a plain dict:
    ``create_optimizer(model, **{"name": "sgd", "lr": 0.1, "momentum": 0.9})``.

    Args:
        model_or_params: A model, or parameters (optionally ``(name, p)`` pairs).
        name: A registered optimizer name (:func:`list_optimizers`).
        lr: The base learning rate.
        weight_decay: Weight decay of the decayed groups.
        no_weight_decay_roles: Roles exempt from weight decay.
        lr_multipliers: ``{name_glob: factor}``; the last matching glob wins.
        layer_decay: Layer-wise lr decay in ``(0, 1]``.
        **kwargs: Passed to the optimizer; checked against its signature.

    Returns:
        The optimizer.

    Raises:
        UnknownNameError: ``name`` is not registered (close matches suggested).
        TypeError: a keyword the optimizer does not take (the accepted ones are listed).
        ValueError: see :func:`param_groups`; or parameters of the wrong rank
            for an optimizer that needs one (Muon: 2-D).

    Example:
        >>> import torch.nn as nn
        >>> import blockzoo
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
        >>> opt = blockzoo.create_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4, momentum=0.9)
        >>> [(g["param_names"], g["weight_decay"]) for g in opt.param_groups]
        [(['0.weight', '2.weight'], 0.0001), (['0.bias', '1.weight', '1.bias', '2.bias'], 0.0)]
        >>> opt.defaults["fused"]
        True
        >>> opt.param_groups[1]["rule"]
        'no decay: role bias, role norm'
    """
    spec = get_optimizer_spec(name)
    reject_unknown_keywords(kwargs, spec.kwargs, owner=spec.cls.__name__)
    groups, rules = param_groups(
        model_or_params,
        lr=lr,
        weight_decay=weight_decay,
        no_weight_decay_roles=no_weight_decay_roles,
        lr_multipliers=lr_multipliers,
        layer_decay=layer_decay,
    )
    if spec.param_ndim is not None:
        wrong = [n for g in groups for n, p in g["params"] if p.ndim != spec.param_ndim]
        if wrong:
            raise ValueError(
                f"{spec.cls.__name__} only takes {spec.param_ndim}-D parameters; {len(wrong)} are not, such as "
                f"{wrong[:3]}. Select the {spec.param_ndim}-D ones (blockzoo.select) and give the rest to another "
                "optimizer."
            )
    if "weight_decay" not in spec.kwargs:
        if weight_decay:
            raise TypeError(f"{spec.cls.__name__} has no weight decay. Received: weight_decay={weight_decay!r}")
        groups = _merge_by_lr(groups)
        rules = [GroupRule(False, g["lr"] / lr if lr else 1.0, "no weight decay in this optimizer") for g in groups]
    implementation, described = _choose_implementation(spec, groups, kwargs, _has_sparse_layers(model_or_params))
    optimizer_cls: Any = spec.cls  # each subclass has its own keywords; checked above against its signature
    for group, rule in zip(groups, rules, strict=True):
        group[RULE_KEY] = rule.reason
        group[IMPLEMENTATION_KEY] = described
    optimizer: torch.optim.Optimizer = optimizer_cls(groups, lr=lr, **implementation, **kwargs)
    return optimizer
