"""The forward passes behind :func:`summary` and :func:`flops`, which leave the model as it was.

A pass runs the model through :func:`torch.func.functional_call` on copies of
its parameters and buffers: on the meta device (no memory, no compute) when
every operation has a meta implementation, else on a real device with the
parameters as they are and copies of the buffers, so batch-norm statistics do
not move. Modes, the RNG state, and what activity penalties collected are put
back afterwards; hooks registered on the model run during the pass.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import Tensor, nn

from blockzoo._checks import is_int
from blockzoo._trees import map_tensors, tensor_leaves
from blockzoo.errors import InputError
from blockzoo.regularization._store import attachments

if TYPE_CHECKING:
    from torch.utils.flop_counter import FlopCounterMode

__all__ = ["Call", "Inputs", "Trace", "check_materialized", "make_inputs", "model_device", "trace"]

T = TypeVar("T")

META = torch.device("meta")

#: What a pass on the meta device raises for an operation it cannot run there; anything else is the model's error.
_META_FAILURES = (NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class Inputs:
    """The positional and keyword inputs of a pass; ``synthetic`` when made from shapes (any values will do)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    synthetic: bool

    def shapes(self) -> Any:
        """The input shapes: of the one input, of the positional inputs, of the keyword inputs, or of both."""
        if not self.kwargs:
            inputs: Any = self.args[0] if len(self.args) == 1 else self.args
        else:
            inputs = (self.args, self.kwargs) if self.args else self.kwargs
        return map_tensors(lambda t: tuple(t.shape), inputs)

    def on(self, device: torch.device) -> Inputs:
        """Copies on ``device``: empty meta tensors, zeros for synthetic inputs, else copies of the data."""
        if device.type == "meta":
            convert: Callable[[Tensor], Tensor] = lambda t: torch.empty_like(t, device=META)  # noqa: E731
        elif self.synthetic:
            convert = lambda t: torch.zeros_like(t, device=device)  # noqa: E731
        else:  # a copy: an in-place first layer must not write into the caller's data
            convert = lambda t: t.detach().to(device, copy=True)  # noqa: E731
        return Inputs(map_tensors(convert, self.args), map_tensors(convert, self.kwargs), self.synthetic)

    def tensors(self) -> list[Tensor]:
        return tensor_leaves([self.args, self.kwargs])


def check_materialized(model: nn.Module) -> None:
    """Refuse a model with a lazy layer that has not run yet: its parameters have no size to count or trace."""
    for name, p in model.named_parameters():
        if nn.parameter.is_lazy(p):
            raise ValueError(
                f"{name} belongs to a lazy layer that has not run yet, so it has no size; run one forward "
                f"pass first. Received: model={type(model).__name__}"
            )


