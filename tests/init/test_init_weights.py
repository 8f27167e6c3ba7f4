from __future__ import annotations

import functools
import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import init_report, init_weights
from blockzoo.init import InitRule, activation_initializer, activations_after, initializer


def test_activation_table_picks_family_and_gain() -> None:
    cases = [
        (nn.ReLU(), "kaiming_normal", {"mode": "fan_in", "nonlinearity": "relu"}),
        (nn.ELU(), "kaiming_normal", {"mode": "fan_in", "nonlinearity": "relu"}),
        (nn.GELU(), "variance_scaling", {"scale": 2.3517, "mode": "fan_in", "distribution": "untruncated_normal"}),
        (nn.LeakyReLU(0.3), "kaiming_normal", {"a": 0.3, "mode": "fan_in", "nonlinearity": "leaky_relu"}),
        (
            nn.PReLU(init=0.1),
            "kaiming_normal",
            {"a": pytest.approx(0.1), "mode": "fan_in", "nonlinearity": "leaky_relu"},
        ),
        (nn.SELU(), "lecun_normal", {}),
        (nn.Tanh(), "xavier_uniform", {"gain": 5 / 3}),
        (nn.Sigmoid(), "xavier_uniform", {}),
        (None, "xavier_uniform", {}),
    ]
    for act, name, kwargs in cases:
        init = activation_initializer(act)
        assert (init.name, dict(init.kwargs)) == (name, kwargs), act
    table = dict(blockzoo.init.activation_table())
    assert table["SELU"] == "lecun_normal"
    assert "a=s" in table["LeakyReLU(negative_slope=s)"]


def test_blocks_start_from_the_activation_aware_defaults() -> None:
    torch.manual_seed(0)
    block = blockzoo.ConvNormAct(64, 256, 3, act_layer="selu")
    fan_in = 64 * 9
    # lecun normal: std 1 / sqrt(fan_in)
    assert block.conv.weight.std().item() == pytest.approx(1 / math.sqrt(fan_in), rel=0.02)
    relu = blockzoo.ConvNormAct(64, 256, 3)
    assert relu.conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
    head = blockzoo.ClassifierHead(512, 300)
    assert head.fc.weight.std().item() == pytest.approx(math.sqrt(2 / (512 + 300)), rel=0.02)
    assert torch.count_nonzero(head.fc.bias) == 0
    assert init_report(relu)["conv.weight"].initializer == "kaiming_normal(mode='fan_in', nonlinearity='relu')"
    se = blockzoo.SqueezeExcite(64, rd_channels=16)
    acts = activations_after(se)
    assert isinstance(acts[se.fc1], nn.ReLU)
    assert isinstance(acts[se.fc2], nn.Sigmoid)
    # reset_parameters re-draws the same way
    before = relu.conv.weight.clone()
    relu.reset_parameters()
    assert not torch.equal(before, relu.conv.weight)
    assert relu.conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)


def test_activations_are_found_past_norms_and_dropout() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.Dropout(),
        nn.LeakyReLU(0.2),
        nn.Conv2d(8, 8, 3),
        nn.Flatten(),
        nn.Linear(8, 2),
    )
    acts = activations_after(net)
    assert isinstance(acts[net[0]], nn.LeakyReLU)
    assert acts[net[4]] is None
    assert acts[net[6]] is None


def mlp() -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(32, 64),
            act1=nn.ReLU(),
            norm=nn.LayerNorm(64),
            fc2=nn.Linear(64, 64),
            act2=nn.Tanh(),
            head=nn.Linear(64, 10),
        )
    )


def test_defaults_by_role() -> None:
    model = mlp()
    nn.init.constant_(model.norm.weight, 3.0)
    report = init_weights(model)
    assert torch.count_nonzero(model.fc1.bias) == 0
    assert torch.all(model.norm.weight == 1)
    assert torch.all(model.norm.bias == 0)
    assert report["fc1.weight"].initializer.startswith("kaiming_normal")
    assert report["fc2.weight"].initializer == "xavier_uniform(gain=1.6666666666666667)"
    assert report["head.weight"].initializer == "xavier_uniform"
    assert all(row.status == "initialized" for row in report)


def test_scheme_rules_and_last_rule_wins() -> None:
    model = mlp()
    report = init_weights(
        model,
        "orthogonal",
        rules=[
            ("bias", initializer("constant", val=0.5)),
            ("head.*", initializer("normal", std=0.01)),
            InitRule("ones", include="head.bias"),
            {"init": functools.partial(nn.init.constant_, val=2.0), "include": "fc2.bias"},
        ],
        seed=0,
    )
    gram = model.fc1.weight.T @ model.fc1.weight  # 64 x 32: orthonormal columns
    torch.testing.assert_close(gram, torch.eye(32), atol=1e-5, rtol=0)
    assert torch.all(model.fc1.bias == 0.5)
    assert torch.all(model.head.bias == 1)
    assert torch.all(model.fc2.bias == 2)
    assert model.head.weight.std().item() == pytest.approx(0.01, rel=0.15)
    assert report["fc2.bias"].initializer == "constant_(val=2.0)"
    assert report["head.weight"].expected_std == 0.01


