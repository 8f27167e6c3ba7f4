"""check_block must catch each broken law, naming it: one deliberately broken block per law."""

from __future__ import annotations

import functools
import inspect
import re
import weakref
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import blockzoo
from blockzoo.testing import _check, check_block
from support import CUDA


class LayerScale(blockzoo.Block):
    """A correct user block: a per-channel scale."""

    def __init__(self, channels: int, *, device=None, dtype=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels, 1, 1), 0.1, device=device, dtype=dtype))

    def own_param_roles(self):  # type: ignore[no-untyped-def]
        return {"gamma": blockzoo.Role.SCALE}

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gamma, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


# ----------------------------------------------------------------------------- one broken block per law


class IgnoresDtype(blockzoo.ConvNormAct):
    """Builds an extra parameter in the default dtype, whatever ``dtype=`` says."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.offset = nn.Parameter(torch.zeros(1, device=kwargs.get("device")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.offset.to(x.dtype)


class IgnoresDevice(blockzoo.Block):
    """Builds its parameter on the default device, whatever ``device=`` says."""

    def __init__(self, *, device=None, dtype=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.device)


class WrongShape(blockzoo.ConvNormAct):
    def output_shape(self, input_shape):  # type: ignore[no-untyped-def]
        return torch.Size(input_shape)


class CastsToFloat(blockzoo.ConvNormAct):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).float()


class DeadParameter(blockzoo.ConvNormAct):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.unused = nn.Parameter(torch.zeros(1, device=kwargs.get("device"), dtype=kwargs.get("dtype")))


class LerpToTarget(blockzoo.ConvNormAct):
    """Pulls the output towards a per-channel target with ``torch.lerp``, which needs equal dtypes:

    under autocast the conv gives a low-precision output and the target stays float32.
    """

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.target = nn.Parameter(torch.zeros(self.conv.out_channels, 1, 1, device=kwargs.get("device")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.lerp(super().forward(x), self.target, 0.5)


class DropoutInEval(blockzoo.ConvNormAct):
    """Calls dropout with ``training=True`` instead of ``training=self.training``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(super().forward(x), 0.5, training=True)


class Contiguous(blockzoo.ConvNormAct):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).contiguous()


#: State kept outside the block, keyed by the block (what issue 11 removes from blockzoo): a copy loses it.
_SCALES: weakref.WeakKeyDictionary[nn.Module, float] = weakref.WeakKeyDictionary()


class ScaleInAGlobalTable(blockzoo.ConvNormAct):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        _SCALES[self] = 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * _SCALES.get(self, 1.0)


class CopyIsItself(blockzoo.ConvNormAct):
    """A deepcopy that hands back the original: a snapshot would then move with the model."""

    def __deepcopy__(self, memo: dict[int, Any]) -> CopyIsItself:
        return self


class Unpicklable(blockzoo.ConvNormAct):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fn = lambda v: v


class UnsavedNoise(blockzoo.ConvNormAct):
    """A random per-channel offset in a non-persistent buffer: the state_dict does not carry it."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        noise = torch.randn(self.conv.out_channels, 1, 1, device=kwargs.get("device"), dtype=kwargs.get("dtype"))
        self.register_buffer("noise", noise, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.noise


class ResetToScalar(LayerScale):
    def reset_parameters(self) -> None:
        self.gamma = nn.Parameter(torch.full((1,), 0.1, device=self.gamma.device, dtype=self.gamma.dtype))


class ResetInDefaultDtype(LayerScale):
    def reset_parameters(self) -> None:
        nn.init.constant_(self.gamma, 0.1)
        self.gamma = nn.Parameter(self.gamma.float())


class ResetReplacesParameter(LayerScale):
    """Right values, shape and dtype, but a new Parameter: an optimizer holding the old one is cut off."""

    def reset_parameters(self) -> None:
        self.gamma = nn.Parameter(torch.full_like(self.gamma, 0.1))


class GraphBreak(blockzoo.ConvNormAct):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        torch._dynamo.graph_break()  # the documented way to force a graph break
        return y


class ReadsDataPointer(blockzoo.ConvNormAct):
    """Checks its output's alignment, which export's fake tensors have none of."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y.clone() if y.data_ptr() % 64 else y


class DiffersWhenExported(blockzoo.ConvNormAct):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return 2 * y if torch.compiler.is_exporting() else y


def conv(cls: type[nn.Module]) -> Any:
    return functools.partial(cls, 4, 8)


CONV_INPUT = (2, 4, 6, 6)
SCALE_INPUT = (2, 4, 3, 3)


