"""summary(): the architecture and the training setup, module by module."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from blockzoo._checks import check_device, check_module, check_positive_int
from blockzoo.init import init_report
from blockzoo.inspect._counts import count_params
from blockzoo.inspect._passes import Call, Inputs, make_inputs, trace
from blockzoo.inspect._render import check_columns
from blockzoo.inspect._report import ModelSummary, SummaryRow
from blockzoo.models import list_models
from blockzoo.models._registry import model_input_size
from blockzoo.regularization import list_regularizers
from blockzoo.roles import param_roles

__all__ = ["summary"]


@dataclass
class _Entry:
    name: str
    module: nn.Module
    depth: int
    shared_with: str | None
    expanded: bool = False
    counted: dict[str, nn.Parameter] = field(default_factory=dict)
    tied: int = 0


def _walk(model: nn.Module, depth: int) -> list[_Entry]:
    """The modules down to ``depth``, in order, under every name; a module met again is listed, not entered."""
    if not any(True for _ in model.children()):
        return [_Entry("", model, 1, None)]
    entries: list[_Entry] = []
    first: dict[nn.Module, str] = {model: "(the model)"}
    repeated: list[str] = []
    for name, module in model.named_modules(remove_duplicate=False):
        level = name.count(".") + 1
        if not name or level > depth or any(name.startswith(f"{r}.") for r in repeated):
            continue
        if module in first:
            entries.append(_Entry(name, module, level, first[module]))
            repeated.append(name)
            continue
        first[module] = name
        expanded = level < depth and any(True for _ in module.children())
        entries.append(_Entry(name, module, level, None, expanded))
    return entries


def _count(entries: list[_Entry], model: nn.Module) -> None:
    """Each entry's parameters first named in its sub-tree, and the elements it reaches that are named elsewhere."""
    canonical = {id(p): name for name, p in model.named_parameters()}
    for entry in entries:
        prefix = f"{entry.name}." if entry.name else ""
        for p in entry.module.parameters():
            first = canonical[id(p)]
            if entry.shared_with is None and first.startswith(prefix):
                entry.counted[first] = p
            else:
                entry.tied += p.numel()


def _owned(entries: list[_Entry]) -> list[dict[str, nn.Parameter]]:
    """The parameters each entry stands for: those counted at it and at none of its child rows."""
    owned = []
    for i, entry in enumerate(entries):
        mine = dict(entry.counted)
        if entry.expanded:
            for child in entries[i + 1 :]:
                if child.depth <= entry.depth:
                    break
                if child.depth == entry.depth + 1:
                    for name in child.counted:
                        mine.pop(name, None)
        owned.append(mine)
    return owned


def _default_inputs(model: nn.Module) -> Inputs | None:
    """Batch 1 of a zoo model's own input size (its in_channels and img_size options honoured)."""
    name = getattr(model, "model_name", None)
    if not isinstance(name, str) or name not in list_models():
        return None
    config = getattr(model, "model_config", {})
    channels, *size = model_input_size(name)
    channels = config.get("in_channels", channels) if isinstance(config, dict) else channels
    side = config.get("img_size") if isinstance(config, dict) else None
    if isinstance(side, int):
        size = [side] * len(size)
    return make_inputs(model, (1, channels, *size), None, None)


@dataclass
class _Setup:
    """What the rows read besides the model: init records, attachments, optimizer groups."""

    roles: dict[str, str]
    init: dict[str, tuple[str, bool]]
    attached: list[tuple[str, tuple[str, ...]]]
    group_of: dict[int, int]
    groups: list[dict[str, Any]]


