"""Export a model with a dynamic batch dimension: ``torch.export`` and ONNX (``torch.onnx.export(dynamo=True)``)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from blockzoo._checks import check_bool, check_module

if TYPE_CHECKING:
    from torch.export import ExportedProgram

__all__ = ["as_args", "export_model", "export_onnx"]

# An ONNX file is one protobuf, which cannot exceed 2 GiB; bigger weights go to a side file.
_ONNX_INLINE_LIMIT = 2**31 - 2**27


def as_args(example_input: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """``example_input`` as a tuple of positional tensors; raises ``TypeError`` for anything else."""
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    if not args or not all(isinstance(a, Tensor) for a in args):
        raise TypeError(
            "example_input must be a tensor or a non-empty tuple of tensors (the model's positional inputs). "
            f"Received: example_input={type(example_input).__name__}"
        )
    return args


def _batch_shapes(args: tuple[Tensor, ...]) -> tuple[dict[int, object], ...]:
    """One shared dynamic ``batch`` dimension: dimension 0 of every input."""
    small = [tuple(a.shape) for a in args if a.dim() == 0 or a.shape[0] < 2]
    if small:
        shapes = ", ".join(str(s) for s in small)
        raise ValueError(
            "example_input must have a batch of at least 2 for a dynamic batch dimension: torch.export "
            "specialises a dimension of size 0 or 1 to a constant (the program still accepts a batch of 1). "
            f"Received: example_input of shape {shapes}"
        )
    batch = torch.export.Dim("batch", min=1)
    return tuple({0: batch} for _ in args)


def export_model(
    model: nn.Module, example_input: Tensor | tuple[Tensor, ...], *, dynamic_batch: bool = True
) -> ExportedProgram:
    """``torch.export.export`` of ``model`` for the batch sizes it will meet in deployment.

    The program is traced on ``example_input`` in the model's current mode
    (call ``model.eval()`` first for inference: a model in training mode
    exports its dropout and its batch statistics). With ``dynamic_batch``,
    dimension 0 of every input is one symbolic ``batch`` size, so the program
    accepts any batch from 1 up; the other dimensions are fixed to the
    example's. Trace with a batch of at least 2: torch.export specialises a
    size of 1 to a constant.

    Args:
        model: The model to export.
        example_input: A tensor, or a tuple of the model's positional tensors.
        dynamic_batch: Make the batch size symbolic; ``False`` fixes every
            shape to the example's.

    Returns:
        The :class:`torch.export.ExportedProgram`; ``program.module()`` runs it.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``example_input`` is not
            a tensor or a tuple of tensors, or ``dynamic_batch`` is not a bool.
        ValueError: ``dynamic_batch`` and an input with a batch below 2.

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("simple_cnn").eval()
        >>> program = blockzoo.export_model(model, torch.randn(2, 3, 32, 32))
        >>> program.module()(torch.randn(5, 3, 32, 32)).shape
        torch.Size([5, 10])
    """
    check_module("model", model)
    args = as_args(example_input)
    dynamic_shapes = _batch_shapes(args) if check_bool("dynamic_batch", dynamic_batch) else None
    return torch.export.export(model, args, dynamic_shapes=dynamic_shapes)


def export_onnx(
    model: nn.Module | ExportedProgram,
    example_input: Tensor | tuple[Tensor, ...],
    path: str | os.PathLike[str],
    *,
    dynamic_batch: bool = True,
) -> Path:
    """Write ``model`` to an ONNX file through ``torch.onnx.export(..., dynamo=True)``.

    The model goes through :func:`export_model` (the same dynamic ``batch``
    dimension, the model's current mode: call ``model.eval()`` first), or
    pass the :class:`~torch.export.ExportedProgram` it returned, which keeps
    its own dynamic shapes. Needs the ``onnx`` extra
    (``pip install "blockzoo[onnx]"``: onnxscript, and onnxruntime to run the
    file). The weights are stored in the file, or beside it (``path`` plus
    ``.data``) when they are over the 2 GiB limit of one ONNX file.

    Args:
        model: A model, or a program from :func:`export_model`.
        example_input: A tensor, or a tuple of the model's positional tensors.
        path: Where to write the ``.onnx`` file.
        dynamic_batch: Make the batch size symbolic (ignored for a program).

    Returns:
        ``path``, as a :class:`~pathlib.Path`.

    Raises:
        ModuleNotFoundError: onnxscript is not installed.
        TypeError: ``model`` is neither an ``nn.Module`` nor a program,
            ``example_input`` is not a tensor or a tuple of tensors, or
            ``dynamic_batch`` is not a bool.
        ValueError: ``dynamic_batch`` and an input with a batch below 2.

    Example:
        >>> import tempfile, torch, blockzoo
        >>> model = blockzoo.create_model("simple_cnn").eval()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = blockzoo.export_onnx(model, torch.randn(2, 3, 32, 32), f"{tmp}/simple_cnn.onnx")
        ...     print(path.name, path.stat().st_size > 0)
        simple_cnn.onnx True
    """
    check_bool("dynamic_batch", dynamic_batch)
    if not isinstance(model, torch.export.ExportedProgram):
        check_module("model", model)
    if importlib.util.find_spec("onnxscript") is None:
        raise ModuleNotFoundError(
            "export_onnx needs onnxscript (and onnxruntime to run the file): pip install 'blockzoo[onnx]'",
            name="onnxscript",
        )
    args = as_args(example_input)
    program = (
        model
        if isinstance(model, torch.export.ExportedProgram)
        else export_model(model, args, dynamic_batch=dynamic_batch)
    )
    weight_bytes = sum(t.numel() * t.element_size() for t in program.state_dict.values())
    path = Path(path)
    torch.onnx.export(program, args, path, dynamo=True, verbose=False, external_data=weight_bytes > _ONNX_INLINE_LIMIT)
    return path
