"""``attach_constraint`` (projection after each optimizer step, or a parametrization) and spectral / weight norm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

from blockzoo._names import GlobsLike
from blockzoo.init._records import fingerprint, same_values
from blockzoo.regularization._constraints import Constraint
from blockzoo.regularization._stepping import bind_implicitly, bound_optimizer
from blockzoo.regularization._store import Attachment, RegularizationHandle, attach, pick_params
from blockzoo.roles import RolesLike

__all__ = ["attach_constraint", "attach_spectral_norm", "attach_weight_norm"]

ConstraintLike = Constraint | Callable[[Tensor], Tensor]


class _Constrained(nn.Module):
    """A constraint as a parametrization: the weight the model sees is always projected."""

    def __init__(self, constraint: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.constraint = constraint

    def forward(self, weight: Tensor) -> Tensor:
        return self.constraint(weight)

    def extra_repr(self) -> str:
        return repr(self.constraint)


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    module_name, _, attr = name.rpartition(".")
    return (model.get_submodule(module_name) if module_name else model), attr


def _restore_order(module: nn.Module, order: list[str]) -> None:
    """Put ``module``'s parameters back in their registration order (state-dict and ``parameters()`` order).

    Removing a parametrization registers the parameter again, last; re-registering the
    parameters after it, in order, restores the order through public calls only.
    """
    current = [name for name, _ in module.named_parameters(recurse=False)]
    ranked = sorted(current, key=lambda n: order.index(n) if n in order else len(order))
    if ranked == current:
        return
    first = next(i for i, (a, b) in enumerate(zip(current, ranked, strict=True)) if a != b)
    moved = [(name, getattr(module, name)) for name in ranked[first:]]
    for name, _ in moved:
        delattr(module, name)
    for name, param in moved:
        module.register_parameter(name, param)


def _parametrization_list(module: nn.Module, attr: str) -> parametrize.ParametrizationList:
    return cast(parametrize.ParametrizationList, module.parametrizations[attr])  # type: ignore[index]


def _remove_parametrization(module: nn.Module, attr: str, ours: nn.Module, order: list[str]) -> None:
    """Take ``ours`` out of ``module``'s parametrizations of ``attr``, leaving any others in place."""
    plist = _parametrization_list(module, attr)
    if len(plist) == 1:
        parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
        _restore_order(module, order)
        return
    for i, p in enumerate(plist):
        if p is ours:
            del plist[i]
            return


class _Parametrized(Attachment):
    """Parametrizations registered on picked parameters; undone one by one, newest first."""

    mode = "parametrize"

    def __init__(
        self, model: nn.Module, what: str, params: list[tuple[str, nn.Parameter]], key: tuple[Any, ...]
    ) -> None:
        super().__init__(what, [n for n, _ in params], key, [p for _, p in params])
        self.owners = [(*_owner(model, name), p) for name, p in params]
        self.added: list[tuple[nn.Module, str, nn.Module, list[str]]] = []

    def register(self, module: nn.Module, attr: str) -> nn.Module:
        """Register this attachment's parametrization of ``module.attr``; returns it."""
        raise NotImplementedError

    def apply(self) -> None:
        for name, (module, attr, p) in zip(self.targets, self.owners, strict=True):
            order = [n for n, _ in module.named_parameters(recurse=False)]
            try:
                ours = self.register(module, attr)
            except (IndexError, RuntimeError, ValueError) as err:  # attach() undoes the ones before it
                raise ValueError(f"{self.what} cannot be applied to {name} (shape {list(p.shape)}): {err}") from err
            self.added.append((module, attr, ours, order))

    def undo(self) -> None:
        for module, attr, ours, order in reversed(self.added):
            _remove_parametrization(module, attr, ours, order)


class _ParametrizedConstraint(_Parametrized):
    kind = "constraint"

    def __init__(self, model: nn.Module, constraint: ConstraintLike, params: list[tuple[str, nn.Parameter]]) -> None:
        super().__init__(model, repr(constraint), params, _constraint_key(constraint))
        self.constraint = constraint

    def register(self, module: nn.Module, attr: str) -> nn.Module:
        ours = _Constrained(self.constraint)
        parametrize.register_parametrization(module, attr, ours)
        return ours


class _SpectralNorm(_Parametrized):
    kind = "spectral norm"

    def __init__(self, model: nn.Module, params: list[tuple[str, nn.Parameter]], options: dict[str, Any]) -> None:
        super().__init__(model, "spectral_norm", params, ("spectral norm",))
        self.options = options

    def register(self, module: nn.Module, attr: str) -> nn.Module:
        parametrizations.spectral_norm(module, attr, **self.options)
        return _parametrization_list(module, attr)[-1]


