"""``init_weights``: a scheme, role and name rules, path-keyed seeding; and the blocks' default init."""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from blockzoo._checks import check_module, is_int
from blockzoo._names import GlobsLike
from blockzoo.init._defaults import WEIGHT_LAYERS, activation_initializer, activations_after
from blockzoo.init._functions import Initializer, get_initializer
from blockzoo.init._records import set_record
from blockzoo.init._report import InitReport, InitRow, _std
from blockzoo.roles import Role, RolesLike, param_roles, select_as

__all__ = ["InitRule", "InitSpec", "default_init_", "init_weights", "param_generator"]

#: An initializer: a registered name, an :class:`Initializer`, or any callable
#: that fills a tensor in place (it receives ``generator=`` if it accepts it).
InitSpec = str | Initializer | Callable[..., Any]

_ZEROS = Initializer("zeros")
_ONES = Initializer("ones")
_EMBEDDING = Initializer("normal")  # torch's own default for nn.Embedding


class _CallableInit:
    """A user callable in the same shape as :class:`Initializer`."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        try:
            params = inspect.signature(fn).parameters
            self._takes_generator = "generator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):  # builtins without a signature
            self._takes_generator = False

    def __call__(self, tensor: Tensor, *, generator: torch.Generator | None = None) -> Any:
        return self.fn(tensor, generator=generator) if self._takes_generator else self.fn(tensor)

    def moments(self, tensor: Tensor) -> tuple[float, float] | None:
        return None

    def __str__(self) -> str:
        fn = self.fn
        if isinstance(fn, functools.partial):
            args = ", ".join([*map(repr, fn.args), *(f"{k}={v!r}" for k, v in fn.keywords.items())])
            return f"{getattr(fn.func, '__name__', 'partial')}({args})"
        return getattr(fn, "__qualname__", None) or repr(fn)


_Init = Initializer | _CallableInit


def _as_init(spec: InitSpec, argname: str) -> _Init:
    if isinstance(spec, Initializer):
        return spec
    if isinstance(spec, str):
        return Initializer(get_initializer(spec).name)
    if callable(spec):
        return _CallableInit(spec)
    raise TypeError(
        f"{argname} must be a registered initializer name (see blockzoo.init.list_initializers()), an "
        f"Initializer or a callable that fills a tensor in place. Received: {argname}={spec!r}"
    )


@dataclass(frozen=True)
class InitRule:
    """Initialise the parameters picked by role and name glob (as :func:`blockzoo.select`) with ``init``.

    In :func:`init_weights`, the last rule that picks a parameter wins; a rule
    that picks nothing, or whose ``include`` or ``exclude`` glob matches no
    parameter name, is an error (the same strictness as :func:`blockzoo.select`). The tuple ``(selector, init)`` is short
    for a rule: a :class:`~blockzoo.Role` or role name selects by role, any
    other string is an ``include`` glob.

    Attributes:
        init: A registered name, an :class:`Initializer` or a callable.
        roles: Roles to pick; ``None`` for any.
        include: Name glob(s) to pick; ``None`` for any.
        exclude: Name glob(s) to leave out.

    Example:
        >>> from blockzoo.init import InitRule, initializer
        >>> rule = InitRule(initializer("normal", std=0.01), include="head.*")
        >>> rule.roles is None
        True
    """

    init: InitSpec
    roles: RolesLike = None
    include: GlobsLike = None
    exclude: GlobsLike = None


RuleLike = InitRule | tuple[Any, InitSpec] | Mapping[str, Any]


def _as_rule(rule: RuleLike, index: int) -> InitRule:
    if isinstance(rule, InitRule):
        return rule
    if isinstance(rule, Mapping):
        return InitRule(**rule)
    if isinstance(rule, tuple) and len(rule) == 2:
        selector, init = rule
        if isinstance(selector, Role) or (isinstance(selector, str) and selector in {r.value for r in Role}):
            return InitRule(init, roles=selector)
        if isinstance(selector, str):
            return InitRule(init, include=selector)
    raise TypeError(
        "each rule must be an InitRule, a dict of its fields, or a (role or glob, initializer) pair. "
        f"Received: rules[{index}]={rule!r}"
    )


def param_generator(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from ``seed`` and a parameter's qualified name alone.

    Adding, removing or reordering other parameters leaves its draws unchanged.

    Example:
        >>> from blockzoo.init import param_generator
        >>> a = param_generator(0, "head.fc.weight").initial_seed()
        >>> a == param_generator(0, "head.fc.weight").initial_seed() != param_generator(0, "head.fc.bias").initial_seed()
        True
    """
    digest = hashlib.blake2b(f"{seed}\0{name}".encode(), digest_size=8).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest, "little") >> 1)


