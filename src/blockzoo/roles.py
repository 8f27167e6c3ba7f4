"""Parameter roles: what each parameter of a model is for.

Initializers, regularizers, the optimizer factory and freezing all pick
parameters by role (and by name glob) through :func:`select`, so they compose on
any model, including models blockzoo did not build.

Roles are inferred for the ``torch.nn`` layers that carry parameters (conv,
linear, recurrent, attention, norm and embedding layers). A module may declare
the roles of its own direct parameters with an ``own_param_roles()`` method
returning ``{parameter_name: Role}``; every :class:`~blockzoo.Block` has one.
Any other parameter is :attr:`Role.OTHER`. Parameters reparametrized with
:mod:`torch.nn.utils.parametrize` keep the role of the tensor they stand for.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from torch import nn
from torch.nn.utils import parametrize

from blockzoo._layer_kinds import NORM_LAYERS, WEIGHT_LAYERS
from blockzoo._names import GlobsLike, as_patterns, check_globs_match, close_matches, format_choices, matches_any
from blockzoo.errors import UnknownNameError

__all__ = ["Role", "RolesLike", "param_roles", "select"]


class Role(str, enum.Enum):
    """The role of a parameter; a ``str`` enum, so ``Role.BIAS == "bias"``.

    Example:
        >>> from blockzoo import Role
        >>> [r.value for r in Role]
        ['weight', 'bias', 'norm', 'embedding', 'scale', 'other']
        >>> Role("bias") is Role.BIAS
        True
    """

    WEIGHT = "weight"
    """Kernels and matrices of conv, linear, recurrent and attention layers."""
    BIAS = "bias"
    """Additive biases of those layers."""
    NORM = "norm"
    """Affine parameters of normalisation layers."""
    EMBEDDING = "embedding"
    """Embedding tables."""
    SCALE = "scale"
    """Learned per-channel scales (layer scale, gates) declared by a block."""
    OTHER = "other"
    """Anything else (PReLU slopes, a user's own parameters)."""

    def __str__(self) -> str:
        return self.value


_NORM_TYPES: tuple[type[nn.Module], ...] = NORM_LAYERS
_EMBEDDING_TYPES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)
_WEIGHTED_TYPES: tuple[type[nn.Module], ...] = (
    *WEIGHT_LAYERS,
    nn.Bilinear,
    nn.RNNBase,
    nn.MultiheadAttention,
)


def _infer_role(module: nn.Module, name: str) -> Role:
    """The role of ``module``'s direct parameter ``name``."""
    declare = getattr(module, "own_param_roles", None)
    if callable(declare):
        declared = declare()
        if name in declared:
            return Role(declared[name])
    if isinstance(module, _NORM_TYPES):
        return Role.NORM
    if isinstance(module, _EMBEDDING_TYPES):
        return Role.EMBEDDING
    if isinstance(module, _WEIGHTED_TYPES):
        if "bias" in name:
            return Role.BIAS
        if "weight" in name:
            return Role.WEIGHT
    return Role.OTHER


def param_roles(module: nn.Module) -> dict[str, Role]:
    """The role of every parameter of ``module``, keyed like ``named_parameters()``.

    Args:
        module: Any module.

    Returns:
        ``{qualified_name: Role}`` in ``named_parameters()`` order; a shared
        parameter appears once, under its first name.

    Example:
        >>> import torch.nn as nn
        >>> from blockzoo import param_roles
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 2))
        >>> {k: str(v) for k, v in param_roles(model).items()}
        {'0.weight': 'weight', '0.bias': 'bias', '1.weight': 'norm', '1.bias': 'norm', '2.weight': 'weight', '2.bias': 'bias'}
    """
    modules = dict(module.named_modules())
    roles: dict[str, Role] = {}
    seen: set[int] = set()
    for prefix, sub in modules.items():
        for pname, param in sub.named_parameters(recurse=False, remove_duplicate=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            qualname = f"{prefix}.{pname}" if prefix else pname
            roles[qualname] = _role_in_context(modules, prefix, sub, pname)
    return roles


def _role_in_context(modules: dict[str, nn.Module], prefix: str, sub: nn.Module, pname: str) -> Role:
    """Role of ``sub.pname``; a parametrization's ``original`` takes its owner's role."""
    if isinstance(sub, parametrize.ParametrizationList):
        # prefix is "<owner>.parametrizations.<tensor>"
        owner_prefix, _, tensor = prefix.rpartition(".")
        owner_prefix = owner_prefix.removesuffix("parametrizations").removesuffix(".")
        owner = modules.get(owner_prefix)
        if owner is not None and parametrize.is_parametrized(owner, tensor):
            return _infer_role(owner, tensor)
    return _infer_role(sub, pname)


#: What users pass as roles (a :class:`Role`, a role name, several of either,
#: or ``None`` for every role).
RolesLike = Role | str | Iterable[Role | str] | None


def as_roles(roles: Role | str | Iterable[Role | str]) -> frozenset[Role]:
    """Validate role names and return them as a set of :class:`Role` (used by every tool that takes ``roles=``)."""
    items = [roles] if isinstance(roles, str) else list(roles)
    result = set()
    valid = [r.value for r in Role]
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"roles must be a role name, a Role or an iterable of them. Received: roles={roles!r}")
        if item not in valid:
            hint = close_matches(item, valid)
            did_you_mean = f" Did you mean {format_choices(hint)}?" if hint else ""
            raise UnknownNameError(
                f"Unknown role {item!r}.{did_you_mean} The roles are {format_choices(valid)}. Received: roles={roles!r}"
            )
        result.add(Role(item))
    return frozenset(result)


