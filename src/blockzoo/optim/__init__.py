"""The optimizer factory over torch.optim: groups by role, lr multipliers, layer decay, schedules.

:func:`create_optimizer` builds any registered optimizer with parameter groups
by role (no weight decay on biases, norms, embeddings, scales and other 1-D
parameters), lr multipliers by name glob and layer-wise lr decay, all written
as real ``lr`` values so every ``torch.optim.lr_scheduler`` keeps them.
:func:`explain_param_groups` and :func:`check_param_groups` show what the
groups hold; :func:`create_scheduler` builds schedules by name.
"""

from blockzoo.optim._explain import ParamGroupsReport, check_param_groups, explain_param_groups
from blockzoo.optim._factory import create_optimizer
from blockzoo.optim._groups import DEFAULT_NO_WEIGHT_DECAY_ROLES, GroupRule, param_groups
from blockzoo.optim._schedulers import create_scheduler, list_schedulers
from blockzoo.optim._specs import OptimizerSpec, get_optimizer_spec, list_optimizers, register_optimizer

__all__ = [
    "DEFAULT_NO_WEIGHT_DECAY_ROLES",
    "GroupRule",
    "OptimizerSpec",
    "ParamGroupsReport",
    "check_param_groups",
    "create_optimizer",
    "create_scheduler",
    "explain_param_groups",
    "get_optimizer_spec",
    "list_optimizers",
    "list_schedulers",
    "param_groups",
    "register_optimizer",
]
