"""What summary() returns: a row per module and the totals, with three renderings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blockzoo.inspect._render import markdown, records, text

__all__ = ["ModelSummary", "SummaryRow"]


@dataclass(frozen=True)
class SummaryRow:
    """One module of a :class:`ModelSummary`.

    A row's parameter counts cover its whole sub-tree, each parameter counted
    at its first name only (the name ``named_parameters()`` gives it). Its
    ``roles``, ``init``, ``regularizers`` and optimizer columns describe the
    parameters the row stands for in the table: its own, and its
    descendants' when they have no rows of their own.

    Attributes:
        name: Qualified name (``""`` for a model without children).
        type: Class name.
        depth: 1 for the model's children, 2 for theirs, ...
        output_shape: What the module returned on its first call at this
            place in the model (a module used in two places has each
            place's own calls): a shape tuple, or that structure inside a
            tuple, list or dict; ``None`` when it did not run or no input
            was given.
        calls: How many times it ran at this place in the pass.
        params: Parameter elements counted at this row (trainable + frozen).
        trainable: Elements with ``requires_grad``.
        frozen: Elements without.
        tied: Elements in the sub-tree counted under another name (tied
            weights, or a module used in two places).
        shared_with: For a module used in two places, its first name.
        flops: FLOPs inside the module at this place (children included,
            all its calls there), so that no call is counted at two rows of
            one level: the rows at depth 1 add up to the total. Where one
            parent holds a module under two names (``nn.Sequential(bn, act,
            bn)``), the first name gets their calls' FLOPs and the others 0.
            ``None`` without input.
        roles: The roles of the parameters it stands for.
        init: Their initializers, as :func:`~blockzoo.init_report` reads them.
        init_changed: Whether some of them were changed since (trained or loaded).
        regularizers: What is attached to them (see :func:`~blockzoo.regularization.list_regularizers`).
        optimizer_groups: The optimizer's groups that hold them.
        lr: Each of those groups' learning rate.
        weight_decay: Each of those groups' weight decay.
        unoptimized: Trainable elements it stands for that no group holds
            (0 without an optimizer).
        training: The module's mode.
        memory_format: The memory format of the 4-D and 5-D weights it stands for
            (``"channels_last"``, ``"contiguous"`` or ``"mixed"``; ``None``
            without any), which ``model.to(memory_format=torch.channels_last)``
            changes. Outputs are not reported: the meta device does not follow
            memory formats the way the CPU and CUDA kernels do.

    Example:
        >>> import torch, blockzoo
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
        >>> row = blockzoo.summary(model, (2, 4)).rows[0]
        >>> row.name, row.type, row.depth, row.output_shape, row.params, row.trainable
        ('0', 'Linear', 1, (2, 8), 40, 40)
    """

    name: str
    type: str
    depth: int
    output_shape: Any = None
    calls: int = 0
    params: int = 0
    trainable: int = 0
    frozen: int = 0
    tied: int = 0
    shared_with: str | None = None
    flops: int | None = None
    roles: tuple[str, ...] = ()
    init: tuple[str, ...] = ()
    init_changed: bool = False
    regularizers: tuple[str, ...] = ()
    optimizer_groups: tuple[int, ...] = ()
    lr: tuple[float, ...] = ()
    weight_decay: tuple[float, ...] = ()
    unoptimized: int = 0
    training: bool = True
    memory_format: str | None = None


@dataclass(frozen=True)
class ModelSummary:
    """What :func:`summary` returns: rows per module, totals, and three renderings.

    ``str(summary)`` is a text table that fits the terminal's width, dropping
    the least needed columns first (``to_string(width=...)`` for another
    width); :meth:`to_markdown` is a markdown table; :meth:`to_records` gives
    a dict per row (``pandas.DataFrame(summary.to_records())``).

    Attributes:
        model: The model's class name (and registry name, for zoo models).
        rows: One :class:`SummaryRow` per module, down to the depth asked for.
        input_shape: The input's shape (or shapes), ``None`` without input.
        output_shape: The output's shape (or structure of shapes).
        total_params: Parameter elements, each parameter counted once.
        trainable_params: Of those, with ``requires_grad``.
        frozen_params: Of those, without.
        shared_tensors: Parameter tensors reachable under more than one name.
        param_bytes: Memory of the parameters.
        buffer_bytes: Memory of the buffers (batch-norm statistics, ...).
        activation_bytes: What a training step holds between forward and
            backward (see :func:`summary`); ``None`` without input.
        flops: FlopCounterMode's FLOPs of one forward pass over the batch
            (2 per multiply-accumulate); ``None`` without input.
        optimizer: The optimizer's class name, ``None`` without one.
        groups: Per optimizer group: ``lr``, ``weight_decay``, ``tensors``,
            ``elements`` and ``rule`` (see :func:`~blockzoo.explain_param_groups`).
        unoptimized: Names of trainable parameters that no group holds.
        model_attachments: Attachments that act on the model as a whole.
        training: The model's mode.
        pass_device: Where the shape pass ran (``"meta"`` unless it could not).
        meta_failure: Why it could not run on the meta device, if so.
        columns: The columns asked for, or ``None`` for the default choice.

    Example:
        >>> import torch, torch.nn as nn
        >>> from blockzoo import summary
        >>> _ = torch.manual_seed(0)
        >>> s = summary(nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)), (16, 8))
        >>> s
        ModelSummary(Sequential, 46 parameters, 3 rows)
        >>> s.total_params, s.flops, s.macs
        (46, 1280, 640)
        >>> print(s.to_markdown())
        Sequential: input [16, 8] -> output [16, 2], in train mode
        <BLANKLINE>
        | name | type | output shape | params | FLOPs | roles | init |
        | --- | --- | --- | ---: | ---: | --- | --- |
        | 0 | Linear | [16, 4] | 36 | 1.02 K | weight, bias | torch default |
        | 1 | ReLU | [16, 4] | 0 | 0 |  |  |
        | 2 | Linear | [16, 2] | 10 | 256 | weight, bias | torch default |
        <BLANKLINE>
        - **parameters**: 46 (trainable 46, frozen 0)
        - **memory**: 184 B of parameters, 0 B of buffers
        - **activations**: 384 B for a training step (saved for backward, and the output)
        - **FLOPs**: 1.28 K (FlopCounterMode: 2 per multiply-accumulate), 640 MACs
        >>> [(r["name"], r["output_shape"], r["params"]) for r in s.to_records()]
        [('0', (16, 4), 36), ('1', (16, 4), 0), ('2', (16, 2), 10)]
    """

    model: str
    rows: tuple[SummaryRow, ...]
    input_shape: Any
    output_shape: Any
    total_params: int
    trainable_params: int
    frozen_params: int
    shared_tensors: int
    param_bytes: int
    buffer_bytes: int
    activation_bytes: int | None
    flops: int | None
    optimizer: str | None = None
    groups: tuple[dict[str, Any], ...] = ()
    unoptimized: tuple[str, ...] = ()
    model_attachments: tuple[str, ...] = ()
    training: bool = True
    pass_device: str | None = None
    meta_failure: str | None = None
    columns: tuple[str, ...] | None = field(default=None)

    @property
    def macs(self) -> int | None:
        """Multiply-accumulates, half the FLOPs (what papers often call FLOPs)."""
        return None if self.flops is None else self.flops // 2

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"ModelSummary({self.model}, {self.total_params:,} parameters, {len(self.rows)} rows)"

    def to_string(self, *, width: int | None = None) -> str:
        """The text table, at most ``width`` characters wide (the terminal's width when ``None``)."""
        return text(self, width)

    def to_markdown(self) -> str:
        """A markdown table of the rows (full names, every chosen column), then the totals."""
        return markdown(self)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per row, with every field of :class:`SummaryRow`; ``pandas.DataFrame`` takes it as is."""
        return records(self)