def select(
    module: nn.Module,
    *,
    roles: RolesLike = None,
    include: GlobsLike = None,
    exclude: GlobsLike = None,
    strict: bool = True,
) -> list[tuple[str, nn.Parameter]]:
    """Parameters of ``module`` picked by role and by name glob.

    A parameter is selected when its role is one of ``roles`` (any role when
    ``None``), its qualified name matches at least one ``include`` glob (any
    name when ``None``) and no ``exclude`` glob. Frozen parameters are selected
    too: ``requires_grad`` is the caller's business.

    Every blockzoo tool that picks parameters (init rules, penalties,
    constraints, gradient hooks, optimizer groups) uses this, with the same
    strictness: a glob, in ``include`` or in ``exclude``, that matches no
    parameter name of ``module`` is an error, since it is almost always a typo
    (an ``exclude`` typo would silently keep what you meant to leave out).
    Globs are checked against every parameter name, whatever ``roles`` says;
    a selection that is empty because of ``roles`` is not an error.

    Args:
        module: Any module.
        roles: A role, a role name, or several; ``None`` for all.
        include: Glob(s) over qualified names such as ``"head.*"``.
        exclude: Glob(s) that remove names again.
        strict: Refuse globs that match no parameter name. Pass ``False`` for
            generic code that applies the same globs to models that may lack
            those parameters.

    Returns:
        ``(name, parameter)`` pairs in ``named_parameters()`` order, each
        parameter once.

    Raises:
        ValueError: with ``strict``, a glob matches no parameter name; the
            message suggests close names.
        UnknownNameError: a role name is not a :class:`Role`.
        TypeError: an argument has the wrong type.

    Example:
        >>> import torch.nn as nn
        >>> from blockzoo import select
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 2))
        >>> [name for name, _ in select(model, roles=["bias", "norm"])]
        ['0.bias', '1.weight', '1.bias', '2.bias']
        >>> [name for name, _ in select(model, include="2.*")]
        ['2.weight', '2.bias']
        >>> select(model, include="2.wieght")
        Traceback (most recent call last):
            ...
        ValueError: include glob '2.wieght' matches no parameter of Sequential. Did you mean '2.weight', '1.weight', '0.weight'? Received: include='2.wieght'
        >>> select(model, include="3.*", strict=False)
        []
    """
    return select_as(module, roles=roles, include=include, exclude=exclude, strict=strict)


def select_as(
    module: nn.Module,
    *,
    roles: RolesLike,
    include: GlobsLike,
    exclude: GlobsLike,
    strict: bool = True,
    argprefix: str = "",
) -> list[tuple[str, nn.Parameter]]:
    """:func:`select` for a tool that takes the same arguments under another name.

    ``argprefix`` goes before the argument names in error messages, e.g.
    ``"rules[0]."`` gives ``rules[0].include glob ...``.
    """
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be a bool. Received: strict={strict!r}")
    wanted = None if roles is None else as_roles(roles)
    inc = as_patterns(include, f"{argprefix}include")
    exc = as_patterns(exclude, f"{argprefix}exclude")
    roles_by_name = param_roles(module)
    if strict:
        names = list(roles_by_name)
        where = f"parameter of {type(module).__name__}"
        check_globs_match(f"{argprefix}include", inc, names, what=where, received=include)
        check_globs_match(f"{argprefix}exclude", exc, names, what=where, received=exclude)
    params = dict(module.named_parameters())
    chosen: list[tuple[str, nn.Parameter]] = []
    for name, role in roles_by_name.items():
        if wanted is not None and role not in wanted:
            continue
        if inc and not matches_any(name, inc):
            continue
        if exc and matches_any(name, exc):
            continue
        chosen.append((name, params[name]))
    return chosen
