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
