"""Regularization for any PyTorch model: penalties, activity penalties, constraints and gradient hooks.

Keras lets a layer carry a ``kernel_regularizer``, an ``activity_regularizer``
and a ``kernel_constraint``; here they attach to any model, blockzoo's or not,
by role and name glob (as :func:`blockzoo.select`), through torch hooks and
parametrizations. Every ``attach_*`` returns a handle whose ``remove()``
restores the exact previous behaviour; :func:`list_regularizers` shows what is
attached where, and :func:`regularization_loss` is the term to add to the loss.

Attachments live on the model (``model.blockzoo_regularizers``): ``copy.deepcopy``
and ``pickle`` carry them, and a copy behaves as the original. Reading the loss
changes nothing; projection constraints and schedules move once per training
step, after each step of the optimizer bound with :func:`bind_optimizer` (or
passed to ``attach_constraint``), or at each :func:`step_regularizers` call.

Example:
    >>> import torch
    >>> import blockzoo
    >>> from blockzoo.regularization import L2, MaxNorm, attach_constraint, attach_penalty, regularization_loss
    >>> model = blockzoo.create_model("mlp")
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> l2 = attach_penalty(model, L2(1e-4))
    >>> norm = attach_constraint(model, MaxNorm(3.0), optimizer=opt)
    >>> x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    >>> loss = torch.nn.functional.cross_entropy(model(x), y) + regularization_loss(model)
    >>> loss.backward()
    >>> opt.step()
"""

from blockzoo.regularization._attach import attach_activity_penalty, attach_penalty
from blockzoo.regularization._constrain import attach_constraint, attach_spectral_norm, attach_weight_norm
from blockzoo.regularization._constraints import Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm
from blockzoo.regularization._depth import attach_stochastic_depth
from blockzoo.regularization._grads import attach_grad_clip, attach_grad_noise
from blockzoo.regularization._penalties import L1, L1L2, L2, Factor, Orthogonal, Penalty
from blockzoo.regularization._stepping import bind_optimizer, bound_optimizer, step_regularizers
from blockzoo.regularization._store import (
    RegularizationHandle,
    RegularizerRow,
    RegularizerTable,
    list_regularizers,
    regularization_loss,
)

__all__ = [
    "L1",
    "L1L2",
    "L2",
    "Constraint",
    "Factor",
    "MaxNorm",
    "MinMaxNorm",
    "NonNeg",
    "Orthogonal",
    "Penalty",
    "UnitNorm",
    "RegularizationHandle",
    "RegularizerRow",
    "RegularizerTable",
    "attach_activity_penalty",
    "attach_constraint",
    "attach_grad_clip",
    "attach_grad_noise",
    "attach_penalty",
    "attach_spectral_norm",
    "attach_stochastic_depth",
    "attach_weight_norm",
    "bind_optimizer",
    "bound_optimizer",
    "list_regularizers",
    "regularization_loss",
    "step_regularizers",
]
