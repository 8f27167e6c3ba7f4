"""``attach_constraint`` (projection after each optimizer step, or a parametrization) and spectral / weight norm."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

from blockzoo.regularization._constraints import Constraint
from blockzoo.regularization._store import Attachment, RegularizationHandle, attach, pick_params
from blockzoo.roles import Role

__all__ = ["attach_constraint", "attach_spectral_norm", "attach_weight_norm"]

Roles = Role | str | Sequence[Role | str] | None


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
    """Put ``module``'s parameters back in their registration order (state-dict and ``parameters()`` order)."""
    params = module._parameters
    ranked = sorted(params, key=lambda n: order.index(n) if n in order else len(order))
    module._parameters = {n: params[n] for n in ranked}


def _remove_parametrization(module: nn.Module, attr: str, ours: nn.Module, order: list[str]) -> None:
    """Take ``ours`` out of ``module``'s parametrizations of ``attr``, leaving any others in place."""
    plist = cast(parametrize.ParametrizationList, module.parametrizations[attr])  # type: ignore[index]
    if len(plist) == 1:
        parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
        _restore_order(module, order)
        return
    for i, p in enumerate(plist):
        if p is ours:
            del plist[i]
            return


def attach_constraint(
    model: nn.Module,
    constraint: Constraint | Callable[[Tensor], Tensor],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    roles: Roles = ("weight",),
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    mode: Literal["project", "parametrize"] = "project",
) -> RegularizationHandle:
    """Hold the picked parameters to a constraint, as Keras's ``kernel_constraint``.

    ``mode="project"`` replaces each parameter by its projection after every
    step of ``optimizer`` (``Optimizer.register_step_post_hook``), as Keras
    does. ``mode="parametrize"`` registers the projection as a
    ``torch.nn.utils.parametrize`` parametrization: the model always sees the
    projected weight, gradients flow through the projection, and the
    state-dict keys of those parameters become
    ``<module>.parametrizations.<name>.original`` while it is attached.

    Args:
        model: Any module.
        constraint: :class:`MaxNorm`, :class:`UnitNorm`, :class:`NonNeg`,
            :class:`MinMaxNorm`, or any callable ``weight -> projected weight``.
        optimizer: Required in ``"project"`` mode; it must hold every picked parameter.
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
    if mode == "project" and optimizer is None:
        raise ValueError(
            "attach_constraint in mode='project' needs the optimizer whose steps it follows; pass optimizer=, "
            "or use mode='parametrize'. Received: optimizer=None"
        )
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer. Received: optimizer={type(optimizer).__name__}")
    params = pick_params(model, roles=roles, include=include, exclude=exclude, caller="attach_constraint")
    names = [n for n, _ in params]
    what = repr(constraint)
    key = ("constraint", type(constraint) if isinstance(constraint, Constraint) else constraint)
    if optimizer is not None and mode == "project":
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [n for n, p in params if id(p) not in held]
        if missing:
            raise ValueError(
                f"attach_constraint: the optimizer does not update {missing[:3]}, so the constraint would never "
                "apply to them; pass the optimizer that holds them, or narrow roles/include"
            )
        tensors = [p for _, p in params]

        def project(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            with torch.no_grad():
                for p in tensors:
                    p.copy_(constraint(p))

        hook = optimizer.register_step_post_hook(project)
        return attach(model, Attachment("constraint", what, "project", names, key, list(tensors), hook.remove))

    added: list[tuple[nn.Module, str, nn.Module, list[str]]] = []
    for name, _ in params:
        module, attr = _owner(model, name)
        order = list(module._parameters)
        ours = _Constrained(constraint)
        parametrize.register_parametrization(module, attr, ours)
        added.append((module, attr, ours, order))

    def undo() -> None:
        for module, attr, ours, order in reversed(added):
            _remove_parametrization(module, attr, ours, order)

    originals = [module.parametrizations[attr].original for module, attr, _, _ in added]  # type: ignore[index, union-attr]
    return attach(model, Attachment("constraint", what, "parametrize", names, key, originals, undo))


def attach_spectral_norm(
    model: nn.Module,
    *,
    roles: Roles = ("weight",),
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
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
    added: list[tuple[nn.Module, str, nn.Module, list[str]]] = []
    for name, _ in params:
        module, attr = _owner(model, name)
        order = list(module._parameters)
        parametrizations.spectral_norm(module, attr, **kwargs)
        plist = cast(parametrize.ParametrizationList, module.parametrizations[attr])  # type: ignore[index]
        added.append((module, attr, plist[-1], order))

    def undo() -> None:
        for module, attr, ours, order in reversed(added):
            _remove_parametrization(module, attr, ours, order)

    names = [n for n, _ in params]
    return attach(
        model,
        Attachment(
            "spectral norm", "spectral_norm", "parametrize", names, ("spectral norm",), [p for _, p in params], undo
        ),
    )


def _versions(module: nn.Module, attr: str) -> list[int]:
    plist = cast(parametrize.ParametrizationList, module.parametrizations[attr])  # type: ignore[index]
    return [t._version for t in plist.parameters(recurse=False)]


def attach_weight_norm(
    model: nn.Module,
    *,
    roles: Roles = ("weight",),
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
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
    added: list[tuple[nn.Module, str, nn.Parameter, list[str], list[int]]] = []
    for name, p in params:
        module, attr = _owner(model, name)
        order = list(module._parameters)
        parametrizations.weight_norm(module, attr, dim=dim)  # type: ignore[arg-type]
        added.append((module, attr, p, order, _versions(module, attr)))

    def undo() -> None:
        for module, attr, original, order, versions in reversed(added):
            # Untouched since attaching: the original Parameter still holds the exact weight. Trained:
            # fold the current magnitude and direction back into it.
            trained = _versions(module, attr) != versions
            with torch.no_grad():
                current = getattr(module, attr).detach().clone() if trained else None
            parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
            delattr(module, attr)
            if current is not None:
                with torch.no_grad():
                    original.copy_(current)
            module.register_parameter(attr, original)
            _restore_order(module, order)

    names = [n for n, _ in params]
    return attach(
        model,
        Attachment("weight norm", "weight_norm", "parametrize", names, ("weight norm",), [p for _, p in params], undo),
    )
