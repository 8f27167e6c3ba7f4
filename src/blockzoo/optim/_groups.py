"""Parameter groups by role: weight decay, lr multipliers and layer-wise lr decay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from blockzoo._checks import check_number
from blockzoo._names import check_globs_match, matches_any
from blockzoo.roles import Role, as_roles, param_roles

__all__ = ["DEFAULT_NO_WEIGHT_DECAY_ROLES", "GroupRule", "ParamsLike", "param_groups"]

DEFAULT_NO_WEIGHT_DECAY_ROLES = ("bias", "norm", "embedding", "scale")

ParamsLike = nn.Module | Iterable[nn.Parameter] | Iterable[tuple[str, nn.Parameter]]


@dataclass(frozen=True)
class GroupRule:
    """Why the parameters of one group share their settings.

    Attributes:
        decay: Whether weight decay applies.
        lr_scale: The group's lr over the base lr (multiplier times layer decay).
        reason: In words, for :func:`explain_param_groups`.

    Example:
        >>> from blockzoo.optim import GroupRule
        >>> GroupRule(False, 1.0, "no decay: role bias").reason
        'no decay: role bias'
    """

    decay: bool
    lr_scale: float
    reason: str


def _named(params: ParamsLike) -> tuple[list[tuple[str, nn.Parameter]], dict[str, Role] | None]:
    if isinstance(params, nn.Module):
        return list(params.named_parameters()), param_roles(params)
    items: list[Any] = list(params)
    if all(isinstance(p, nn.Parameter) for p in items):
        return [(f"params.{i}", p) for i, p in enumerate(items)], None
    if all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], nn.Parameter) for p in items):
        named = [(str(name), p) for name, p in items]
        return named, _roles_from_names(named)
    raise TypeError(
        "model_or_params must be an nn.Module, an iterable of nn.Parameter or of (name, nn.Parameter) pairs. "
        f"Received: model_or_params={type(params).__name__}"
    )


def _owner_and_tensor(name: str) -> tuple[str, str]:
    """``"0.bias"`` -> ``("0", "bias")``; a parametrization's ``original`` stands for its owner's tensor."""
    owner, _, leaf = name.rpartition(".")
    head, _, rest = owner.rpartition(".parametrizations.")
    if rest and "." not in rest and leaf.startswith("original"):
        return head, rest
    if owner.startswith("parametrizations.") and owner.count(".") == 1 and leaf.startswith("original"):
        return "", owner.partition(".")[2]
    return owner, leaf


def _roles_from_names(named: Sequence[tuple[str, nn.Parameter]]) -> dict[str, Role]:
    """Roles of ``(name, parameter)`` pairs, told from names and shapes as torch.nn lays them out.

    Pairs carry no module, so the role :func:`~blockzoo.param_roles` would read
    from the owning layer is inferred from the pairs that share an owner (the
    name up to its last dot):

    * an owner whose parameters are ``weight`` and ``bias`` of one shape, or a
      single 1-D ``weight``, is a norm layer: both are role ``norm``;
    * otherwise a name containing ``bias`` is role ``bias``, and one
      containing ``weight`` with two or more dimensions is role ``weight``;
    * anything else is role ``other``.

    These are the roles torch.nn's conv, linear, recurrent, attention and norm
    layers have. Names cannot tell an embedding table from a bias-free linear
    weight (both are role ``weight`` here), a PReLU slope from a bias-free norm
    (both ``norm``), nor see a block's declared ``scale``: pass the model
    itself for those.
    """
    owners: dict[str, dict[str, nn.Parameter]] = {}
    for name, p in named:
        owner, tensor = _owner_and_tensor(name)
        owners.setdefault(owner, {})[tensor] = p
    roles: dict[str, Role] = {}
    for name, p in named:
        owner, tensor = _owner_and_tensor(name)
        siblings = owners[owner]
        shapes = {n: q.shape for n, q in siblings.items()}
        is_norm = (set(shapes) == {"weight", "bias"} and shapes["weight"] == shapes["bias"]) or (
            set(shapes) == {"weight"} and len(shapes["weight"]) == 1
        )
        if is_norm:
            roles[name] = Role.NORM
        elif "bias" in tensor:
            roles[name] = Role.BIAS
        elif "weight" in tensor and p.ndim >= 2:
            roles[name] = Role.WEIGHT
        else:
            roles[name] = Role.OTHER
    return roles


_DECLARATIONS = ("no_weight_decay", "no_weight_decay_keywords")


def _declaration(module: nn.Module, method: str) -> list[str] | None:
    """What ``module.<method>()`` returns, checked to be parameter names; ``None`` without the method."""
    if not callable(getattr(type(module), method, None)):  # a method, not a child module of that name
        return None
    value = getattr(module, method)()
    if isinstance(value, str) or not isinstance(value, Iterable):
        value_ok = False
    else:
        value = list(value)
        value_ok = all(isinstance(v, str) for v in value)
    if not value_ok:
        call = f"{type(module).__name__}.{method}()"
        raise TypeError(f"{call} must return a collection of strings. Received: {call}={value!r}")
    return sorted(value)


def _declared_no_decay(model: nn.Module) -> dict[int, str]:
    """Parameters that ``model`` or its modules declare free of weight decay, by ``id``, with the reason.

    A module's ``no_weight_decay()`` names its parameters (relative to that
    module) and ``no_weight_decay_keywords()`` gives substrings of their names,
    the convention of timm and many vision-transformer codebases. Names that
    are not parameters (timm's ViT lists ``dist_token`` even without one) are
    ignored, and the reason says so.
    """
    declared: dict[int, str] = {}
    for prefix, module in model.named_modules():
        found = {m: _declaration(module, m) for m in _DECLARATIONS}
        if found["no_weight_decay"] is None and found["no_weight_decay_keywords"] is None:
            continue
        params = dict(module.named_parameters(remove_duplicate=False))
        who = prefix or "model"
        names = found["no_weight_decay"] or []
        missing = [n for n in names if n not in params]
        reason = f"{who}.no_weight_decay()"
        if missing:
            reason += f" (not parameters, ignored: {', '.join(map(repr, missing))})"
        for n in names:
            if n in params:
                declared.setdefault(id(params[n]), reason)
        keywords = found["no_weight_decay_keywords"] or []
        for n, p in params.items():
            if any(k in n for k in keywords):
                declared.setdefault(id(p), f"{who}.no_weight_decay_keywords()")
    return declared


def _depths(model: nn.Module | None, names: Sequence[str]) -> dict[str, int]:
    """Depth of each parameter from the input: a model's ``param_depths()``, else its children's order."""
    declared = getattr(model, "param_depths", None)
    if callable(declared):
        depths = dict(declared())
        missing = [n for n in names if n not in depths]
        if missing:
            raise ValueError(f"param_depths() of {type(model).__name__} leaves out {missing[:3]}")
        return {n: int(depths[n]) for n in names}
    order: dict[str, int] = {}
    for name in names:
        top = name.split(".", 1)[0] if "." in name else ""
        order.setdefault(top, len(order))
    return {n: order[n.split(".", 1)[0] if "." in n else ""] for n in names}


def param_groups(
    model_or_params: ParamsLike,
    *,
    lr: float,
    weight_decay: float = 0.0,
    no_weight_decay_roles: Iterable[Role | str] = DEFAULT_NO_WEIGHT_DECAY_ROLES,
    lr_multipliers: Mapping[str, float] | None = None,
    layer_decay: float | None = None,
) -> tuple[list[dict[str, Any]], list[GroupRule]]:
    """Split the trainable parameters into optimizer groups by role, lr multiplier and depth.

    Rules:

    * frozen parameters (``requires_grad=False``) are left out; a shared
      parameter appears once;
    * a parameter gets ``weight_decay`` unless its role is in
      ``no_weight_decay_roles``, the model declares it free of decay, or it
      is a 1-D parameter of role ``other``;
    * a model declares parameters free of decay as timm's models do: a
      ``no_weight_decay()`` method returning parameter names and a
      ``no_weight_decay_keywords()`` method returning substrings of names, on
      the model or on any of its modules (names relative to that module).
      Declared names that are not parameters are ignored (timm's ViT lists
      ``dist_token`` with or without one) and the group's rule says so;
    * roles come from :func:`~blockzoo.param_roles` for a model. Pairs carry no
      module, so a pair's role is told from the pairs that share its owner (the
      name up to the last dot), as torch.nn lays out parameters: ``weight``
      and ``bias`` of one shape, or a lone 1-D ``weight``, are role ``norm``;
      otherwise a name containing ``bias`` is role ``bias`` and one containing
      ``weight`` with two or more dimensions role ``weight``; the rest are
      role ``other``. For torch.nn's conv, linear, recurrent, attention and
      norm layers this gives the model's groups; names cannot tell an
      embedding table (role ``weight`` here), a PReLU slope (``norm``) or a
      block's declared scale (``other``), nor see a model's declarations, so
      pass the model itself for those. Plain parameters are all role ``other``;
    * ``lr_multipliers`` maps name globs to factors; the last matching glob wins;
    * ``layer_decay`` scales the lr of a parameter at depth ``d`` of ``L`` by
      ``layer_decay ** (L - 1 - d)``, so the last layer trains at the full lr.
      Depth comes from the model's ``param_depths()`` when it has one, else from
      the order of its top-level children.

    Each group carries the real ``lr`` and ``initial_lr``, so any
    ``torch.optim.lr_scheduler`` keeps the ratios, and its parameters as
    ``(name, parameter)`` pairs, which torch's optimizers keep as the group's
    ``param_names``.

    Args:
        model_or_params: A model, or parameters (optionally as ``(name, p)`` pairs).
        lr: The base learning rate.
        weight_decay: Weight decay of the decayed groups.
        no_weight_decay_roles: Roles exempt from weight decay.
        lr_multipliers: ``{name_glob: factor}``.
        layer_decay: Layer-wise lr decay in ``(0, 1]``, or ``None``.

    Returns:
        The groups, and the rule that formed each one.

    Raises:
        ValueError: a negative lr or weight decay, a multiplier glob that
            matches no trainable parameter, a layer decay outside ``(0, 1]``,
            or no trainable parameter at all.

    Example:
        >>> import torch.nn as nn
        >>> from blockzoo.optim import param_groups
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 2))
        >>> groups, rules = param_groups(model, lr=0.1, weight_decay=1e-4, lr_multipliers={"3.*": 10})
        >>> [([n for n, _ in g["params"]], g["lr"], g["weight_decay"]) for g in groups]
        [(['0.weight'], 0.1, 0.0001), (['0.bias', '1.weight', '1.bias'], 0.1, 0.0), (['3.weight'], 1.0, 0.0001), (['3.bias'], 1.0, 0.0)]
    """
    lr = check_number("lr", lr, low=0)
    weight_decay = check_number("weight_decay", weight_decay, low=0)
    exempt = as_roles(no_weight_decay_roles)
    layer_decay = check_number("layer_decay", layer_decay, low=0, high=1, low_open=True, allow_none=True)
    multipliers = dict(lr_multipliers or {})
    for glob, factor in multipliers.items():
        check_number(f"lr_multipliers[{glob!r}]", factor, low=0)

    named, roles = _named(model_or_params)
    model = model_or_params if isinstance(model_or_params, nn.Module) else None
    declared = _declared_no_decay(model) if model is not None else {}
    seen: set[int] = set()
    trainable = []
    for name, p in named:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            trainable.append((name, p))
    if not trainable:
        raise ValueError("model_or_params has no trainable parameter (all are frozen or there are none).")
    names = [n for n, _ in trainable]
    check_globs_match("lr_multipliers", multipliers, names, what="trainable parameter", received=multipliers)
    depths = _depths(model, names) if layer_decay is not None else {}
    num_layers = max(depths.values(), default=0) + 1

    buckets: dict[tuple[bool, float], tuple[list[str], list[tuple[str, nn.Parameter]]]] = {}
    for name, p in trainable:
        role = roles[name] if roles is not None else Role.OTHER
        if role in exempt:
            decay, why = False, f"no decay: role {role.value}"
        elif id(p) in declared:
            decay, why = False, f"no decay: {declared[id(p)]}"
        elif role is Role.OTHER and p.ndim <= 1:
            decay, why = False, "no decay: 1-D parameter"
        else:
            decay, why = True, "decay"
        scale = 1.0
        hits = [g for g in multipliers if matches_any(name, (g,))]
        if hits:
            scale *= multipliers[hits[-1]]
            why += f", lr x{multipliers[hits[-1]]:g} ({hits[-1]})"
        if layer_decay is not None:
            depth = depths[name]
            scale *= layer_decay ** (num_layers - 1 - depth)
            why += f", layer {depth}/{num_layers - 1}"
        key = (decay, scale)
        if key not in buckets:
            buckets[key] = ([], [])
        if why not in buckets[key][0]:
            buckets[key][0].append(why)
        buckets[key][1].append((name, p))

    groups, rules = [], []
    for (decay, scale), (reasons, members) in buckets.items():
        rule = GroupRule(decay, scale, _merge_reasons(reasons))
        group_lr = lr * scale
        groups.append(
            {
                "params": members,  # (name, parameter) pairs: torch keeps the names as "param_names"
                "lr": group_lr,
                "initial_lr": group_lr,
                "weight_decay": weight_decay if decay else 0.0,
            }
        )
        rules.append(rule)
    return groups, rules


def _merge_reasons(reasons: list[str]) -> str:
    """``"no decay: role norm"`` and ``"no decay: role bias"`` -> ``"no decay: role norm, role bias"``."""
    head, _, _ = reasons[0].partition(": ")
    if len(reasons) > 1 and all(r.startswith(head + ": ") for r in reasons):
        return head + ": " + ", ".join(r.partition(": ")[2] for r in reasons)
    return "; ".join(reasons)
