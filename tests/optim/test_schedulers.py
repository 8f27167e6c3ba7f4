import itertools

import pytest
import torch
from torch import nn

from blockzoo import UnknownNameError, create_optimizer, create_scheduler, list_schedulers


def lrs(opt: torch.optim.Optimizer, sched: object, steps: int) -> list[list[float]]:
    out = []
    for _ in range(steps):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()  # type: ignore[attr-defined]
    return out


def make() -> torch.optim.Optimizer:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    return create_optimizer(model, "sgd", lr=1.0, lr_multipliers={"1.*": 0.1})


@pytest.mark.parametrize(
    ("name", "kwargs", "torch_cls", "torch_kwargs"),
    [
        ("step", {"step_size": 3, "gamma": 0.5}, torch.optim.lr_scheduler.StepLR, {"step_size": 3, "gamma": 0.5}),
        ("multistep", {"milestones": [2, 5]}, torch.optim.lr_scheduler.MultiStepLR, {"milestones": [2, 5]}),
        ("exponential", {"gamma": 0.9}, torch.optim.lr_scheduler.ExponentialLR, {"gamma": 0.9}),
        ("cosine", {"total_steps": 10}, torch.optim.lr_scheduler.CosineAnnealingLR, {"T_max": 10}),
        ("constant", {}, torch.optim.lr_scheduler.ConstantLR, {"factor": 1.0, "total_iters": 0}),
    ],
)
def test_named_schedules_equal_torch(name: str, kwargs: dict, torch_cls: type, torch_kwargs: dict) -> None:  # type: ignore[type-arg]
    a, b = make(), make()
    ours = lrs(a, create_scheduler(a, name, **kwargs), 10)
    ref = lrs(b, torch_cls(b, **torch_kwargs), 10)
    assert list(itertools.chain.from_iterable(ours)) == pytest.approx(list(itertools.chain.from_iterable(ref)))
    assert all(row[2] == pytest.approx(row[0] * 0.1) for row in ours)


def test_warmup_then_cosine() -> None:
    opt = make()
    rows = lrs(opt, create_scheduler(opt, "cosine", warmup_steps=4, total_steps=12), 12)
    first = [r[0] for r in rows]
    assert first[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(x > y for x, y in itertools.pairwise(first[4:]))
    assert all(r[2] == pytest.approx(r[0] * 0.1) for r in rows)


def test_onecycle_keeps_group_ratios_and_plateau_takes_a_metric() -> None:
    opt = make()
    rows = lrs(opt, create_scheduler(opt, "onecycle", total_steps=20), 20)
    assert all(r[2] == pytest.approx(r[0] * 0.1) for r in rows)
    opt = make()
    plateau = create_scheduler(opt, "plateau", patience=0, factor=0.5)
    for metric in (1.0, 1.0, 1.0):
        plateau.step(metric)  # type: ignore[arg-type]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)


def test_config_dict_form() -> None:
    opt = make()
    sched = create_scheduler(opt, **{"name": "step", "step_size": 1, "gamma": 0.5, "warmup_steps": 1})
    assert [r[0] for r in lrs(opt, sched, 3)] == pytest.approx([0.5, 1.0, 0.5])


def test_list_and_errors() -> None:
    assert list_schedulers() == ["constant", "cosine", "exponential", "multistep", "onecycle", "plateau", "step"]
    opt = make()
    with pytest.raises(UnknownNameError, match=r"Unknown scheduler 'cosin'\. Did you mean 'cosine'\?"):
        create_scheduler(opt, "cosin")
    with pytest.raises(
        TypeError,
        match=r"the 'step' schedule \(StepLR\) does not take 'step'\. Did you mean 'step_size'\?.*Received: step=3",
    ):
        create_scheduler(opt, "step", step=3)
    with pytest.raises(TypeError, match=r"the 'cosine' schedule \(CosineAnnealingLR\) does not take 'T_max'"):
        create_scheduler(opt, "cosine", T_max=3, total_steps=5)
    with pytest.raises(ValueError, match=r"the 'cosine' schedule needs total_steps.*Received: total_steps=None"):
        create_scheduler(opt, "cosine")
    with pytest.raises(ValueError, match=r"the 'plateau' schedule takes no warmup_steps: it reacts to a metric"):
        create_scheduler(opt, "plateau", warmup_steps=2)
    with pytest.raises(
        ValueError, match=r"total_steps must be an int greater than warmup_steps \(5\)\. Received: total_steps=5"
    ):
        create_scheduler(opt, "cosine", warmup_steps=5, total_steps=5)
    with pytest.raises(ValueError, match=r"warmup_steps must be a non-negative int\. Received: warmup_steps=-1"):
        create_scheduler(opt, "step", warmup_steps=-1, step_size=1)


@pytest.mark.parametrize(
    ("name", "kwargs", "needed"),
    [
        ("exponential", {}, "gamma"),
        ("step", {"gamma": 0.5}, "step_size"),
        ("multistep", {}, "milestones"),
    ],
)
def test_a_keyword_the_schedule_needs_is_asked_for_by_name(name: str, kwargs: dict, needed: str) -> None:  # type: ignore[type-arg]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=rf"the '{name}' schedule \(\w+LR\) needs {needed}, e\.g\. .*Received: "):
        create_scheduler(opt, name, **kwargs)
    assert opt.param_groups[0]["lr"] == 1.0  # nothing was built or changed
