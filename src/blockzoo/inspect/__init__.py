"""Look at a model: a summary that joins the architecture and the training setup, parameter counts, FLOPs.

:func:`summary` shows, module by module, the output shape, the parameters,
the FLOPs, and how each layer is set up to train: its initializer, what
regularizes it and which optimizer group trains it. :func:`count_params` and
:func:`flops` are the two numbers on their own.

Example:
    >>> import blockzoo
    >>> model = blockzoo.create_model("resnet20")
    >>> blockzoo.count_params(model)
    269722
    >>> blockzoo.flops(model, (1, 3, 32, 32))
    81102080
"""

from blockzoo.inspect._counts import count_params, flops
from blockzoo.inspect._report import ModelSummary, SummaryRow
from blockzoo.inspect._summary import summary

__all__ = [
    "ModelSummary",
    "SummaryRow",
    "count_params",
    "flops",
    "summary",
]
