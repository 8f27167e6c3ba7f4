"""CUDA cases of init_weights and of the optimizers with a fused implementation; skipped without a GPU.

The other CUDA cases sit next to their CPU counterparts, parametrised over ``support.DEVICES``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo.init import param_generator
from blockzoo.optim import get_optimizer_spec, list_optimizers
from support import CUDA

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")]


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def test_init_weights_on_cuda_is_reproducible_and_draws_from_cuda_generators() -> None:
    model = blockzoo.create_model("resnet20", device="cuda")
    report = blockzoo.init_weights(model, seed=0)
    first = _weights(model)
    assert all(p.device.type == "cuda" for p in first.values())
    assert {row.status for row in report} == {"initialized"}
    blockzoo.init_weights(model, seed=0)
    assert all(torch.equal(p, first[k]) for k, p in model.named_parameters())
    blockzoo.init_weights(model, seed=1)
    assert not torch.equal(model.head.fc.weight, first["head.fc.weight"])

    # seed= draws each parameter from a CUDA generator seeded by its path, as param_generator documents.
    name = "features.stem.conv.weight"
    redrawn = blockzoo.init.initializer("kaiming_normal", mode="fan_in", nonlinearity="relu")
    assert str(redrawn) == report[name].initializer
    assert torch.equal(first[name], redrawn(torch.empty_like(first[name]), generator=param_generator(0, name, "cuda")))

    # generator= draws every parameter, in order, from the one (CUDA) generator.
    blockzoo.init_weights(model, generator=torch.Generator("cuda").manual_seed(5))
    again = _weights(model)
    blockzoo.init_weights(model, generator=torch.Generator("cuda").manual_seed(5))
    assert all(torch.equal(p, again[k]) for k, p in model.named_parameters())


FUSED = [name for name in list_optimizers() if get_optimizer_spec(name).has_fused]


def _problem(strided: bool) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """A least-squares fit; with ``strided`` the parameters are strided views (issue 11's failing case)."""
    g = torch.Generator("cuda").manual_seed(0)
    if strided:
        w = torch.randn(10, 5, 2, device="cuda", generator=g)[..., 0]
        b = torch.randn(5, 2, device="cuda", generator=g)[:, 0]
    else:
        w = torch.randn(10, 5, device="cuda", generator=g)
        b = torch.randn(5, device="cuda", generator=g)
    x = torch.randn(64, 10, device="cuda", generator=g)
    y = torch.randn(64, 5, device="cuda", generator=g)
    return [w, b], x, y


@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
@pytest.mark.parametrize("name", FUSED)
def test_create_optimizer_on_cuda_matches_torchs_for_loop(name: str, strided: bool) -> None:
    """Whatever implementation create_optimizer picks on CUDA follows torch's reference for-loop one."""
    spec = get_optimizer_spec(name)
    extra = {"momentum": 0.9} if "momentum" in spec.kwargs else {}
    tensors, x, y = _problem(strided)
    ours = [nn.Parameter(t) for t in tensors]  # the same strides as the views
    theirs = [nn.Parameter(t.clone()) for t in tensors]
    opt = blockzoo.create_optimizer(list(zip(["w", "b"], ours, strict=True)), name, lr=1e-2, **extra)
    if not strided:
        assert opt.defaults.get("fused") is True  # dense CUDA parameters: the fused implementation
    reference = spec.cls(theirs, lr=1e-2, weight_decay=0.0, foreach=False, **extra)  # create_optimizer's default decay
    for _ in range(50):
        for params, optimizer in ((ours, opt), (theirs, reference)):
            optimizer.zero_grad()
            ((x @ params[0] + params[1] - y) ** 2).mean().backward()
            optimizer.step()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
