"""check_block must catch each broken law, naming it."""

import functools

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo.testing import check_block


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


class IgnoresDevice(blockzoo.Block):
    def __init__(self, *, device=None, dtype=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Contiguous(blockzoo.ConvNormAct):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).contiguous()


class GraphBreak(blockzoo.ConvNormAct):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        torch._dynamo.graph_break()
        return y


class Unpicklable(blockzoo.ConvNormAct):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fn = lambda v: v


@pytest.mark.parametrize(
    ("cls", "law", "kwargs"),
    [
        (WrongShape, "declared output shape equals the real one", {}),
        (CastsToFloat, "dtype and device kept", {"dtypes": [torch.float64]}),
        (DeadParameter, "gradients reach every parameter", {}),
        (Contiguous, "channels_last input gives channels_last output", {}),
        (Unpicklable, "pickle round trip gives an equal block", {}),
        (GraphBreak, r"torch\.compile\(fullgraph=True\) gives the same output", {}),
    ],
)
def test_each_broken_law_is_named(cls: type[nn.Module], law: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(AssertionError, match=rf"check_block: law '{law}' broken for {cls.__name__} on cpu/"):
        check_block(functools.partial(cls, 4, 8), (2, 4, 6, 6), export=False, **kwargs)  # type: ignore[arg-type]


def test_a_block_that_ignores_device_fails_on_meta() -> None:
    with pytest.raises(AssertionError, match=r"law 'constructs on the meta device' broken for IgnoresDevice"):
        check_block(IgnoresDevice, (2, 3), compile=False, export=False)


def test_rejects_integer_dtypes() -> None:
    with pytest.raises(ValueError, match=r"dtypes must be floating dtypes\. Received: dtypes=\[torch.int32\]"):
        check_block(functools.partial(blockzoo.DropPath, 0.1), (2, 3), dtypes=[torch.int32])


class LayerScale(blockzoo.Block):
    def __init__(self, channels: int, *, device=None, dtype=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels, 1, 1), 0.1, device=device, dtype=dtype))

    def own_param_roles(self):  # type: ignore[no-untyped-def]
        return {"gamma": blockzoo.Role.SCALE}

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gamma, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def test_a_user_subclass_passes() -> None:
    check_block(functools.partial(LayerScale, 4), (2, 4, 3, 3), dtypes=[torch.float32, torch.bfloat16])
    assert LayerScale(4).param_roles() == {"gamma": blockzoo.Role.SCALE}