def _role_default(role: Role, name: str, tensor: Tensor, weight_init: _Init | None) -> _Init | None:
    if role is Role.WEIGHT:
        return weight_init if tensor.dim() >= 2 else None
    if role is Role.BIAS:
        return _ZEROS
    if role is Role.NORM:
        return _ZEROS if name.rsplit(".", 1)[-1] == "bias" else _ONES
    if role is Role.EMBEDDING:
        return _EMBEDDING
    return None  # scale and other parameters: their module's own choice stands


def _owns_tensors(module: nn.Module) -> bool:
    """Whether ``module`` itself (not its children) has a parameter or a buffer."""
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))


def _owners(model: nn.Module) -> dict[str, nn.Module]:
    return {
        f"{mname}.{pname}" if mname else pname: module
        for mname, module in model.named_modules()
        for pname, _ in module.named_parameters(recurse=False)
    }


#: The initializers that fill a constant exact in every floating dtype, so that the records need not read it back.
_FILLS = {"zeros": 0.0, "ones": 1.0}


def _apply(
    owners: Mapping[str, nn.Module],
    items: list[tuple[str, nn.Parameter, _Init]],
    generator_for: Callable[[str, Tensor], Any],
) -> InitReport:
    # Validate every registered initializer against its tensor before changing anything
    # (fan-based ones need 2-D tensors), so that a bad plan leaves the model untouched.
    expected: list[float | None] = []
    for name, p, init in items:
        try:
            moments = init.moments(p)
        except ValueError as err:
            raise ValueError(f"{init} cannot initialise {name} (shape {list(p.shape)}): {err}") from None
        expected.append(None if moments is None else moments[1])
    backups: list[tuple[nn.Parameter, Tensor]] = []
    keep_backups = any(isinstance(init, _CallableInit) for _, _, init in items)
    with torch.no_grad():
        for name, p, init in items:
            if keep_backups:
                backups.append((p, p.detach().clone()))
            try:
                init(p, generator=generator_for(name, p))
            except Exception:
                for q, old in backups:  # a user callable failed: put everything back
                    q.copy_(old)
                raise
    for (name, _, init), std in zip(items, expected, strict=True):  # recorded once everything succeeded
        fill = _FILLS.get(init.name) if isinstance(init, Initializer) and not init.kwargs else None
        set_record(owners[name], name.rpartition(".")[2], str(init), std, fill=fill)

    def rows() -> list[InitRow]:
        return [
            InitRow(name, tuple(p.shape), str(init), std, _std(p), "initialized")
            for (name, p, init), std in zip(items, expected, strict=True)
        ]

    return InitReport(rows)