def _setup(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> _Setup:
    roles = {name: role.value for name, role in param_roles(model).items()}
    init = {row.name: (row.initializer, row.status == "modified") for row in init_report(model)}
    attached = [(r.what, r.targets) for r in list_regularizers(model)]
    group_of: dict[int, int] = {}
    groups: list[dict[str, Any]] = []
    if optimizer is not None:
        from blockzoo.optim import explain_param_groups

        groups = [{k: v for k, v in g.items() if k != "params"} for g in explain_param_groups(optimizer, model).groups]
        for i, group in enumerate(optimizer.param_groups):
            for p in group["params"]:
                group_of.setdefault(id(p), i)
    return _Setup(roles, init, attached, group_of, groups)


def _row(
    entry: _Entry,
    owned: dict[str, nn.Parameter],
    setup: _Setup,
    positions: dict[str, tuple[Call | None, int]] | None,
    modules: set[str],
) -> SummaryRow:
    trainable = sum(p.numel() for p in entry.counted.values() if p.requires_grad)
    total = sum(p.numel() for p in entry.counted.values())
    call, calls = positions.get(entry.name, (None, 0)) if positions is not None else (None, 0)
    groups = sorted({setup.group_of[id(p)] for p in owned.values() if id(p) in setup.group_of})
    targets = set(owned) | modules
    roles = [setup.roles[n] for n in owned if n in setup.roles]
    inits = [setup.init[n] for n in owned if n in setup.init]
    return SummaryRow(
        name=entry.name,
        type=type(entry.module).__name__,
        depth=entry.depth,
        output_shape=call.output if call is not None else None,
        calls=calls,
        params=total,
        trainable=trainable,
        frozen=total - trainable,
        tied=entry.tied,
        shared_with=entry.shared_with,
        flops=(call.flops if call is not None else 0) if positions is not None else None,
        roles=tuple(dict.fromkeys(roles)),
        init=tuple(dict.fromkeys(label for label, _ in inits)),
        init_changed=any(changed for _, changed in inits),
        regularizers=tuple(dict.fromkeys(what for what, on in setup.attached if targets.intersection(on))),
        optimizer_groups=tuple(groups),
        lr=tuple(float(setup.groups[g]["lr"]) for g in groups),
        weight_decay=tuple(float(setup.groups[g]["weight_decay"]) for g in groups),
        unoptimized=sum(p.numel() for p in owned.values() if p.requires_grad and id(p) not in setup.group_of)
        if setup.groups
        else 0,
        training=entry.module.training,
        memory_format=_memory_format(list(owned.values())),
    )


def _owned_modules(entries: list[_Entry]) -> list[set[str]]:
    """The module names each entry stands for: its own, and its descendants' when they have no rows."""
    result = []
    for entry in entries:
        names = {entry.name if entry.name else "<model>"}
        if not entry.expanded and entry.shared_with is None:
            names |= {n for n, _ in entry.module.named_modules(prefix=entry.name) if n}
        result.append(names)
    return result


def _memory_format(params: Sequence[torch.Tensor]) -> str | None:
    """``"channels_last"``, ``"contiguous"`` or ``"mixed"`` for the 4-D and 5-D parameters; ``None`` without any.

    A weight that is both (a 1x1 kernel over one channel) says nothing and is skipped.
    """
    found = set()
    for p in params:
        if p.dim() not in (4, 5):
            continue
        last = p.is_contiguous(memory_format=torch.channels_last if p.dim() == 4 else torch.channels_last_3d)
        plain = p.is_contiguous()
        if last != plain:
            found.add("channels_last" if last else "contiguous")
        elif not last:
            found.add("strided")
    return None if not found else found.pop() if len(found) == 1 else "mixed"


def _shared_tensors(model: nn.Module) -> int:
    """How many parameters are reachable under more than one name."""
    names: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        names[id(p)] = names.get(id(p), 0) + 1
    return sum(1 for n in names.values() if n > 1)


def _bytes(tensors: Sequence[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def summary(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    *,
    input_data: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
    depth: int = 3,
    dtypes: torch.dtype | Sequence[torch.dtype] | None = None,
    device: torch.device | str | None = None,
    columns: Sequence[str] | None = None,
) -> ModelSummary:
    """The model module by module: shapes, parameters, FLOPs, and how it is set up to train.

    Shapes and FLOPs come from one forward pass on the meta device (nothing
    is allocated or computed), in the model's own modes. Where an operation
    has no meta implementation the pass runs on ``device`` (default: where the
    model is), on zeros for ``input_size``, with the parameters as they are
    and copies of the buffers. Either way the model is left as it was: its
    modes, parameters, buffers (batch-norm statistics included), the RNG
    state and what activity penalties collected are unchanged, and it stays
    on its device. (:func:`~blockzoo.infer_shape`'s static route gives a
    whole module's output, not each layer's, and the FLOPs need the pass
    anyway, so the rows come from the pass.)

    Activation memory is the bytes a training step holds between its
    forward and backward passes: the tensors autograd saves for backward in
    a training-mode forward pass (each storage counted once), plus the
    output, leaving out the inputs, parameters and buffers. A model in
    training mode gives it in the same pass, in its own modes (frozen batch
    norms stay frozen); a model in eval mode in a second pass with every
    module in training mode. A step's peak adds to it the backward pass's
    transient gradients, a layer or two at a time, and the parameters'
    gradients.

    Args:
        model: Any module.
        input_size: The shape of one input batch, batch dimension included,
            such as ``(1, 3, 32, 32)``, or one shape per positional input.
            A zoo model without ``input_size`` or ``input_data`` gets batch 1
            of its own input size; any other model gets no shapes or FLOPs.
        input_data: Instead of ``input_size``: a tensor, a tuple or list of
            positional inputs, or a dict of keyword inputs. Only their shapes,
            dtypes and memory formats matter unless the pass needs a real device.
        optimizer: The optimizer that trains the model, for each row's group,
            learning rate and weight decay.
        depth: How many levels of sub-modules get rows (1: the model's children).
        dtypes: The dtype of the inputs made from ``input_size`` (one, or
            one per input); default the model's floating-point dtype.
        device: Where to run the pass when the meta device cannot.
        columns: The columns of the text and markdown tables, from
            ``"name"``, ``"type"``, ``"output_shape"``, ``"params"``,
            ``"frozen"``, ``"flops"``, ``"roles"``, ``"init"``,
            ``"regularizers"``, ``"optimizer"``, ``"mode"`` and
            ``"memory_format"``. By default, those with something to show,
            and in the text table only as many as fit the width.

    Returns:
        A :class:`ModelSummary`.

    Raises:
        InputError: a block does not accept the input; the message says how to fix it.
        TypeError: an argument has the wrong type.
        ValueError: ``depth`` is not positive, or both ``input_size`` and
            ``input_data`` are given.
        UnknownNameError: a column is not one of those above.

    Example:
        >>> import torch, blockzoo
        >>> model = torch.nn.Sequential(blockzoo.ConvBlock(3, 8), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 10))
        >>> s = blockzoo.summary(model, (2, 3, 8, 8), columns=["name", "type", "output_shape", "params", "flops"])
        >>> print(s.to_string(width=100))
        Sequential: input [2, 3, 8, 8] -> output [2, 10], in train mode
        name     type         output shape  params   FLOPs
        --------------------------------------------------
        0        ConvBlock    [2, 8, 4, 4]     232  55.3 K
          convs  Sequential   [2, 8, 8, 8]     232  55.3 K
            0    ConvNormAct  [2, 8, 8, 8]     232  55.3 K
          pool   MaxPool2d    [2, 8, 4, 4]       0       0
          drop   Identity     -                  0       0
        1        Flatten      [2, 128]           0       0
        2        Linear       [2, 10]        1,290  5.12 K
        --------------------------------------------------
        parameters   1,522 (trainable 1,522, frozen 0)
        memory       5.9 KiB of parameters, 72 B of buffers
        activations  11.1 KiB for a training step (saved for backward, and the output)
        FLOPs        60.4 K (FlopCounterMode: 2 per multiply-accumulate), 30.2 K MACs
        Output shape '-': the module did not run.
        >>> s.total_params, s.flops, s.rows[-1].output_shape
        (1522, 60416, (2, 10))
    """
    check_module("model", model, caller="summary")
    depth = check_positive_int("depth", depth)
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer. Received: optimizer={type(optimizer).__name__}")
    target = None if device is None else check_device("device", device)
    chosen = None if columns is None else check_columns(columns)
    inputs = make_inputs(model, input_size, input_data, dtypes)
    if inputs is None and input_data is None:
        inputs = _default_inputs(model)
    entries = _walk(model, depth)
    _count(entries, model)
    traced = trace(model, inputs, device=target, activations=True) if inputs is not None else None
    setup = _setup(model, optimizer)
    positions = traced.positions(model) if traced is not None else None
    rows = tuple(
        _row(e, owned, setup, positions, modules)
        for e, owned, modules in zip(entries, _owned(entries), _owned_modules(entries), strict=True)
    )
    named = set().union(*(_owned_modules(entries)), *(e.counted for e in entries))
    unoptimized = tuple(n for n, p in model.named_parameters() if p.requires_grad and id(p) not in setup.group_of)
    name = getattr(model, "model_name", None)
    total, trainable = count_params(model), count_params(model, trainable_only=True)
    return ModelSummary(
        model=type(model).__name__ + (f" {name!r}" if isinstance(name, str) else ""),
        rows=rows,
        input_shape=inputs.shapes() if inputs is not None else None,
        output_shape=traced.output if traced is not None else None,
        total_params=total,
        trainable_params=trainable,
        frozen_params=total - trainable,
        shared_tensors=_shared_tensors(model),
        param_bytes=_bytes(list(model.parameters())),
        buffer_bytes=_bytes(list(model.buffers())),
        activation_bytes=traced.activation_bytes if traced is not None else None,
        flops=traced.flops if traced is not None else None,
        optimizer=type(optimizer).__name__ if optimizer is not None else None,
        groups=tuple(setup.groups),
        unoptimized=unoptimized if optimizer is not None else (),
        model_attachments=tuple(what for what, on in setup.attached if not named.intersection(on)),
        training=model.training,
        pass_device=traced.device if traced is not None else None,
        meta_failure=traced.meta_failure if traced is not None else None,
        columns=chosen,
    )