class _ProjectedConstraint(Attachment):
    """Replace each picked parameter by its projection after every training step (Keras's way)."""

    kind = "constraint"
    mode = "project"

    def __init__(self, constraint: ConstraintLike, params: list[tuple[str, nn.Parameter]]) -> None:
        super().__init__(repr(constraint), [n for n, _ in params], _constraint_key(constraint), [p for _, p in params])
        self.constraint = constraint
        self.params = [p for _, p in params]

    def after_step(self) -> None:
        with torch.no_grad():
            for p in self.params:
                p.copy_(self.constraint(p))
        super().after_step()


def _constraint_key(constraint: ConstraintLike) -> tuple[Any, ...]:
    return ("constraint", type(constraint) if isinstance(constraint, Constraint) else constraint)


def attach_constraint(
    model: nn.Module,
    constraint: Constraint | Callable[[Tensor], Tensor],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    roles: RolesLike = ("weight",),
    include: GlobsLike = None,
    exclude: GlobsLike = None,
    mode: Literal["project", "parametrize"] = "project",
) -> RegularizationHandle:
    """Hold the picked parameters to a constraint, as Keras's ``kernel_constraint``.

    ``mode="project"`` replaces each parameter by its projection after every
    training step, as Keras does: :func:`step_regularizers` projects, and
    ``optimizer`` (bound with :func:`bind_optimizer` unless one already is)
    runs it after each of its steps. ``mode="parametrize"`` registers the projection as a
    ``torch.nn.utils.parametrize`` parametrization: the model always sees the
    projected weight, gradients flow through the projection, and the
    state-dict keys of those parameters become
    ``<module>.parametrizations.<name>.original`` while it is attached.

    Args:
        model: Any module.
        constraint: :class:`MaxNorm`, :class:`UnitNorm`, :class:`NonNeg`,
            :class:`MinMaxNorm`, or any callable ``weight -> projected weight``.
        optimizer: The optimizer whose steps the projection follows, in
            ``"project"`` mode; it must hold every picked parameter. It may be
            left out when one is already bound to ``model``.
        roles: Roles to pick; conv and linear weights by default.
        include: Name glob(s) to pick; each must match.
        exclude: Name glob(s) to leave out.
        mode: ``"project"`` or ``"parametrize"``.

    Returns:
        A handle whose ``remove()`` detaches the constraint (and, in
        ``"parametrize"`` mode, gives back the unconstrained parameter).

    Example:
        >>> import torch
        >>> from blockzoo.regularization import MaxNorm, attach_constraint
        >>> model = torch.nn.Linear(16, 4)
        >>> opt = torch.optim.SGD(model.parameters(), lr=10.0)
        >>> handle = attach_constraint(model, MaxNorm(1.0), optimizer=opt)
        >>> model(torch.randn(8, 16)).pow(2).sum().backward()
        >>> opt.step()
        >>> bool(model.weight.norm(dim=1).max() <= 1.0 + 1e-6)
        True
    """
    if not callable(constraint):
        raise TypeError(
            f"constraint must be a Constraint or a callable weight -> weight. Received: constraint={constraint!r}"
        )
    if mode not in ("project", "parametrize"):
        raise ValueError(f"mode must be 'project' or 'parametrize'. Received: mode={mode!r}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer. Received: optimizer={type(optimizer).__name__}")
    params = pick_params(model, roles=roles, include=include, exclude=exclude, caller="attach_constraint")
    if mode == "parametrize":
        return attach(model, _ParametrizedConstraint(model, constraint, params))
    if optimizer is not None:
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [n for n, p in params if id(p) not in held]
        if missing:
            raise ValueError(
                f"attach_constraint: the optimizer does not update {missing[:3]}, so the constraint would never "
                "apply to them; pass the optimizer that holds them, or narrow roles/include. "
                f"Received: optimizer={type(optimizer).__name__}"
            )
        bound = bound_optimizer(model)
        if bound is not None and bound is not optimizer:
            raise ValueError(
                f"attach_constraint: {type(bound).__name__} is already bound to this model and drives its "
                f"constraints; pass that one or none. Received: optimizer={type(optimizer).__name__}"
            )
        handle = attach(model, _ProjectedConstraint(constraint, params))
        if bound is None:  # bound here; the binding goes once nothing else is attached
            bind_implicitly(model, optimizer)
        return handle
    if bound_optimizer(model) is None:
        raise ValueError(
            "attach_constraint in mode='project' needs the optimizer whose steps it follows; pass optimizer=, "
            "bind one first with bind_optimizer(model, optimizer), or use mode='parametrize'. Received: optimizer=None"
        )
    return attach(model, _ProjectedConstraint(constraint, params))