class _PassFailed(Exception):
    """A pass that raised: the error and the innermost module that was running (its name in the model)."""

    def __init__(self, error: Exception, module: str | None, inputs: Inputs) -> None:
        super().__init__(str(error))
        self.error, self.module, self.inputs = error, module, inputs

    def described(self) -> Exception:
        """The error again, of the same type where it can be, saying where in the model it happened."""
        where = "outside any module" if self.module is None else f"in {self.module}"
        first = str(self.error).splitlines()[0] if str(self.error) else ""
        text = f"the forward pass on inputs of shape {self.inputs.shapes()} failed {where}: {first}"
        try:
            return type(self.error)(text)
        except Exception:  # noqa: BLE001 - an exception type that takes other arguments: say it as a RuntimeError
            return RuntimeError(f"{type(self.error).__name__}: {text}")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter or buffer (the default dtype without one)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def model_device(model: nn.Module) -> torch.device:
    """Where the model's first parameter or buffer is (the CPU without one)."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def _channels_last(model: nn.Module, rank: int) -> bool:
    fmt = torch.channels_last if rank == 4 else torch.channels_last_3d
    return any(
        p.dim() == rank and not p.is_contiguous() and p.is_contiguous(memory_format=fmt) for p in model.parameters()
    )


def _is_shape(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) and all(is_int(s) and s >= 0 for s in value)


def _shapes(input_size: Any) -> list[tuple[int, ...]]:
    if _is_shape(input_size) and len(input_size) > 0:
        return [tuple(int(s) for s in input_size)]
    several = isinstance(input_size, Sequence) and not isinstance(input_size, str) and len(input_size) > 0
    if several and all(_is_shape(s) and len(s) > 0 for s in input_size):
        return [tuple(int(d) for d in s) for s in input_size]
    raise TypeError(
        "input_size must be the shape of one input batch, batch dimension included, such as (1, 3, 32, 32), "
        f"or a sequence of such shapes, one per positional input. Received: input_size={input_size!r}"
    )


def _dtypes(dtypes: Any, n: int, model: nn.Module) -> list[torch.dtype]:
    if dtypes is None:
        return [model_dtype(model)] * n
    if isinstance(dtypes, torch.dtype):
        return [dtypes] * n
    if isinstance(dtypes, Sequence) and len(dtypes) == n and all(isinstance(d, torch.dtype) for d in dtypes):
        return list(dtypes)
    raise TypeError(
        f"dtypes must be a torch.dtype, or one per input ({n} here), such as [torch.long]. Received: dtypes={dtypes!r}"
    )


def make_inputs(model: nn.Module, input_size: Any, input_data: Any, dtypes: Any) -> Inputs | None:
    """The inputs that ``input_size`` (with ``dtypes``) or ``input_data`` describe; ``None`` for neither.

    Inputs made from shapes are empty meta tensors, in channels_last when the
    model's 4-D (5-D) parameters are.
    """
    if input_size is not None and input_data is not None:
        raise ValueError(
            "Give input_size or input_data, not both. "
            f"Received: input_size={input_size!r}, input_data={type(input_data).__name__}"
        )
    if input_data is not None:
        if dtypes is not None:
            raise ValueError(
                f"dtypes is for the inputs made from input_size; input_data has its own. Received: dtypes={dtypes!r}"
            )
        if isinstance(input_data, Tensor):
            return Inputs((input_data,), {}, synthetic=False)
        if isinstance(input_data, (tuple, list)):
            return Inputs(tuple(input_data), {}, synthetic=False)
        if isinstance(input_data, dict) and all(isinstance(k, str) for k in input_data):
            return Inputs((), dict(input_data), synthetic=False)
        raise TypeError(
            "input_data must be a tensor, a tuple or list of positional inputs, or a dict of keyword inputs. "
            f"Received: input_data={type(input_data).__name__}"
        )
    if input_size is None:
        if dtypes is not None:
            raise ValueError(f"dtypes is for the inputs made from input_size. Received: dtypes={dtypes!r}")
        return None
    shapes = _shapes(input_size)
    kinds = _dtypes(dtypes, len(shapes), model)
    args = []
    for shape, dtype in zip(shapes, kinds, strict=True):
        fmt = torch.contiguous_format
        if len(shape) in (4, 5) and _channels_last(model, len(shape)):
            fmt = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
        args.append(torch.empty(shape, dtype=dtype, device=META, memory_format=fmt))
    return Inputs(tuple(args), {}, synthetic=True)


@dataclass
class Call:
    """One call of a module during a pass: what it returned, the FLOPs counted inside it, when it ended, who called it.

    ``caller`` is the innermost module of the model that was running when the
    call began (``None`` for the model's own call).
    """

    output: Any
    flops: int
    order: int
    caller: nn.Module | None = None


@dataclass
class Trace:
    """What a shape pass saw: the output's shapes, each hooked module's calls, the FLOPs, and where it ran."""

    output: Any
    calls: dict[nn.Module, list[Call]] = field(default_factory=dict)
    flops: int = 0
    device: str = "meta"
    meta_failure: str | None = None
    activation_bytes: int | None = None

    def of(self, module: nn.Module) -> tuple[Call | None, int]:
        """A module's first output, FLOPs over all its calls, and its number of calls.

        A container whose ``forward`` was skipped (a block that runs the layers of
        its ``nn.Sequential`` one by one) did its children's work: their FLOPs, and
        the output of the child that ended last; it has 0 calls.
        """
        calls = self.calls.get(module)
        if calls:
            return Call(calls[0].output, sum(c.flops for c in calls), calls[-1].order), len(calls)
        parts = [call for call, _ in (self.of(child) for child in module.children()) if call is not None]
        if not parts:
            return None, 0
        last = max(parts, key=lambda c: c.order)
        return Call(last.output, sum(p.flops for p in parts), last.order), 0

    def _caller(self, model: nn.Module, name: str) -> nn.Module | None:
        """The module that calls the one at ``name``: its nearest ancestor that ran (``None`` for the model)."""
        if not name:
            return None
        parts = name.split(".")
        for k in range(len(parts) - 1, -1, -1):
            ancestor = model.get_submodule(".".join(parts[:k]))
            if self.calls.get(ancestor):
                return ancestor
        return None

    def positions(self, model: nn.Module) -> dict[str, tuple[Call | None, int]]:
        """Each qualified name's own calls (all names of a module used in several places), FLOPs counted once.

        A name's calls are those of its module made by its caller (see
        :meth:`_caller`), so a module used in two places gets each place's
        calls at each name. Where one caller holds a module under two names
        (``nn.Sequential(bn, act, bn)``) their calls cannot be told apart: the
        first name gets their FLOPs, the others 0. A container whose
        ``forward`` did not run gets its children's, as in :meth:`of`. The FLOPs
        of a name's children therefore add up to its own (but for operations
        in its own ``forward``), and no call is counted twice.
        """
        claimed: dict[tuple[int, int], str] = {}
        result: dict[str, tuple[Call | None, int]] = {}
        named = list(model.named_modules(remove_duplicate=False))
        for name, module in named:
            if self.calls.get(module):
                claimed.setdefault((id(module), id(self._caller(model, name))), name)

        def at(name: str, module: nn.Module) -> tuple[Call | None, int]:
            if name in result:
                return result[name]
            calls = self.calls.get(module)
            if calls:
                caller = self._caller(model, name)
                mine = [c for c in calls if c.caller is caller]
                flops = sum(c.flops for c in mine) if claimed.get((id(module), id(caller))) == name else 0
                found = (Call(mine[0].output, flops, mine[-1].order, caller), len(mine)) if mine else (None, 0)
            else:
                prefix = f"{name}." if name else ""
                parts = [at(prefix + child, m)[0] for child, m in module.named_children()]
                kept = [p for p in parts if p is not None]
                last = max(kept, key=lambda c: c.order) if kept else None
                found = (Call(last.output, sum(p.flops for p in kept), last.order), 0) if last else (None, 0)
            result[name] = found
            return found

        for name, module in named:
            at(name, module)
        return result


def _state(model: nn.Module, device: torch.device) -> dict[str, Tensor]:
    """Parameters and buffers for ``functional_call`` on ``device``; buffers always copies.

    Every slot is named once, under its module's first name, so that a module
    used in two places is swapped and put back once (``tie_weights=False``);
    a tensor held in two slots (tied weights) gets one copy, used in both.
    """
    state: dict[str, Tensor] = {}
    copies: dict[int, Tensor] = {}
    with torch.no_grad():
        for module_name, module in model.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, p in module.named_parameters(recurse=False):
                if id(p) not in copies:
                    if device.type == "meta":
                        copies[id(p)] = torch.empty_like(p, device=META).requires_grad_(p.requires_grad)
                    elif p.device != device:
                        copies[id(p)] = p.detach().to(device).requires_grad_(p.requires_grad)
                    else:
                        copies[id(p)] = p
                state[prefix + name] = copies[id(p)]
            for name, b in module.named_buffers(recurse=False):
                if id(b) not in copies:
                    copies[id(b)] = (
                        torch.empty_like(b, device=META) if device.type == "meta" else b.detach().to(device, copy=True)
                    )
                state[prefix + name] = copies[id(b)]
    return state


@contextlib.contextmanager
def _untouched(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Put back the modes, the RNG state and the activity penalties' collections after the block."""
    modes = [(m, m.training) for m in model.modules()]
    collected: list[tuple[list[Tensor], list[Tensor]]] = []
    for attachment in attachments(model):
        items = getattr(attachment, "collected", None)  # an activity penalty's terms from the last forward
        if isinstance(items, list):
            collected.append((items, list(items)))
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        for m, training in modes:
            m.training = training
        for items, saved in collected:
            items[:] = saved


