from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import blockzoo
import distributed_workers as workers
from blockzoo.regularization import (
    L1,
    L2,
    attach_activity_penalty,
    attach_grad_clip,
    attach_grad_noise,
    attach_penalty,
    attach_stochastic_depth,
    list_regularizers,
    regularization_loss,
    step_regularizers,
)


def test_stochastic_depth_on_blockzoo_resnet_skips_shape_changing_blocks() -> None:
    model = blockzoo.create_model("resnet20")
    handle = attach_stochastic_depth(model, 0.3)
    blocks = [(n, m) for n, m in model.named_modules() if isinstance(m, blockzoo.BasicBlock)]
    rated = [n for n, m in blocks if type(m.shortcut) is nn.Identity]
    assert handle.targets == rated
    assert len(rated) == 9 - 2  # the first blocks of stages 2 and 3 change the shape
    rates = [m.drop_path.p for n, m in blocks if n in rated]
    assert rates == pytest.approx([0.3 * i / 6 for i in range(7)])
    assert all(m.drop_path.p == 0 for n, m in blocks if n not in rated)
    assert "stochastic depth" in str(list_regularizers(model))
    handle.remove()
    assert all(m.drop_path.p == 0 for _, m in blocks)
    uniform = attach_stochastic_depth(model, 0.1, schedule="uniform")
    assert {model.get_submodule(n).drop_path.p for n in uniform.targets} == {0.1}


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_stochastic_depth_adapters_for_torchvision(name: str) -> None:
    tv = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    model = getattr(tv, name)(num_classes=4).eval()
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    handle = attach_stochastic_depth(model, 0.5, schedule="uniform")
    assert len(handle.targets) == {"resnet18": 5, "mobilenet_v2": 10}[name]
    block = model.get_submodule(handle.targets[0])
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    probe = block.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    with torch.no_grad():
        assert torch.equal(model(x), before)  # eval mode: nothing dropped
        state = {k: v.clone() for k, v in model.state_dict().items()}
        model.train()
        model(x)
    probe.remove()
    inp, out = seen[-1]
    shortcut = inp if name == "mobilenet_v2" else torch.relu(inp)  # resnet: relu(0 + identity)
    dropped = [torch.equal(out[i], shortcut[i]) for i in range(len(x))]
    assert any(dropped)  # some samples skip the branch: the block is its shortcut for them
    assert not all(dropped)
    handle.remove()
    model.load_state_dict(state)  # the training forward moved the batch-norm statistics
    with torch.no_grad():
        assert torch.equal(model.eval()(x), before)


def test_stochastic_depth_bad_input() -> None:
    with pytest.raises(ValueError, match=r"Received: drop_path_rate=1\.5"):
        attach_stochastic_depth(blockzoo.create_model("resnet20"), 1.5)
    with pytest.raises(ValueError, match="Received: schedule='cosine'"):
        attach_stochastic_depth(blockzoo.create_model("resnet20"), 0.1, schedule="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"no residual block.*refused: <?BasicBlock.*shortcut changes the shape"):
        attach_stochastic_depth(blockzoo.BasicBlock(4, 8), 0.1)
    with pytest.raises(ValueError, match="Sequential has no residual block"):
        attach_stochastic_depth(nn.Sequential(nn.Linear(2, 2)), 0.1)


def test_grad_clip_and_noise() -> None:
    torch.manual_seed(0)
    model = nn.Linear(16, 4)
    clip = attach_grad_clip(model, max_value=0.5, max_norm=1.0, roles="weight")
    (100 * model(torch.randn(8, 16))).sum().backward()
    assert model.weight.grad.abs().max().item() <= 0.5 + 1e-6
    assert torch.linalg.vector_norm(model.weight.grad).item() <= 1.0 + 1e-5
    assert model.bias.grad.abs().max().item() > 1  # not picked
    clip.remove()
    model.zero_grad()
    noise = attach_grad_noise(model, lambda step: 1.0 if step == 0 else 0.0, generator=torch.Generator().manual_seed(0))
    model(torch.zeros(1, 16)).sum().backward()  # the weight's true gradient is zero
    first = model.weight.grad.clone()
    assert first.std().item() == pytest.approx(1.0, rel=0.3)
    model.zero_grad()
    model(torch.zeros(1, 16)).sum().backward()
    assert model.weight.grad.std().item() == pytest.approx(1.0, rel=0.3)  # the same step, the same std...
    assert not torch.equal(model.weight.grad, first)  # ...and fresh noise
    model.zero_grad()
    step_regularizers(model)  # ...until a training step moves the schedule on
    model(torch.zeros(1, 16)).sum().backward()
    assert torch.count_nonzero(model.weight.grad) == 0  # the schedule turned it off at step 1
    noise.remove()
    with pytest.raises(ValueError, match="needs max_value, max_norm or both"):
        attach_grad_clip(model)
    with pytest.raises(ValueError, match=r"max_norm must be a finite number > 0 or None\. Received: max_norm=0"):
        attach_grad_clip(model, max_norm=0)
    with pytest.raises(ValueError, match=r"max_value must be a finite number > 0 or None\. Received: max_value=inf"):
        attach_grad_clip(model, max_value=float("inf"))
    with pytest.raises(ValueError, match="Received: std=-1"):
        attach_grad_noise(model, -1)


def test_works_on_torchvision_resnet18() -> None:
    tv = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    model = tv.resnet18(num_classes=10)
    twin = tv.resnet18(num_classes=10)
    twin.load_state_dict(model.state_dict())
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])
    attach_penalty(model, L2(1e-3), mode="grad")
    attach_penalty(twin, L2(1e-3), mode="loss")
    nn.functional.cross_entropy(model(x), y).backward()
    (nn.functional.cross_entropy(twin(x), y) + regularization_loss(twin)).backward()
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
    weights = blockzoo.select(model, roles="weight")
    assert len(weights) == 21  # 20 convs and the fc


def test_forward_compiles_with_penalties_attached() -> None:
    torch._dynamo.reset()
    model = blockzoo.create_model("resnet20")
    attach_penalty(model, L2(1e-4), mode="grad")
    attach_penalty(model, L1(1e-5), roles="bias")
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = torch.randn(2, 3, 32, 32)
    (compiled(x).sum() + regularization_loss(model)).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_activity_penalty_hooks_compile_too() -> None:
    # Forward hooks that append to a Python list are traced by dynamo (a side effect it replays).
    torch._dynamo.reset()
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    attach_activity_penalty(model, L1(0.1), include="1")
    explanation = torch._dynamo.explain(model)(torch.randn(3, 4))
    assert explanation.graph_break_count == 0
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    out = compiled(torch.ones(3, 4))
    expected = 0.1 * torch.relu(model[0](torch.ones(3, 4))).abs().sum() / 3  # not model[1]: its hook would fire
    torch.testing.assert_close(regularization_loss(model), expected)
    assert out.shape == (3, 2)


def single_process_grad_penalty() -> dict[str, torch.Tensor]:
    model = workers.make_model()
    attach_penalty(model, L2(0.05), mode="grad", roles=("weight", "bias"))
    x, y = workers.batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(4):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.distributed
def test_grad_mode_penalty_under_ddp_matches_one_process(tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    workers.spawn(workers.ddp_penalty_worker, str(out))
    got = torch.load(out, weights_only=True)
    expected = single_process_grad_penalty()
    for k, v in expected.items():
        torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6, msg=k)