def attach_spectral_norm(
    model: nn.Module,
    *,
    roles: RolesLike = ("weight",),
    include: GlobsLike = None,
    exclude: GlobsLike = None,
    **kwargs: Any,
) -> RegularizationHandle:
    """Spectral normalisation (Miyato et al. 2018) of the picked weights, by ``torch.nn.utils.parametrizations.spectral_norm``.

    Args:
        model: Any module.
        roles: Roles to pick; conv and linear weights by default.
        include: Name glob(s) to pick; each must match.
        exclude: Name glob(s) to leave out.
        **kwargs: Passed on (``n_power_iterations``, ``eps``, ``dim``).

    Returns:
        A handle whose ``remove()`` gives back the unnormalised parameters
        (the same ``Parameter`` objects, so optimizers keep working).

    Example:
        >>> import torch
        >>> from blockzoo.regularization import attach_spectral_norm
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
        >>> handle = attach_spectral_norm(model, include="0.*")
        >>> type(model[0].parametrizations.weight[0]).__name__
        '_SpectralNorm'
        >>> handle.remove()
        >>> isinstance(model[0].weight, torch.nn.Parameter)
        True
    """
    params = pick_params(model, roles=roles, include=include, exclude=exclude, caller="attach_spectral_norm")
    return attach(model, _SpectralNorm(model, params, kwargs))


class _WeightNorm(_Parametrized):
    kind = "weight norm"

    def __init__(self, model: nn.Module, params: list[tuple[str, nn.Parameter]], dim: int | None) -> None:
        super().__init__(model, "weight_norm", params, ("weight norm",))
        self.dim = dim
        self.untouched: list[list[Tensor | None]] = []  # per weight: fingerprints of magnitude and direction

    def register(self, module: nn.Module, attr: str) -> nn.Module:
        parametrizations.weight_norm(module, attr, dim=self.dim)  # type: ignore[arg-type]
        self.untouched.append([fingerprint(t) for t in _parts(module, attr)])
        return _parametrization_list(module, attr)

    def undo(self) -> None:
        # self.added and self.untouched grow together in register(), also when apply() failed half-way.
        originals = [original for _, _, original in self.owners][: len(self.added)]
        for (module, attr, _, order), original, untouched in zip(
            reversed(self.added), reversed(originals), reversed(self.untouched), strict=True
        ):
            # Untouched since attaching: the original Parameter still holds the exact weight. Trained:
            # fold the current magnitude and direction back into it.
            trained = not all(same_values(saved, t) for saved, t in zip(untouched, _parts(module, attr), strict=True))
            with torch.no_grad():
                current = getattr(module, attr).detach().clone() if trained else None
            parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
            delattr(module, attr)
            if current is not None:
                with torch.no_grad():
                    original.copy_(current)
            module.register_parameter(attr, original)
            _restore_order(module, order)


def _parts(module: nn.Module, attr: str) -> list[Tensor]:
    """The magnitude and the direction that weight norm made of ``module.attr``."""
    return list(_parametrization_list(module, attr).parameters(recurse=False))


def attach_weight_norm(
    model: nn.Module,
    *,
    roles: RolesLike = ("weight",),
    include: GlobsLike = None,
    exclude: GlobsLike = None,
    dim: int | None = 0,
) -> RegularizationHandle:
    """Weight normalisation (Salimans and Kingma 2016), by ``torch.nn.utils.parametrizations.weight_norm``.

    The weight becomes a magnitude ``original0`` and a direction
    ``original1``. An optimizer created before attaching still holds the old
    ``Parameter``; create it after.

    Args:
        model: Any module.
        roles: Roles to pick; conv and linear weights by default.
        include: Name glob(s) to pick; each must match.
        exclude: Name glob(s) to leave out.
        dim: The dimension kept by the magnitude (``None``: one scalar).

    Returns:
        A handle whose ``remove()`` folds the current magnitude and direction
        back into the original ``Parameter`` objects.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import attach_weight_norm
        >>> model = torch.nn.Linear(8, 2)
        >>> x = torch.randn(3, 8)
        >>> before = model(x)
        >>> handle = attach_weight_norm(model)
        >>> torch.allclose(model(x), before, atol=1e-6)
        True
        >>> handle.remove()
    """
    params = pick_params(model, roles=roles, include=include, exclude=exclude, caller="attach_weight_norm")
    return attach(model, _WeightNorm(model, params, dim))
