"""explain_param_groups and check_param_groups: what an optimizer's groups hold."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from blockzoo.optim._factory import IMPLEMENTATION_KEY, RULE_KEY

__all__ = ["ParamGroupsReport", "check_param_groups", "explain_param_groups"]

# Keys that torch.optim.lr_scheduler writes into or reads from a param group.
_SCHEDULER_KEYS = frozenset({"initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"})
_STRUCTURAL_KEYS = frozenset({"params", "param_names"})
# Keys create_optimizer writes for explain_param_groups.
_BLOCKZOO_KEYS = frozenset({RULE_KEY, IMPLEMENTATION_KEY})


def _names(optimizer: torch.optim.Optimizer, model: nn.Module | None) -> list[list[str]]:
    by_id = {id(p): n for n, p in model.named_parameters()} if model is not None else {}
    names = []
    for i, group in enumerate(optimizer.param_groups):
        given = group.get("param_names")
        if given is not None:
            names.append(list(given))
        else:
            names.append([by_id.get(id(p), f"group{i}.params.{j}") for j, p in enumerate(group["params"])])
    return names


@dataclass
class ParamGroupsReport:
    """The groups of an optimizer as a table; ``str(report)`` renders it.

    Attributes:
        optimizer: The optimizer's class name.
        implementation: fused, foreach or for-loop, and why.
        groups: One dict per group: ``lr``, ``weight_decay``, ``tensors``,
            ``elements``, ``rule`` and ``params`` (names).
        per_param: Whether ``str()`` lists each parameter.

    Example:
        >>> import torch.nn as nn
        >>> import blockzoo
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
        >>> opt = blockzoo.create_optimizer(model, "adamw", lr=1e-3, weight_decay=0.05)
        >>> print(blockzoo.explain_param_groups(opt))
        AdamW, fused (chosen: every parameter is a floating-point tensor on a fused-capable device)
        group  lr      weight_decay  tensors  elements  rule
        0      0.001   0.05          1        32        decay
        1      0.001   0             3        24        no decay: role bias, role norm
    """

    optimizer: str
    implementation: str
    groups: list[dict[str, object]] = field(default_factory=list)
    per_param: bool = False

    def __str__(self) -> str:
        lines = [f"{self.optimizer}, {self.implementation}"]
        header = f"{'group':<7}{'lr':<8}{'weight_decay':<14}{'tensors':<9}{'elements':<10}rule"
        lines.append(header)
        for i, g in enumerate(self.groups):
            lines.append(
                f"{i:<7}{g['lr']:<8.3g}{g['weight_decay']:<14.3g}{g['tensors']:<9}{g['elements']:<10}{g['rule']}".rstrip()
            )
            if self.per_param:
                lines.extend(f"         {name}" for name in g["params"])  # type: ignore[attr-defined]
        return "\n".join(lines)


def explain_param_groups(
    optimizer: torch.optim.Optimizer, model: nn.Module | None = None, *, per_param: bool = False
) -> ParamGroupsReport:
    """Describe each param group: lr, weight decay, tensors, elements and the rule that formed it.

    Works on any optimizer; the rule and the implementation choice are known
    for optimizers built by :func:`create_optimizer`, which keeps them in each
    group's ``"rule"`` and ``"implementation"`` keys: a deep copy of the
    optimizer, or one that loaded its ``state_dict``, reads the same. Parameter
    names come from the groups' ``param_names`` or, given ``model``, from the
    model.

    Args:
        optimizer: Any optimizer.
        model: The model, to name parameters of groups without names.
        per_param: List every parameter under its group.

    Returns:
        A report; ``print()`` it for the table.

    Example:
        >>> import torch, torch.nn as nn
        >>> from blockzoo import explain_param_groups
        >>> model = nn.Linear(3, 2)
        >>> print(explain_param_groups(torch.optim.SGD(model.parameters(), lr=0.1), model, per_param=True))
        SGD, torch's default implementation
        group  lr      weight_decay  tensors  elements  rule
        0      0.1     0             2        8         (not built by blockzoo)
                 weight
                 bias
    """
    implementation = next(
        (g[IMPLEMENTATION_KEY] for g in optimizer.param_groups if isinstance(g.get(IMPLEMENTATION_KEY), str)),
        "torch's default implementation",
    )
    names = _names(optimizer, model)
    report = ParamGroupsReport(type(optimizer).__name__, implementation, per_param=per_param)
    for i, group in enumerate(optimizer.param_groups):
        params = group["params"]
        rule = group.get(RULE_KEY)
        if not isinstance(rule, str):
            rule = "(not built by blockzoo)"
        report.groups.append(
            {
                "lr": float(group.get("lr", float("nan"))),
                "weight_decay": float(group.get("weight_decay", 0.0)),
                "tensors": len(params),
                "elements": sum(p.numel() for p in params),
                "rule": rule,
                "params": names[i],
            }
        )
    return report


def check_param_groups(optimizer: torch.optim.Optimizer, model: nn.Module | None = None) -> list[str]:
    """Problems with an optimizer's groups, in words; an empty list when there are none.

    Flags parameters that appear twice (shared between groups), frozen
    parameters, trainable parameters of ``model`` that no group holds, and
    group keys that neither the optimizer nor any ``torch.optim.lr_scheduler``
    reads (such a key, like a layer-decay scale, silently does nothing).

    Args:
        optimizer: Any optimizer.
        model: The model it should train, to find unmatched parameters.

    Returns:
        One line per problem.

    Example:
        >>> import torch, torch.nn as nn
        >>> from blockzoo import check_param_groups
        >>> model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
        >>> opt = torch.optim.SGD([{"params": model[0].parameters(), "lr_scale": 0.5}], lr=0.1)
        >>> for line in check_param_groups(opt, model):
        ...     print(line)
        group 0 has key 'lr_scale' that neither SGD nor any torch.optim.lr_scheduler reads
        unmatched: 1.weight is trainable but in no group
        unmatched: 1.bias is trainable but in no group
    """
    problems: list[str] = []
    names = _names(optimizer, model)
    seen: dict[int, str] = {}
    known = set(optimizer.defaults) | _SCHEDULER_KEYS | _STRUCTURAL_KEYS | _BLOCKZOO_KEYS
    for i, group in enumerate(optimizer.param_groups):
        for key in sorted(set(group) - known):
            problems.append(
                f"group {i} has key {key!r} that neither {type(optimizer).__name__} nor any "
                "torch.optim.lr_scheduler reads"
            )
        for name, p in zip(names[i], group["params"], strict=True):
            if id(p) in seen:
                problems.append(f"shared: {name} appears twice (also as {seen[id(p)]})")
            seen[id(p)] = name
            if not p.requires_grad:
                problems.append(f"frozen: {name} does not require grad but is in group {i}")
    if model is not None:
        for name, p in model.named_parameters():
            if p.requires_grad and id(p) not in seen:
                problems.append(f"unmatched: {name} is trainable but in no group")
    return problems
