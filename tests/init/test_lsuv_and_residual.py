from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import init_report, lsuv_, zero_init_last_
from support import DEVICES

LAYERS = (nn.Conv2d, nn.Linear)


def output_stds(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    stds: dict[str, float] = {}

    def record(name: str, out: torch.Tensor) -> None:
        stds.setdefault(name, out.std().item())

    handles = [
        m.register_forward_hook(lambda m, i, o, name=name: record(name, o))
        for name, m in model.named_modules()
        if isinstance(m, LAYERS)
    ]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return stds


def no_hooks(model: nn.Module) -> bool:
    return all(not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize(
    "make",
    [
        lambda: blockzoo.create_model("resnet20"),
        lambda: blockzoo.create_model("simple_cnn", num_classes=10),
        lambda: nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2),
            nn.Tanh(),
            nn.Flatten(),
            nn.LazyLinear(10),
        ),
    ],
    ids=["resnet20", "simple_cnn", "sequential"],
)
@pytest.mark.parametrize("device", DEVICES)
def test_lsuv_gives_unit_output_std_and_leaves_no_hooks(make: Any, device: str) -> None:
    torch.manual_seed(0)
    model = make().to(device)
    x = torch.randn(32, 3, 32, 32).to(device)
    model(x)  # materialise lazy layers
    model.train()
    list(model.children())[-1].eval()  # mixed modes must come back as they were
    modes = {name: m.training for name, m in model.named_modules()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    generator = torch.Generator(device=device).manual_seed(0)  # the orthogonal draws follow it, on the device
    lsuv_(model, x, tol=0.05, generator=generator)
    assert all(p.device.type == device for p in model.parameters())
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert no_hooks(model)
    for k, v in model.named_buffers():  # batch-norm statistics untouched
        assert torch.equal(v, buffers[k]), k
    stds = output_stds(model, x)
    assert stds, "no layer ran"
    for name, std in stds.items():
        assert abs(std - 1) < 0.05, (name, std)
    assert {row.initializer for row in init_report(model) if row.name.endswith("conv.weight")} <= {
        "lsuv (orthogonal, rescaled)"
    }


@pytest.mark.parametrize("device", DEVICES)
def test_lsuv_draws_follow_its_generator(device: str) -> None:
    x = torch.randn(64, 8).to(device)

    def run(global_seed: int, seed: int) -> list[torch.Tensor]:
        torch.manual_seed(global_seed)  # a different starting point, which LSUV overwrites
        net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4)).to(device)
        lsuv_(net, x, generator=torch.Generator(device=device).manual_seed(seed))
        return [p.detach().clone() for p in net.parameters()]

    a, b, c = run(1, 0), run(2, 0), run(1, 1)
    assert all(torch.equal(pa, pb) for pa, pb in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_lsuv_bad_input_and_cleanup_on_error() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="Received: tol=0"):
        lsuv_(model, torch.randn(8, 4), tol=0)
    with pytest.raises(ValueError, match="Received: max_iters=0"):
        lsuv_(model, torch.randn(8, 4), max_iters=0)
    with pytest.raises(ValueError, match="no conv or linear layer"):
        lsuv_(nn.Sequential(nn.ReLU()), torch.randn(8, 4))
    dead = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="output of 0 has std 0"):
        lsuv_(dead, torch.zeros(8, 4))  # zero input, zeroed bias: a constant output
    assert no_hooks(dead)
    assert dead.training


def test_zero_init_last_makes_every_block_its_shortcut() -> None:
    torch.manual_seed(0)
    outputs: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(block: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        outputs[block] = (args[0], out)

    for name in ("resnet20", "resnet18", "resnet50"):
        model = blockzoo.create_model(name).eval()
        zero_init_last_(model)
        blocks = [m for m in model.modules() if isinstance(m, blockzoo.ResidualBlock)]
        assert blocks
        handles = [b.register_forward_hook(keep) for b in blocks]
        with torch.no_grad():
            model(torch.randn(2, 3, 32, 32))
        for h in handles:
            h.remove()
        for b in blocks:
            inp, out = outputs[b]
            torch.testing.assert_close(out, torch.relu(b.shortcut(inp)), rtol=0, atol=0)


def test_zero_init_last_needs_a_residual_block() -> None:
    with pytest.raises(ValueError, match="Sequential has no residual block"):
        zero_init_last_(nn.Sequential(nn.Linear(2, 2)))


def test_init_report_flags_parameters_at_torch_default() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10), nn.Embedding(100, 8)
    )
    report = init_report(model)
    assert report.at_torch_default == ["0.weight", "0.bias", "1.weight", "1.bias", "5.weight"]
    assert report["4.weight"].status == "uninitialized"  # lazy, not materialised
    assert report["0.weight"].expected_std == pytest.approx(1 / (3 * 27) ** 0.5)
    blockzoo.init_weights(model[0], seed=0)
    report = init_report(model)
    assert report["0.weight"].status == "initialized"
    with torch.no_grad():
        model[0].weight.mul_(2)  # as a training step would
    assert init_report(model)["0.weight"].status == "modified"
    with torch.no_grad():
        model[1].weight.fill_(0.5)
    assert init_report(model)["1.weight"].status == "unknown"
    text = str(init_report(model))
    assert text.splitlines()[0].split() == [
        "name",
        "shape",
        "initializer",
        "expected",
        "std",
        "measured",
        "std",
        "status",
    ]
    assert "0.weight" in text
    assert "modified" in text
    with pytest.raises(TypeError, match="Received: model=int"):
        init_report(3)  # type: ignore[arg-type]


def test_init_records_travel_with_deepcopy_and_pickle() -> None:
    import copy
    import pickle

    model = blockzoo.create_model("resnet20")
    blockzoo.init_weights(model, seed=0)
    blockzoo.zero_init_last_(model)
    original = init_report(model)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert [(r.name, r.initializer, r.expected_std, r.status) for r in init_report(clone)] == [
            (r.name, r.initializer, r.expected_std, r.status) for r in original
        ]
        assert set(clone.state_dict()) == set(model.state_dict())  # records are not state
        with torch.no_grad():
            clone.head.fc.weight.add_(1.0)
        assert init_report(clone)["head.fc.weight"].status == "modified"
        assert init_report(model)["head.fc.weight"].status == "initialized"  # the copy's change stays there


def test_init_report_reads_values_not_memory_layout() -> None:
    model = blockzoo.create_model("resnet20")
    blockzoo.init_weights(model, seed=0)
    model.to(memory_format=torch.channels_last)
    assert {row.status for row in init_report(model)} == {"initialized"}
    with torch.no_grad():
        model.head.fc.weight.copy_(model.head.fc.weight.flip(0))  # the same values, moved between rows
    assert init_report(model)["head.fc.weight"].status == "modified"