def init_weights(
    model: nn.Module,
    scheme: InitSpec | None = None,
    *,
    rules: Iterable[RuleLike] = (),
    seed: int | None = None,
    generator: torch.Generator | None = None,
    include_frozen: bool = False,
) -> InitReport:
    """Initialise ``model``'s parameters by role, with rules for the exceptions; returns what it did.

    Without a scheme, each conv and linear weight gets the activation-aware
    default for the activation after it (see :func:`activation_initializer`);
    with one, every weight of two or more dimensions gets the scheme. Either
    way biases become zero, norm scales one and norm shifts zero, embeddings
    ``N(0, 1)``; scale and other parameters keep their values unless a rule
    picks them. Rules come last and the last matching rule wins.

    Args:
        model: Any module.
        scheme: The initializer for weights (a registered name, an
            :class:`Initializer` or a callable), or ``None`` for the
            activation-aware defaults.
        rules: :class:`InitRule` objects, dicts of their fields, or
            ``(role or glob, initializer)`` pairs.
        seed: Seed each parameter from this and its qualified name (see
            :func:`param_generator`), so inserting a layer leaves every other
            parameter's draws bit-identical.
        generator: One generator for all draws, in ``named_parameters()`` order.
        include_frozen: Also initialise parameters with ``requires_grad=False``.

    Returns:
        An :class:`InitReport` of the parameters initialised.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: a rule picks no parameter or has a glob that matches no
            parameter name (close names are suggested), an initializer does
            not suit a parameter's shape, or both ``seed`` and ``generator``
            are given.
        UnknownNameError: an unknown initializer or role name.

    Example:
        >>> import torch
        >>> import blockzoo
        >>> model = blockzoo.create_model("simple_cnn", num_classes=10)
        >>> report = blockzoo.init_weights(model, rules=[("head.*", blockzoo.init.initializer("normal", std=0.01))], seed=0)
        >>> report["head.fc.weight"].initializer, report["head.fc.bias"].initializer
        ('normal(std=0.01)', 'normal(std=0.01)')
        >>> report["features.stage1.convs.0.conv.weight"].initializer
        "kaiming_normal(mode='fan_in', nonlinearity='relu')"
    """
    check_module("model", model)
    if seed is not None and not is_int(seed):
        raise TypeError(f"seed must be an int or None. Received: seed={seed!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None. Received: generator={generator!r}")
    if seed is not None and generator is not None:
        raise ValueError("pass seed or generator, not both. Received: seed and generator")
    if not isinstance(include_frozen, bool):
        raise TypeError(f"include_frozen must be a bool. Received: include_frozen={include_frozen!r}")
    weight_init = None if scheme is None else _as_init(scheme, "scheme")
    if isinstance(rules, (str, InitRule)) or not isinstance(rules, Iterable):
        raise TypeError(f"rules must be a list of rules. Received: rules={rules!r}")
    parsed = [_as_rule(rule, i) for i, rule in enumerate(rules)]
    resolved = []
    for i, rule in enumerate(parsed):
        chosen = select_as(
            model, roles=rule.roles, include=rule.include, exclude=rule.exclude, argprefix=f"rules[{i}]."
        )
        picked = {name for name, _ in chosen}
        if not picked:
            raise ValueError(
                f"rules[{i}] picks no parameter of {type(model).__name__} (roles={rule.roles!r}, "
                f"include={rule.include!r}, exclude={rule.exclude!r}). Received: rules[{i}]={rule!r}"
            )
        resolved.append((picked, _as_init(rule.init, f"rules[{i}].init")))

    roles = param_roles(model)
    acts = activations_after(model) if weight_init is None else {}
    owners = _owners(model)
    items: list[tuple[str, nn.Parameter, _Init]] = []
    for name, p in model.named_parameters():
        if not (p.requires_grad or include_frozen):
            continue
        init: _Init | None = None
        for picked, rule_init in reversed(resolved):
            if name in picked:
                init = rule_init
                break
        if init is None:
            default = weight_init
            owner = owners[name]
            if default is None and isinstance(owner, WEIGHT_LAYERS) and p is owner.weight:
                default = activation_initializer(acts.get(owner))
            elif default is None:
                default = activation_initializer(None)
            init = _role_default(roles[name], name, p, default)
        if init is not None:
            items.append((name, p, init))

    def generator_for(name: str, p: Tensor) -> torch.Generator | None:
        if seed is not None and not p.is_meta:
            return param_generator(seed, name, p.device)
        return generator

    return _apply(owners, items, generator_for)


def default_init_(module: nn.Module) -> None:
    """The blocks' ``reset_parameters``: the activation-aware default for every conv and linear layer.

    Conv and linear weights get :func:`activation_initializer` for the
    activation after them, and their biases zero; any other sub-module that
    owns parameters or buffers resets itself (norm layers, PReLU, a
    sub-block's own parameters).

    Example:
        >>> import torch
        >>> from blockzoo.init import default_init_
        >>> net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
        >>> default_init_(net)
        >>> net[0].bias.abs().sum().item()
        0.0
    """
    acts = activations_after(module)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, WEIGHT_LAYERS):
                init = activation_initializer(acts.get(m))
                moments = init.moments(m.weight)
                init(m.weight)
                set_record(m, "weight", str(init), None if moments is None else moments[1])
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
                    set_record(m, "bias", "zeros", 0.0, fill=0.0)
            elif m is not module and _owns_tensors(m):
                reset = getattr(m, "reset_parameters", None)
                if callable(reset):
                    reset()
