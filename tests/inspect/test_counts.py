"""count_params and flops, against counts worked out by hand and FlopCounterMode on a real forward pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import blockzoo
from blockzoo import count_params, flops


def test_count_params_is_the_sum_of_layer_sizes() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    by_hand = (8 * 3 * 3 * 3 + 8) + (8 + 8) + (8 * 6 * 6 * 10 + 10)
    assert count_params(model) == by_hand
    model[0].requires_grad_(False)
    assert count_params(model, trainable_only=True) == by_hand - (8 * 3 * 3 * 3 + 8)


def test_resnet20_has_the_papers_parameter_count() -> None:
    # He et al. 2016, section 4.2: 0.27M parameters for the 20-layer CIFAR ResNet (option A shortcuts).
    assert count_params(blockzoo.create_model("resnet20")) == 269_722


def test_tied_and_shared_parameters_are_counted_once() -> None:
    emb = nn.Embedding(100, 16)
    out = nn.Linear(16, 100)
    out.weight = emb.weight  # tied, as in a language model
    shared = nn.Linear(16, 16)
    model = nn.ModuleDict({"emb": emb, "a": shared, "b": shared, "out": out})
    assert count_params(model) == 100 * 16 + (16 * 16 + 16) + 100


def test_count_params_refuses_lazy_layers_and_non_modules() -> None:
    with pytest.raises(
        ValueError, match=r"0\.weight belongs to a lazy layer that has not run yet.*Received: model=Sequential"
    ):
        count_params(nn.Sequential(nn.LazyLinear(3)))
    with pytest.raises(TypeError, match=r"count_params: model must be an nn.Module\. Received: model=int"):
        count_params(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"trainable_only must be True or False\. Received: trainable_only=1"):
        count_params(nn.Linear(2, 2), trainable_only=1)  # type: ignore[arg-type]


def test_flops_of_a_conv_and_a_linear_by_hand() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    conv = 4 * 8 * 8 * 8 * (3 * 3 * 3)  # batch x out channels x H x W x (in channels x kernel)
    linear = 4 * 512 * 10
    assert flops(model, (4, 3, 8, 8)) == 2 * (conv + linear)
    per_module = flops(model, (4, 3, 8, 8), by_module=True)
    assert per_module == {"": 2 * (conv + linear), "0": 2 * conv, "1": 0, "2": 0, "3": 2 * linear}


def test_flops_equal_flop_counter_mode_on_a_real_pass_and_leave_the_model_alone() -> None:
    model = blockzoo.create_model("resnet20")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(2, 3, 32, 32))
    model.train()
    assert flops(model, (2, 3, 32, 32)) == counter.get_total_flops()
    assert model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_flops_of_a_model_with_several_inputs() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 3), nn.Linear(6, 3)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(y)

    assert flops(Two(), [(2, 4), (2, 6)]) == 2 * (2 * 4 * 3 + 2 * 6 * 3)


def test_flops_argument_errors() -> None:
    with pytest.raises(
        TypeError, match=r"input_size must be the shape of one input batch.*Received: input_size=\(1, -3\)"
    ):
        flops(nn.Linear(2, 2), (1, -3))
    with pytest.raises(TypeError, match=r"input_size must be .*Received: input_size='1x2'"):
        flops(nn.Linear(2, 2), "1x2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"flops needs input_size.*Received: input_size=None"):
        flops(nn.Linear(2, 2), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"by_module must be a bool\. Received: by_module='yes'"):
        flops(nn.Linear(2, 2), (1, 2), by_module="yes")  # type: ignore[call-overload]
