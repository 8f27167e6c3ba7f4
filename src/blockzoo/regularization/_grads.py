"""Per-parameter gradient hooks: clipping by value and by norm, and gradient noise."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from blockzoo._checks import check_number
from blockzoo._names import GlobsLike
from blockzoo.regularization._penalties import Factor, _at, _fmt, check_factor
from blockzoo.regularization._store import Attachment, RegularizationHandle, attach, pick_params
from blockzoo.roles import RolesLike

__all__ = ["attach_grad_clip", "attach_grad_noise"]


class _GradClip(Attachment):
    kind = "grad clip"
    mode = "grad hook"

    def __init__(self, params: list[tuple[str, nn.Parameter]], max_value: float | None, max_norm: float | None) -> None:
        parts = [
            f"max_value={max_value:g}" if max_value is not None else "",
            f"max_norm={max_norm:g}" if max_norm is not None else "",
        ]
        what = f"clip({', '.join(p for p in parts if p)})"
        super().__init__(what, [n for n, _ in params], ("grad clip",), [p for _, p in params])
        self.params = [p for _, p in params]
        self.max_value, self.max_norm = max_value, max_norm

    def install(self) -> None:
        self.hook_grads(self.params, self._clip)

    def _clip(self, p: Tensor) -> None:
        grad = p.grad
        if grad is None:
            return
        with torch.no_grad():
            if self.max_value is not None:
                grad.clamp_(-self.max_value, self.max_value)
            if self.max_norm is not None:
                norm = torch.linalg.vector_norm(grad)
                grad.mul_((self.max_norm / (norm + 1e-6)).clamp(max=1.0))


class _GradNoise(Attachment):
    kind = "grad noise"
    mode = "grad hook"

    def __init__(self, params: list[tuple[str, nn.Parameter]], std: Factor, generator: torch.Generator | None) -> None:
        super().__init__(f"noise(std={_fmt(std)})", [n for n, _ in params], ("grad noise",), [p for _, p in params])
        self.params = [p for _, p in params]
        self.std = std
        self.generator = generator

    def install(self) -> None:
        self.hook_grads(self.params, self._add_noise)

    def _add_noise(self, p: Tensor) -> None:
        grad = p.grad
        if grad is None:
            return
        sigma = _at(self.std, self.step, "std")
        if sigma == 0:
            return
        with torch.no_grad():
            noise = torch.randn(grad.shape, generator=self.generator, device=grad.device, dtype=grad.dtype)
            grad.add_(noise, alpha=sigma)


def attach_grad_clip(
    model: nn.Module,
    *,
    max_value: float | None = None,
    max_norm: float | None = None,
    roles: RolesLike = None,
    include: GlobsLike = None,
    exclude: GlobsLike = None,
) -> RegularizationHandle:
    """Clip each picked parameter's gradient as it is accumulated: by value, by norm, or both.

    Unlike ``torch.nn.utils.clip_grad_norm_``, which scales all gradients by
    one global norm after ``backward()``, these hooks act per parameter
    during the backward pass (``register_post_accumulate_grad_hook``), as
    Keras's ``clipvalue`` / ``clipnorm``.

    Args:
        model: Any module.
        max_value: Clamp every gradient entry into ``[-max_value, max_value]``.
        max_norm: Scale a parameter's gradient down to this L2 norm if above it.
        roles: Roles to pick (``None``: every trainable parameter).
        include: Name glob(s) to pick; each must match.
        exclude: Name glob(s) to leave out.

    Example:
        >>> import torch
        >>> from blockzoo.regularization import attach_grad_clip
        >>> model = torch.nn.Linear(4, 1)
        >>> handle = attach_grad_clip(model, max_value=0.01)
        >>> (100 * model(torch.ones(1, 4))).sum().backward()
        >>> round(model.weight.grad.abs().max().item(), 6)
        0.01
    """
    if max_value is None and max_norm is None:
        raise ValueError("attach_grad_clip needs max_value, max_norm or both. Received: max_value=None, max_norm=None")
    max_value = check_number("max_value", max_value, low=0, low_open=True, allow_none=True)
    max_norm = check_number("max_norm", max_norm, low=0, low_open=True, allow_none=True)
    params = pick_params(model, roles=roles, include=include, exclude=exclude, caller="attach_grad_clip")
    return attach(model, _GradClip(params, max_value, max_norm))


def attach_grad_noise(
    model: nn.Module,
    std: Factor,
    *,
    roles: RolesLike = None,
    include: GlobsLike = None,
    exclude: GlobsLike = None,
    generator: torch.Generator | None = None,
) -> RegularizationHandle:
    """Add Gaussian noise to each picked parameter's gradient as it is accumulated (Neelakantan et al. 2015).

    Args:
        model: Any module.
        std: The noise std: a number, or a schedule (a callable of the step,
            which :func:`step_regularizers` advances), such as
            ``lambda t: (0.01 / (1 + t) ** 0.55) ** 0.5`` from the paper.
        roles: Roles to pick (``None``: every trainable parameter).
        include: Name glob(s) to pick; each must match.
        exclude: Name glob(s) to leave out.
        generator: Source of the noise (on the parameters' device).

    Example:
        >>> import torch
        >>> from blockzoo.regularization import attach_grad_noise
        >>> model = torch.nn.Linear(4, 1)
        >>> handle = attach_grad_noise(model, 0.1, generator=torch.Generator().manual_seed(0))
        >>> model(torch.zeros(1, 4)).sum().backward()
        >>> bool(model.weight.grad.abs().sum() > 0)  # zero input: all of it is noise
        True
    """
    std = check_factor("std", std)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None. Received: generator={generator!r}")
    params = pick_params(model, roles=roles, include=include, exclude=exclude, caller="attach_grad_noise")
    return attach(model, _GradNoise(params, std, generator))