#: (factory, input shape, the law it breaks (a regular expression), check_block's keywords)
BROKEN: list[tuple[Any, tuple[int, ...], str, dict[str, Any]]] = [
    (conv(IgnoresDtype), CONV_INPUT, "constructs on the requested device and dtype", {"dtypes": [torch.float64]}),
    (conv(WrongShape), CONV_INPUT, "declared output shape equals the real one", {}),
    (conv(CastsToFloat), CONV_INPUT, "dtype and device kept", {"dtypes": [torch.float64]}),
    (conv(DeadParameter), CONV_INPUT, "gradients reach every parameter", {}),
    (conv(LerpToTarget), CONV_INPUT, "runs under autocast", {}),
    (conv(DropoutInEval), CONV_INPUT, "eval forward is deterministic", {}),
    (conv(Contiguous), CONV_INPUT, "channels_last input gives channels_last output", {}),
    (IgnoresDevice, (2, 3), "constructs on the meta device", {}),
    (conv(ScaleInAGlobalTable), CONV_INPUT, "deepcopy gives an equal, independent block", {}),
    (conv(CopyIsItself), CONV_INPUT, "deepcopy gives an equal, independent block", {}),
    (conv(Unpicklable), CONV_INPUT, "pickle round trip gives an equal block", {}),
    (conv(UnsavedNoise), CONV_INPUT, "state_dict round trip gives an equal block", {}),
    (functools.partial(ResetToScalar, 4), SCALE_INPUT, r"reset_parameters\(\) works in place", {}),
    (
        functools.partial(ResetInDefaultDtype, 4),
        SCALE_INPUT,
        r"reset_parameters\(\) works in place",
        {"dtypes": [torch.float64]},
    ),
    (functools.partial(ResetReplacesParameter, 4), SCALE_INPUT, r"reset_parameters\(\) works in place", {}),
    (conv(GraphBreak), CONV_INPUT, r"torch\.compile\(fullgraph=True\) gives the same output", {}),
    (
        conv(ReadsDataPointer),
        CONV_INPUT,
        r"torch\.export\.export gives the same output",
        {"compile": False, "export": True},
    ),
    (
        conv(DiffersWhenExported),
        CONV_INPUT,
        r"torch\.export\.export gives the same output",
        {"compile": False, "export": True},
    ),
]


def _name(factory: Any) -> str:
    return str(getattr(factory, "func", factory).__name__)


@pytest.mark.parametrize(("factory", "shape", "law", "kwargs"), [pytest.param(*c, id=_name(c[0])) for c in BROKEN])
def test_each_broken_law_is_named(factory: Any, shape: tuple[int, ...], law: str, kwargs: dict[str, Any]) -> None:
    kwargs = {"export": False, **kwargs}
    name = _name(factory)
    dtype = str(kwargs.get("dtypes", [torch.float32])[0]).removeprefix("torch.")
    with pytest.raises(AssertionError, match=rf"^check_block: law '{law}' broken for {name} on cpu/{dtype}: "):
        check_block(factory, shape, **kwargs)


def test_every_law_has_a_broken_block() -> None:
    """BROKEN covers every law check_block names (read from its source, so a new law needs a case)."""
    laws = set(re.findall(r'law\("([^"]+)"\)', inspect.getsource(_check)))
    covered = {re.sub(r"\\(.)", r"\1", law) for _, _, law, _ in BROKEN}
    assert covered == laws


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_a_block_that_ignores_device_fails_on_cuda() -> None:
    with pytest.raises(
        AssertionError, match=r"law 'constructs on the requested device and dtype' broken for IgnoresDevice on cuda/"
    ):
        check_block(IgnoresDevice, (2, 3), devices=["cuda"], compile=False, export=False)


def test_rejects_integer_dtypes() -> None:
    with pytest.raises(ValueError, match=r"dtypes must be floating dtypes\. Received: dtypes=\[torch.int32\]"):
        check_block(functools.partial(blockzoo.DropPath, 0.1), (2, 3), dtypes=[torch.int32])


def test_a_user_subclass_passes() -> None:
    check_block(functools.partial(LayerScale, 4), (2, 4, 3, 3), dtypes=[torch.float32, torch.bfloat16])
    assert LayerScale(4).param_roles() == {"gamma": blockzoo.Role.SCALE}


def test_a_correct_conv_block_passes_every_law() -> None:
    """The base of the broken blocks above passes, so each failure above is its block's own defect."""
    check_block(conv(blockzoo.ConvNormAct), CONV_INPUT, dtypes=[torch.float32, torch.float64])
