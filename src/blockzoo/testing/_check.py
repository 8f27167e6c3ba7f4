"""check_block: the block contract as one call."""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from blockzoo.shapes import infer_shape

__all__ = ["check_block"]

BlockFactory = Callable[..., nn.Module]


class _Law:
    """Names the law being checked, so that a failure says which one broke."""

    def __init__(self, block: str, device: str, dtype: torch.dtype) -> None:
        self.where = f"{block} on {device}/{str(dtype).removeprefix('torch.')}"

    @contextmanager
    def __call__(self, law: str) -> Iterator[None]:
        try:
            yield
        except AssertionError as err:
            raise AssertionError(f"check_block: law '{law}' broken for {self.where}: {err}") from err
        except Exception as err:  # any failure of a law is reported as that law
            raise AssertionError(
                f"check_block: law '{law}' broken for {self.where}: {type(err).__name__}: {err}"
            ) from err


def _fail(message: str) -> None:
    raise AssertionError(message)


def _same(actual: Tensor, expected: Tensor, what: str, *, exact: bool = False) -> None:
    if actual.shape != expected.shape:
        _fail(f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    if exact:
        if not torch.equal(actual, expected):
            _fail(f"{what}: outputs differ (expected bit-identical)")
    else:
        # Half-precision results from another kernel (channels_last, compiled) differ by
        # rounding; torch's default bfloat16 atol of 1e-5 is below one ulp near 1.
        low = actual.dtype in (torch.float16, torch.bfloat16)
        rtol, atol = (1.6e-2, 1e-2) if low else (None, None)
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def _torch_conv_keeps(x: Tensor, fmt: torch.memory_format) -> bool:
    """Whether torch's own conv returns ``fmt`` for ``x`` (float64 Conv3d on CPU does not)."""
    weight = torch.ones((x.shape[1], x.shape[1], *([1] * (x.dim() - 2))), dtype=x.dtype, device=x.device)
    conv = {4: torch.nn.functional.conv2d, 5: torch.nn.functional.conv3d}[x.dim()]
    return bool(conv(x, weight.contiguous(memory_format=fmt)).is_contiguous(memory_format=fmt))


def _channels_last_format(rank: int) -> torch.memory_format | None:
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(rank)


def _check_one(
    factory: BlockFactory, shape: tuple[int, ...], device: str, dtype: torch.dtype, *, compile: bool, export: bool
) -> None:
    probe = factory(device="meta", dtype=dtype)
    law = _Law(type(probe).__name__, device, dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(shape, generator=gen, device=device, dtype=dtype)

    with law("constructs on the requested device and dtype"):
        block = factory(device=device, dtype=dtype)
        for name, t in [*block.named_parameters(), *block.named_buffers()]:
            if t.device.type != torch.device(device).type:
                _fail(f"{name} is on {t.device}")
            if t.is_floating_point() and t.dtype != dtype:
                _fail(f"{name} has dtype {t.dtype}")

    with law("declared output shape equals the real one"):
        block.train()
        out = block(x)
        declared = infer_shape(block, shape)
        if tuple(declared) != tuple(out.shape):
            _fail(f"output_shape{shape} says {tuple(declared)}, forward gave {tuple(out.shape)}")

    with law("dtype and device kept"):
        if out.dtype != dtype or out.device.type != torch.device(device).type:
            _fail(f"output is {out.dtype} on {out.device}")

    with law("gradients reach every parameter"):
        x_grad = x.clone().requires_grad_(True)
        block(x_grad).float().square().mean().backward()
        for name, p in block.named_parameters():
            if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all()):
                _fail(f"{name} got {'no' if p.grad is None else 'a non-finite'} gradient")
        block.zero_grad(set_to_none=True)

    if dtype == torch.float32:
        with law("runs under autocast"), torch.no_grad():
            low = torch.bfloat16 if device == "cpu" else torch.float16
            with torch.autocast(device_type=torch.device(device).type, dtype=low):
                auto = block(x)
            if auto.shape != out.shape or not torch.isfinite(auto.float()).all():
                _fail(
                    f"autocast forward gave shape {tuple(auto.shape)} with finite={bool(torch.isfinite(auto.float()).all())}"
                )

    block.eval()
    with torch.no_grad():
        ref = block(x)

    with law("eval forward is deterministic"), torch.no_grad():
        _same(block(x), ref, "second eval forward", exact=True)

    fmt = _channels_last_format(len(shape))
    if fmt is not None and getattr(block, "channel_dim", 1) == 1:
        with law("channels_last input gives channels_last output"), torch.no_grad():
            x_cl = x.contiguous(memory_format=fmt)
            y = block(x_cl)
            # Only an unambiguous input (not also contiguous, as with one channel) fixes the format,
            # and only where torch's own convolution keeps it for this dtype and device.
            expected_cl = not x_cl.is_contiguous() and _torch_conv_keeps(x_cl, fmt)
            if expected_cl and y.dim() == len(shape) and not y.is_contiguous(memory_format=fmt):
                _fail(f"output strides {y.stride()} are not channels_last")
            _same(y, ref, "channels_last output")

    with law("constructs on the meta device"):
        meta = factory(device="meta", dtype=dtype)
        for name, t in [*meta.named_parameters(), *meta.named_buffers()]:
            if t.device.type != "meta":
                _fail(f"{name} is on {t.device}")
        meta_out = meta(torch.empty(shape, device="meta", dtype=dtype))
        if tuple(meta_out.shape) != tuple(out.shape):
            _fail(f"meta forward gave {tuple(meta_out.shape)}, real forward {tuple(out.shape)}")

    with law("deepcopy gives an equal, independent block"), torch.no_grad():
        twin = copy.deepcopy(block)
        _same(twin(x), ref, "deepcopy output", exact=True)
        # A copy that shares tensors with the original (an EMA or best-weights snapshot) would move with it.
        storages = {t.untyped_storage().data_ptr() for t in [*block.parameters(), *block.buffers()] if t.numel()}
        for name, t in [*twin.named_parameters(), *twin.named_buffers()]:
            if t.numel() and t.untyped_storage().data_ptr() in storages:
                _fail(f"the copy's {name} shares storage with the original")

    with law("pickle round trip gives an equal block"), torch.no_grad():
        _same(pickle.loads(pickle.dumps(block))(x), ref, "unpickled output", exact=True)

    with law("state_dict round trip gives an equal block"), torch.no_grad():
        fresh = factory(device=device, dtype=dtype).eval()
        fresh.load_state_dict(block.state_dict())
        buf = io.BytesIO()
        torch.save(block.state_dict(), buf)
        buf.seek(0)
        fresh.load_state_dict(torch.load(buf, weights_only=True))
        _same(fresh(x), ref, "reloaded output", exact=True)

    with law("reset_parameters() works in place"):
        # The same Parameter objects (an optimizer holds them), with their shapes, dtypes and devices.
        before = {n: (p, p.shape, p.dtype, p.device) for n, p in block.named_parameters()}
        reset = getattr(block, "reset_parameters", None)
        if callable(reset):
            reset()
        after = {n: (p, p.shape, p.dtype, p.device) for n, p in block.named_parameters()}
        if after.keys() != before.keys():
            _fail(f"parameters {sorted(before)} became {sorted(after)}")
        for name, (p, *kept) in after.items():
            old, *was = before[name]
            if p is not old:
                _fail(f"{name} was replaced by a new Parameter instead of being filled in place")
            if kept != was:
                _fail(f"{name}'s shape, dtype and device changed from {tuple(was)} to {tuple(kept)}")
        block.load_state_dict(fresh.state_dict())

    if compile:
        with law("torch.compile(fullgraph=True) gives the same output"), torch.no_grad():
            torch.compiler.reset()
            compiled = torch.compile(block, fullgraph=True, backend="eager")
            _same(compiled(x), ref, "compiled output")

    if export:
        with law("torch.export.export gives the same output"), torch.no_grad():
            program = torch.export.export(block, (x,))
            _same(program.module()(x), ref, "exported output")


def check_block(
    factory: BlockFactory,
    input_shape: Sequence[int],
    *,
    dtypes: Sequence[torch.dtype] | None = None,
    devices: Sequence[str | torch.device] | None = None,
    compile: bool = True,
    export: bool = True,
) -> None:
    """Check DESIGN.md's block contract on any block, your own subclasses included.

    For every device and dtype it builds the block with
    ``factory(device=..., dtype=...)`` and checks that: it constructs there;
    the declared output shape (``output_shape`` or
    :func:`~blockzoo.infer_shape`) equals the real one; dtype and device are
    kept; every parameter gets a finite gradient; eval forward is
    deterministic; channels_last input gives channels_last output with the
    same values (for channels-first blocks, where torch's own conv keeps the
    format); it constructs and runs on the meta device; deepcopy, pickle
    and a state_dict round trip (through ``torch.save`` and
    ``torch.load(weights_only=True)``) give bit-identical outputs, and the
    deepcopy shares no tensor with the original; ``reset_parameters()`` runs
    in place (the same ``Parameter`` objects, shapes, dtypes and devices);
    ``torch.compile(fullgraph=True)`` (backend ``"eager"``) and
    :func:`torch.export.export` give the same outputs.

    Args:
        factory: Builds the block; called with ``device=`` and ``dtype=``
            keywords (``functools.partial(MyBlock, 16, 32)`` works).
        input_shape: A valid input shape, batch included. Batch norms in
            training need more than one value per channel.
        dtypes: Floating dtypes to try (default: float32).
        devices: Devices to try (default: CPU).
        compile: Check ``torch.compile``.
        export: Check ``torch.export``.

    Raises:
        AssertionError: naming the broken law, the block, the device and the
            dtype.

    Example:
        >>> from functools import partial
        >>> import torch
        >>> from blockzoo import ConvNormAct
        >>> from blockzoo.testing import check_block
        >>> check_block(partial(ConvNormAct, 4, 8), (2, 4, 8, 8), dtypes=[torch.float32, torch.float64], export=False)
        >>> class Broken(ConvNormAct):
        ...     def output_shape(self, input_shape):
        ...         return torch.Size(input_shape)
        >>> check_block(partial(Broken, 4, 8), (2, 4, 8, 8), compile=False, export=False)
        Traceback (most recent call last):
        ...
        AssertionError: check_block: law 'declared output shape equals the real one' broken for Broken on cpu/float32: output_shape(2, 4, 8, 8) says (2, 4, 8, 8), forward gave (2, 8, 8, 8)
    """
    shape = tuple(int(s) for s in input_shape)
    for device in devices or ["cpu"]:
        for dtype in dtypes or [torch.float32]:
            if not dtype.is_floating_point:
                raise ValueError(f"dtypes must be floating dtypes. Received: dtypes={list(dtypes or [])!r}")
            _check_one(factory, shape, str(device), dtype, compile=compile, export=export)
