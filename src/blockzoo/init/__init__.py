"""Initializers: named schemes, activation-aware defaults, role-based rules, seeding, LSUV and a report.

:func:`init_weights` initialises any model by role (biases, norms, weights)
with rules by role and name glob for the exceptions; blockzoo's blocks start
from the same activation-aware defaults (:func:`activation_initializer`).
:func:`init_report` shows what initialised each parameter, and flags those
still at PyTorch's default.

Example:
    >>> import torch
    >>> import blockzoo
    >>> model = blockzoo.create_model("resnet20")
    >>> _ = blockzoo.init_weights(model, "kaiming_normal", rules=[("head.*", "zeros")], seed=0)
    >>> _ = blockzoo.zero_init_last_(model)
    >>> model.head.fc.weight.abs().sum().item()
    0.0
"""

from blockzoo.init._apply import InitRule, InitSpec, default_init_, init_weights, param_generator
from blockzoo.init._defaults import activation_initializer, activation_table, activations_after
from blockzoo.init._functions import (
    Initializer,
    InitializerSpec,
    get_initializer,
    initializer,
    lecun_normal_,
    lecun_uniform_,
    list_initializers,
    register_initializer,
    sparse_,
    variance_scaling_,
)
from blockzoo.init._lsuv import lsuv_
from blockzoo.init._report import InitReport, InitRow, init_report
from blockzoo.init._residual import zero_init_last_

__all__ = [
    "InitReport",
    "InitRow",
    "InitRule",
    "InitSpec",
    "Initializer",
    "InitializerSpec",
    "activation_initializer",
    "activation_table",
    "activations_after",
    "default_init_",
    "get_initializer",
    "init_report",
    "init_weights",
    "initializer",
    "lecun_normal_",
    "lecun_uniform_",
    "list_initializers",
    "lsuv_",
    "param_generator",
    "register_initializer",
    "sparse_",
    "variance_scaling_",
    "zero_init_last_",
]
