import copy
import io

import pytest
import torch
from torch import nn

from blockzoo import check_param_groups, create_optimizer, explain_param_groups


def test_report_rows_match_the_groups() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    opt = create_optimizer(model, "adamw", lr=1e-3, weight_decay=0.05, lr_multipliers={"3.*": 10})
    report = explain_param_groups(opt, per_param=True)
    assert report.optimizer == "AdamW"
    assert report.implementation.startswith("fused (chosen")
    rows = [(g["tensors"], g["elements"], g["weight_decay"], g["rule"]) for g in report.groups]
    assert rows == [
        (1, 108, 0.05, "decay"),
        (3, 12, 0.0, "no decay: role bias, role norm"),
        (1, 8, 0.05, "decay, lr x10 (3.*)"),
        (1, 2, 0.0, "no decay: role bias, lr x10 (3.*)"),
    ]
    text = str(report).splitlines()
    assert text[0].startswith("AdamW, fused")
    assert text[2].split() == ["0", "0.001", "0.05", "1", "108", "decay"]
    assert "         0.weight" in text


def test_check_flags_shared_frozen_and_unread_keys() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[1].weight.requires_grad_(False)
    opt = torch.optim.SGD(
        [{"params": [model[0].weight, model[1].weight], "layer_scale": 0.5}, {"params": [model[1].bias]}], lr=0.1
    )
    opt.param_groups[1]["params"].append(model[0].weight)  # torch refuses this at construction, not later
    problems = check_param_groups(opt, model)
    assert problems == [
        "group 0 has key 'layer_scale' that neither SGD nor any torch.optim.lr_scheduler reads",
        "frozen: 1.weight does not require grad but is in group 0",
        "shared: 0.weight appears twice (also as 0.weight)",
        "unmatched: 0.bias is trainable but in no group",
    ]


def test_scheduler_keys_are_not_flagged() -> None:
    model = nn.Linear(2, 2)
    opt = create_optimizer(model, "sgd", lr=0.1, momentum=0.9)
    torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    assert check_param_groups(opt, model) == []


# ----------------------------------------------------------------------------- the record travels with the optimizer

CASES = {
    "adamw, fused, multipliers": (lambda m: m, "adamw", {"lr_multipliers": {"3.*": 10}}),
    "sgd, foreach, layer decay": (lambda m: m, "sgd", {"momentum": 0.9, "foreach": True, "layer_decay": 0.5}),
    "rmsprop, pairs": (lambda m: list(m.named_parameters()), "rmsprop", {}),
    "lbfgs, merged": (lambda m: m, "lbfgs", {"weight_decay": 0.0}),
}


def build(case: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    source, name, kwargs = CASES[case]
    kwargs = {"weight_decay": 0.05, **kwargs}
    return model, create_optimizer(source(model), name, lr=0.1, **kwargs)


def train_step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model(torch.ones(2, 3, 3, 3)).square().sum()
        loss.backward()
        return loss

    opt.step(closure)


@pytest.mark.parametrize("case", sorted(CASES))
def test_explanation_survives_deepcopy_and_state_dict_round_trips(case: str) -> None:
    model, opt = build(case)
    train_step(model, opt)
    original = explain_param_groups(opt, per_param=True)
    assert original.implementation != "torch's default implementation"
    assert all(g["rule"] != "(not built by blockzoo)" for g in original.groups)
    for group in opt.param_groups:
        assert isinstance(group["rule"], str)
        assert isinstance(group["implementation"], str)

    assert explain_param_groups(copy.deepcopy(opt), per_param=True) == original

    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    # a plain torch optimizer over the same parameters, knowing nothing of blockzoo, takes the record from the state
    plain = type(opt)([{"params": list(g["params"])} for g in opt.param_groups], lr=1.0)  # type: ignore[call-arg]
    assert explain_param_groups(plain).groups[0]["rule"] == "(not built by blockzoo)"
    plain.load_state_dict(state)
    assert explain_param_groups(plain, per_param=True) == original
    assert str(explain_param_groups(plain, per_param=True)) == str(original)
    assert check_param_groups(plain, model) == []
    _, rebuilt = build(case)
    rebuilt.load_state_dict(state)
    assert explain_param_groups(rebuilt, per_param=True) == original


def test_the_record_is_the_group_keys_and_nothing_else() -> None:
    _, opt = build("adamw, fused, multipliers")
    for group in opt.param_groups:
        del group["rule"], group["implementation"]
    report = explain_param_groups(opt)
    assert report.implementation == "torch's default implementation"
    assert {g["rule"] for g in report.groups} == {"(not built by blockzoo)"}
