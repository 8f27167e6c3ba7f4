"""``optimize_for_inference``: fold, channels_last and ``torch.compile`` with freezing, in one call."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from blockzoo._checks import check_bool
from blockzoo.inspect._export import as_args
from blockzoo.inspect._fuse import FusionReport, explain_fusion, fuse_conv_bn
from blockzoo.inspect._layout import channels_last_, channels_last_format

__all__ = ["InferenceModel", "InferenceReport", "optimize_for_inference"]


@dataclass(frozen=True)
class InferenceReport:
    """What :func:`optimize_for_inference` did, and how the result compares with the original model.

    Attributes:
        fusion: The conv -> batch-norm pairs folded (and any left unfolded).
        channels_last: Whether the weights and the inputs use channels_last memory.
        compiled: Whether ``torch.compile`` (inductor, with freezing) runs the model.
        compile_seconds: The first call's time, compiling included (``None`` without compiling).
        compile_error: Why compiling failed, when it did; the model then runs eagerly.
        max_abs_difference: The largest absolute difference from the original's
            output on the example input.
        same_predictions: Whether the argmax over the last dimension agrees
            everywhere (``None`` for an output that is not a tensor).

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("simple_cnn").eval()
        >>> fast = blockzoo.optimize_for_inference(model, torch.randn(2, 3, 32, 32), compile=False)
        >>> report = fast.report
        >>> len(report.fusion.folded), report.channels_last, report.compiled, report.compile_seconds
        (3, True, False, None)
    """

    fusion: FusionReport
    channels_last: bool
    compiled: bool
    compile_seconds: float | None
    compile_error: str | None
    max_abs_difference: float | None
    same_predictions: bool | None

    def __str__(self) -> str:
        folded = len(self.fusion.folded)
        lines = [f"folded {folded} conv -> batch-norm pair{'' if folded == 1 else 's'} (fuse_conv_bn)"]
        lines += [f"  not folded: {conv} -> {norm}: {why}" for conv, norm, why in self.fusion.skipped]
        lines.append(
            "weights and inputs in channels_last memory"
            if self.channels_last
            else "memory format unchanged (no 4-D or 5-D weights)"
        )
        if self.compiled:
            lines.append(
                f"compiled with torch.compile(options={{'freezing': True}}); first call {self.compile_seconds:.1f} s"
            )
        elif self.compile_error is not None:
            lines.append(f"not compiled ({self.compile_error}); runs eagerly")
        else:
            lines.append("not compiled (compile=False); runs eagerly")
        if self.max_abs_difference is not None:
            same = {True: "same predictions", False: "DIFFERENT predictions", None: "predictions not compared"}
            lines.append(
                f"against the original on the example input: max |difference| {self.max_abs_difference:.2g}, "
                f"{same[self.same_predictions]}"
            )
        return "\n".join(lines)


class InferenceModel:
    """A model prepared for inference by :func:`optimize_for_inference`; call it as the model.

    Calls run under ``torch.no_grad()``, with 4-D and 5-D inputs put in
    channels_last memory when the weights are. The compiled program is kept
    and reused, so compiling is paid once (a new input shape may compile
    once more). Compiling with freezing makes the weights constants of the
    program: changes to ``module``'s parameters afterwards are not seen.

    Attributes:
        module: The folded, channels_last eager module (what is compiled).
        report: The :class:`InferenceReport`.

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("simple_cnn").eval()
        >>> fast = blockzoo.optimize_for_inference(model, torch.randn(2, 3, 32, 32), compile=False)
        >>> fast(torch.randn(4, 3, 32, 32)).shape
        torch.Size([4, 10])
        >>> type(fast.module.features.stage1.convs[0].norm).__name__
        'Identity'
    """

    def __init__(
        self, module: nn.Module, run: Callable[..., Any], report: InferenceReport, *, channels_last: bool
    ) -> None:
        self.module = module
        self.report = report
        self._run = run
        self._channels_last = channels_last

    def __call__(self, *args: Tensor) -> Any:
        if self._channels_last:
            args = tuple(_to_channels_last(a) for a in args)
        with torch.no_grad():
            return self._run(*args)

    def __repr__(self) -> str:
        return f"InferenceModel({type(self.module).__name__}, compiled={self.report.compiled})"


def _to_channels_last(x: Tensor) -> Tensor:
    memory_format = channels_last_format(x)
    return x if memory_format is None else x.contiguous(memory_format=memory_format)


def _compare(reference: Any, output: Any) -> tuple[float | None, bool | None]:
    if not (isinstance(reference, Tensor) and isinstance(output, Tensor)) or reference.shape != output.shape:
        return None, None
    difference = float((output.float() - reference.float()).abs().max()) if reference.numel() else 0.0
    classes = 1 if reference.dim() > 1 else 0  # [N, C] or dense [N, C, H, W] outputs: the class axis is 1
    same = bool(torch.equal(output.argmax(classes), reference.argmax(classes))) if reference.dim() else None
    return difference, same


def optimize_for_inference(
    model: nn.Module, example_input: Tensor | tuple[Tensor, ...], *, compile: bool = True
) -> InferenceModel:
    """Prepare ``model`` for fast inference: fold its batch norms, use channels_last, compile with freezing.

    The three deployment steps in one call, on a copy (``model`` is not
    changed): :func:`fuse_conv_bn` (pairs that cannot be folded are left
    and reported), :func:`to_channels_last` for the weights and the inputs,
    and ``torch.compile`` with inductor's ``freezing``, which folds the
    weights into the compiled program as constants and lets inductor
    pre-pack them for oneDNN on CPU. ``freezing`` is passed through
    ``torch.compile``'s public ``options`` (the keys are inductor's settings)
    rather than by setting ``torch._inductor.config``. The example input is
    run at once, so compiling happens here, and the output is compared with
    the original model's (see :attr:`InferenceModel.report`). Where
    compiling fails (no C++ compiler for inductor on CPU, an operator
    inductor cannot handle), the folded channels_last model runs eagerly and
    the report says why.

    Args:
        model: A model in eval mode.
        example_input: A tensor, or a tuple of the model's positional tensors,
            on the model's device.
        compile: Compile with ``torch.compile``; ``False`` stops after
            folding and channels_last.

    Returns:
        The :class:`InferenceModel`: call it as the model.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``example_input`` is
            not a tensor or a tuple of tensors, or ``compile`` is not a bool.
        ValueError: ``model`` is in training mode.

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("simple_cnn").eval()
        >>> fast = blockzoo.optimize_for_inference(model, torch.randn(8, 3, 32, 32), compile=False)
        >>> print(fast.report)  # doctest: +ELLIPSIS
        folded 3 conv -> batch-norm pairs (fuse_conv_bn)
        weights and inputs in channels_last memory
        not compiled (compile=False); runs eagerly
        against the original on the example input: max |difference| ..., same predictions
    """
    compile = check_bool("compile", compile)
    args = as_args(example_input)
    fusion = explain_fusion(model)
    module = fuse_conv_bn(model, strict=False)
    channels_last = any(channels_last_format(p) is not None for p in module.parameters())
    if channels_last:
        channels_last_(module)
    prepared = tuple(_to_channels_last(a) for a in args) if channels_last else args
    with torch.no_grad():
        reference = model(*args)
        run: Callable[..., Any] = module
        output, seconds, error = None, None, None
        if compile:
            compiled = torch.compile(module, options={"freezing": True})
            start = time.perf_counter()
            try:
                output = compiled(*prepared)
                run, seconds = compiled, time.perf_counter() - start
            except Exception as err:  # noqa: BLE001 - any compile failure falls back to eager; the report says why
                error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if output is None:
            output = module(*prepared)
    difference, same = _compare(reference, output)
    if same is False:
        warnings.warn(
            f"optimize_for_inference: the optimized model predicts other classes than the original on the example "
            f"input (largest output difference {difference:.3g}); check the model, or use it eagerly",
            UserWarning,
            stacklevel=2,
        )
    report = InferenceReport(fusion, channels_last, run is not module, seconds, error, difference, same)
    return InferenceModel(module, run, report, channels_last=channels_last)