def _with_fallback(
    run: Callable[[torch.device], T], model: nn.Module, device: torch.device | None
) -> tuple[T, str, str | None]:
    """``run(meta)``, else ``run(device)`` (default: the model's device); with where it ran and why not on meta.

    A pass that fails on the meta device may fail for want of a meta kernel,
    so it runs once more on a real device before its error is believed; the
    error then says in which module it happened. A block's
    :class:`~blockzoo.InputError` already says what is wrong, and is raised as it is.
    """
    try:
        return run(META), "meta", None
    except _PassFailed as failed:
        fallback = device if device is not None else model_device(model)
        if isinstance(failed.error, InputError):
            raise failed.error from None
        if not isinstance(failed.error, _META_FAILURES) or fallback.type == "meta":
            raise failed.described() from failed.error
        err = failed.error
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    try:
        return run(fallback), str(fallback), reason
    except _PassFailed as failed:
        if isinstance(failed.error, InputError):
            raise failed.error from None
        raise failed.described() from failed.error


class _Recorder:
    """Forward hooks that note each call's output and the FLOPs counted between its start and end."""

    def __init__(self, modules: Sequence[nn.Module], counter: FlopCounterMode | None) -> None:
        self.counter = counter
        self.calls: dict[nn.Module, list[Call]] = {}
        self._starts: dict[nn.Module, list[int]] = {}
        self._running: list[nn.Module] = []
        self._callers: dict[nn.Module, list[nn.Module | None]] = {}
        self._ended = 0
        self.handles = []
        for m in modules:
            self.handles.append(m.register_forward_pre_hook(self._pre))
            self.handles.append(m.register_forward_hook(self._post))

    def _flops(self) -> int:
        return int(self.counter.get_total_flops()) if self.counter is not None else 0

    def _pre(self, module: nn.Module, args: Any) -> None:
        self._starts.setdefault(module, []).append(self._flops())
        self._callers.setdefault(module, []).append(self._running[-1] if self._running else None)
        self._running.append(module)

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        start, caller = self._starts[module].pop(), self._callers[module].pop()
        if self._running and self._running[-1] is module:
            self._running.pop()
        shapes = map_tensors(lambda t: tuple(t.shape), output)
        self._ended += 1
        self.calls.setdefault(module, []).append(Call(shapes, self._flops() - start, self._ended, caller))

    def running(self, model: nn.Module) -> str | None:
        """The name of the innermost module whose forward has started and not ended."""
        if not self._running:
            return None
        innermost = self._running[-1]
        name = next((name for name, m in model.named_modules() if m is innermost), None)
        return None if name is None else f"{name or '(the model)'} ({type(innermost).__name__})"

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class _Saved:
    """A pack hook for ``saved_tensors_hooks`` that notes each storage autograd saves, but those it is told to skip."""

    def __init__(self, skip: Sequence[Tensor]) -> None:
        self._held = [t.untyped_storage() for t in skip]  # held, so that their ids stay unique while we count
        self._skip = {id(s) for s in self._held}
        self.storages: dict[int, torch.UntypedStorage] = {}

    def pack(self, t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if id(storage) not in self._skip:
            self.storages[id(storage)] = storage
        return t

    def bytes(self) -> int:
        return sum(s.nbytes() for s in self.storages.values())


def _forward(model: nn.Module, inputs: Inputs, target: torch.device, *, record: bool, train: bool) -> Trace:
    """One pass on ``target``: with ``record``, each module's calls and the FLOPs; with ``train``, the saved bytes."""
    from torch.utils.flop_counter import FlopCounterMode  # not at import time: it is slow to import

    state = _state(model, target)
    moved = inputs.on(target)
    saved = _Saved([*state.values(), *moved.tensors()]) if train else None
    counter = FlopCounterMode(display=False) if record else None
    recorder = _Recorder(list(model.modules()), counter) if record else None
    with contextlib.ExitStack() as stack:
        stack.enter_context(_untouched(model, target))
        if recorder is not None:
            stack.callback(recorder.remove)
        if saved is not None:
            if not model.training:
                model.train()
            stack.enter_context(torch.enable_grad())
            stack.enter_context(torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t))
        else:
            stack.enter_context(torch.no_grad())
        if counter is not None:
            stack.enter_context(counter)
        try:
            out = torch.func.functional_call(model, state, moved.args, moved.kwargs, tie_weights=False)
        except Exception as err:
            raise _PassFailed(err, recorder.running(model) if recorder is not None else None, inputs) from err
    result = Trace(map_tensors(lambda t: tuple(t.shape), out))
    if recorder is not None and counter is not None:
        result.calls, result.flops = recorder.calls, int(counter.get_total_flops())
    if saved is not None:
        for t in tensor_leaves(out):
            saved.pack(t)
        result.activation_bytes = saved.bytes()
    return result


def trace(model: nn.Module, inputs: Inputs, *, device: torch.device | None = None, activations: bool = False) -> Trace:
    """A pass in the model's own modes: each module's outputs and FLOPs, and with ``activations`` the saved bytes.

    FLOPs are :class:`~torch.utils.flop_counter.FlopCounterMode`'s count; a
    module's FLOPs include its children's and add up over its calls.

    The activation bytes are what a training step holds between its forward
    and backward passes: the storages of the tensors autograd saves for
    backward in a training-mode forward pass, each counted once, plus the
    output's; the inputs, parameters and buffers are not counted. The model's
    own modes are used when it is in training mode (one pass does it all),
    else a second pass puts every module in training mode.
    """
    check_materialized(model)
    together = activations and model.training

    def run(target: torch.device) -> Trace:
        return _forward(model, inputs, target, record=True, train=together)

    result, where, reason = _with_fallback(run, model, device)
    result.device, result.meta_failure = where, reason
    if activations and not together:
        second = _with_fallback(lambda target: _forward(model, inputs, target, record=False, train=True), model, device)
        result.activation_bytes = second[0].activation_bytes
    return result