def test_seeding_is_keyed_by_name_so_inserting_a_layer_changes_nothing_else() -> None:
    def build(extra: bool) -> nn.Sequential:
        layers = OrderedDict(stem=nn.Conv2d(3, 8, 3), act=nn.ReLU())
        if extra:
            layers["extra"] = nn.Conv2d(8, 8, 3)
            layers["extra_act"] = nn.ReLU()
        layers.update(body=nn.Conv2d(8, 16, 3), flat=nn.Flatten(), head=nn.Linear(16, 4))
        return nn.Sequential(layers)

    a, b = build(False), build(True)
    torch.manual_seed(1)
    init_weights(a, seed=7)
    torch.manual_seed(2)  # the global generator plays no part
    init_weights(b, seed=7)
    for name, p in a.named_parameters():
        assert torch.equal(p, b.get_parameter(name)), name
    c = build(False)
    init_weights(c, seed=8)
    assert not torch.equal(a.stem.weight, c.stem.weight)


def test_one_generator_reproduces_a_whole_init() -> None:
    a, b = mlp(), mlp()
    init_weights(a, generator=torch.Generator().manual_seed(5))
    init_weights(b, generator=torch.Generator().manual_seed(5))
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_frozen_parameters_stay_untouched_unless_asked() -> None:
    model = mlp()
    model.fc1.requires_grad_(False)
    frozen = model.fc1.weight.clone()
    report = init_weights(model, seed=0)
    assert torch.equal(model.fc1.weight, frozen)
    assert "fc1.weight" not in {row.name for row in report}
    init_weights(model, seed=0, include_frozen=True)
    assert not torch.equal(model.fc1.weight, frozen)


def test_bad_arguments_raise_and_change_nothing() -> None:
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(blockzoo.UnknownNameError, match="kaiming_normal"):
        init_weights(model, "kaiming_norml")
    with pytest.raises(
        ValueError,
        match=r"^rules\[0\]\.include glob 'decoder\.\*' matches no parameter of Sequential\. The names look like "
        r"'fc1\.weight', 'fc1\.bias', 'norm\.weight'\. Received: rules\[0\]\.include='decoder\.\*'$",
    ):
        init_weights(model, rules=[("decoder.*", "zeros")])
    with pytest.raises(
        ValueError,
        match=r"^rules\[1\]\.exclude glob 'head\.wieght' matches no parameter of Sequential\. Did you mean "
        r"'head\.weight', 'head\.bias'\? Received: rules\[1\]\.exclude='head\.wieght'$",
    ):
        init_weights(model, rules=[("head.*", "zeros"), InitRule("ones", include="head.*", exclude="head.wieght")])
    with pytest.raises(ValueError, match=r"^rules\[0\] picks no parameter of Sequential \(roles='embedding'"):
        init_weights(model, rules=[InitRule("zeros", roles="embedding")])
    with pytest.raises(blockzoo.UnknownNameError, match="bias"):
        init_weights(model, rules=[InitRule("zeros", roles="biases")])
    with pytest.raises(ValueError, match=r"kaiming_normal cannot initialise fc1\.bias \(shape \[64\]\)"):
        init_weights(model, rules=[("bias", "kaiming_normal")])
    with pytest.raises(ValueError, match="seed or generator, not both"):
        init_weights(model, seed=0, generator=torch.Generator())
    with pytest.raises(TypeError, match="Received: seed='0'"):
        init_weights(model, seed="0")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Received: scheme=3"):
        init_weights(model, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Received: rules\[0\]=\('head\.\*',\)"):
        init_weights(model, rules=[("head.*",)])  # type: ignore[list-item]

    calls = []

    def boom(t: torch.Tensor) -> None:
        calls.append(t.shape)
        if len(calls) == 3:
            raise RuntimeError("boom")
        t.fill_(9.0)

    with pytest.raises(RuntimeError, match="boom"):
        init_weights(model, boom)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert init_report(model)["fc1.weight"].status == "torch default"  # no record of the rolled-back init


def test_works_on_torchvision_resnet18() -> None:
    tv = pytest.importorskip("torchvision.models")
    model = tv.resnet18()
    report = init_weights(model, seed=0)
    assert report["conv1.weight"].initializer == "kaiming_normal(mode='fan_in', nonlinearity='relu')"
    assert report["layer1.0.conv2.weight"].initializer == "xavier_uniform"  # the add comes before its ReLU
    assert init_report(model).at_torch_default == []
    blockzoo.zero_init_last_(model)
    assert torch.count_nonzero(model.layer1[0].bn2.weight) == 0
    assert torch.count_nonzero(model.layer4[1].bn2.weight) == 0
