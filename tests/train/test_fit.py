"""fit end to end: training, resume, faults, checkpoints, options and their errors."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import blockzoo
from blockzoo.data import digits
from blockzoo.errors import CheckpointError, InputError, NonFiniteLossError, UnknownNameError
from blockzoo.regularization import L2, MaxNorm, attach_constraint, attach_penalty, bound_optimizer, list_regularizers
from blockzoo.train import Callback, History, StepOutput, Trainer, fit

TIMING = {"seconds", "samples_per_second"}


@pytest.fixture(scope="module")
def small() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    split = digits(images=True)
    return split.x_train[:320], split.y_train[:320], split.x_val[:100], split.y_val[:100]


def cnn(seed: int = 0, **options: object) -> nn.Module:
    torch.manual_seed(seed)
    return blockzoo.create_model("simple_cnn", in_channels=1, img_size=8, widths=(8, 16), **options)


def rows(history: History) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history.rows]


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class InterruptAt(Callback):
    """Sends this process a real SIGINT after batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_batch_end(self, trainer: Trainer, batch: int, output: StepOutput) -> None:
        if (trainer.epoch, batch) == self.at:
            signal.raise_signal(signal.SIGINT)


# --------------------------------------------------------------------------- training


def test_fit_learns_digits_and_fills_the_history(small) -> None:
    x, y, xv, yv = small
    history = fit(cnn(), (x, y), val_data=(xv, yv), epochs=3, lr=2e-2, progress=False, seed=0)
    assert len(history) == 3
    assert history.keys() == [
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "seconds",
        "samples_per_second",
    ]
    assert history["epoch"] == [1, 2, 3]
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history.best()["val_accuracy"] > 0.7
    assert all(r["samples_per_second"] > 0 for r in history.rows)


def test_history_figures_match_an_independent_evaluation(small) -> None:
    x, y, xv, yv = small
    model = cnn()
    history = fit(model, (x, y), val_data=(xv, yv), epochs=1, progress=False, seed=0)
    model.eval()
    with torch.no_grad():
        out = model(xv)
    assert history["val_loss"][0] == pytest.approx(F.cross_entropy(out, yv).item(), rel=1e-5)
    assert history["val_accuracy"][0] == pytest.approx((out.argmax(1) == yv).float().mean().item())


def test_a_split_gives_its_validation_part(small) -> None:
    history = fit(cnn(), digits(images=True), epochs=1, progress=False, seed=0)
    assert "val_accuracy" in history


def test_a_seeded_cpu_run_repeats_bit_for_bit(small) -> None:
    x, y, xv, yv = small
    a, b = cnn(drop_rate=0.2), cnn(drop_rate=0.2)
    ha = fit(a, (x, y), val_data=(xv, yv), epochs=2, progress=False, seed=3)
    hb = fit(b, (x, y), val_data=(xv, yv), epochs=2, progress=False, seed=3)
    assert same_weights(a, b)
    assert rows(ha) == rows(hb)


def test_tensors_and_a_dataset_give_the_same_run(small) -> None:
    x, y, _, _ = small

    class Plain(Dataset):  # not a TensorDataset: goes through a DataLoader
        def __len__(self) -> int:
            return len(x)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return x[i], y[i]

    a, b = cnn(), cnn()
    fit(a, (x, y), epochs=2, progress=False, seed=1)
    fit(b, Plain(), epochs=2, progress=False, seed=1)
    assert same_weights(a, b)


def test_accumulating_two_half_batches_equals_one_batch(small) -> None:
    x, y, _, _ = small
    torch.manual_seed(0)
    a = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    b = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    b.load_state_dict(a.state_dict())
    fit(a, (x, y), epochs=2, batch_size=64, optimizer="sgd", lr=0.1, progress=False, seed=0)
    fit(b, (x, y), epochs=2, batch_size=32, accumulate=2, optimizer="sgd", lr=0.1, progress=False, seed=0)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_amp_none_trains_in_float32(small) -> None:
    x, y, _, _ = small
    seen: list[torch.dtype] = []

    def step(trainer: Trainer, batch: object) -> StepOutput:
        out = trainer.train_step(batch)
        assert out.output is not None
        seen.append(out.output.dtype)
        return out

    fit(cnn(), (x, y), epochs=1, progress=False, train_step=step)
    assert set(seen) == {torch.float32}


def test_bf16_autocast_runs_on_cpu(small) -> None:
    x, y, _, _ = small
    seen: list[torch.dtype] = []

    def step(trainer: Trainer, batch: object) -> StepOutput:
        out = trainer.train_step(batch)
        assert out.output is not None
        seen.append(out.output.dtype)
        return out

    history = fit(cnn(), (x, y), epochs=1, amp="bf16", progress=False, train_step=step)
    assert set(seen) == {torch.bfloat16}
    assert math.isfinite(history["train_loss"][0])


def test_a_step_callable_that_returns_only_a_loss(small) -> None:
    x, y, _, _ = small

    def step(trainer: Trainer, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, target = batch
        return F.cross_entropy(trainer.model(inputs), target)

    history = fit(cnn(), (x, y), epochs=1, progress=False, train_step=step)
    assert "train_loss" in history
    assert "train_accuracy" not in history


def test_several_inputs_in_a_tuple(small) -> None:
    x, y, _, _ = small

    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(64, 10), nn.Linear(64, 10)

        def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return self.a(u.flatten(1)) + self.b(v.flatten(1))

    class Pairs(Dataset):
        def __len__(self) -> int:
            return len(x)

        def __getitem__(self, i: int) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
            return (x[i], x[i].flip(-1)), y[i]

    history = fit(Two(), Pairs(), epochs=2, lr=1e-2, progress=False, seed=0)
    assert history["train_loss"][1] < history["train_loss"][0]


def test_freeze_keeps_the_matched_parameters(small) -> None:
    x, y, _, _ = small
    model = cnn()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    fit(model, (x, y), epochs=1, freeze="features.*", progress=False)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) == name.startswith("features."), name


def test_a_step_schedule_steps_per_epoch_and_cosine_per_step(small) -> None:
    x, y, _, _ = small
    history = fit(
        cnn(), (x, y), epochs=3, lr=0.1, scheduler={"name": "step", "step_size": 1, "gamma": 0.5}, progress=False
    )
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    trainer = Trainer(cnn(), (x, y), epochs=2, lr=0.1, scheduler="cosine", progress=False)
    trainer.fit()
    assert trainer.schedule is not None
    assert trainer.schedule.scheduler.last_epoch == trainer.global_step == 2 * 5
    assert trainer.optimizer is not None
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_plateau_reads_the_monitored_metric(small) -> None:
    x, y, xv, yv = small
    trainer = Trainer(
        cnn(), (x, y), val_data=(xv, yv), epochs=2, scheduler={"name": "plateau", "patience": 0}, progress=False
    )
    trainer.fit()
    assert trainer.schedule is not None
    scheduler = trainer.schedule.scheduler
    assert scheduler.mode == "max"  # val_accuracy is maximised
    assert scheduler.best == pytest.approx(max(trainer.history["val_accuracy"]))


def test_ema_is_validated_and_saved(small, tmp_path: Path) -> None:
    x, y, xv, yv = small
    model = cnn()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[dict[str, torch.Tensor]] = []

    class Weights(Callback):  # the weights after each optimizer step, to average by hand
        def on_batch_end(self, trainer: Trainer, batch: int, output: StepOutput) -> None:
            seen.append({k: v.clone() for k, v in trainer.module.state_dict().items()})

    history = fit(
        model, (x, y), val_data=(xv, yv), epochs=2, ema=0.9, progress=False, out_dir=tmp_path, callbacks=[Weights()]
    )
    assert {"ema_val_loss", "ema_val_accuracy"} <= set(history.keys())
    ema = blockzoo.load_weights(cnn(), tmp_path / "ema.safetensors")
    # AveragedModel's EMA: the first update copies the weights, each later one moves 10% of the way
    expected = {k: v.double() for k, v in start.items()}
    for i, step in enumerate(seen):
        for k, v in step.items():
            if v.is_floating_point():
                expected[k] = v.double() if i == 0 else 0.9 * expected[k] + 0.1 * v.double()
    for k, v in ema.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v.double(), expected[k], rtol=1e-4, atol=1e-6)
    ema.eval()
    with torch.no_grad():
        assert history["ema_val_loss"][-1] == pytest.approx(F.cross_entropy(ema(xv), yv).item(), rel=1e-5)


def test_restore_best_puts_the_best_weights_back(small, tmp_path: Path) -> None:
    x, y, xv, yv = small
    model = cnn()
    history = fit(
        model,
        (x, y),
        val_data=(xv, yv),
        epochs=4,
        lr=0.05,
        monitor="val_loss",
        restore_best=True,
        progress=False,
        out_dir=tmp_path,
    )
    best = blockzoo.load_weights(cnn(), tmp_path / "best.safetensors")
    assert same_weights(model, best)
    model.eval()
    with torch.no_grad():
        loss = F.cross_entropy(model(xv), yv).item()
    assert loss == pytest.approx(min(history["val_loss"]), rel=1e-5)


# ---------------------------------------------------------------- regularization


def test_loss_mode_penalties_are_trained_and_the_binding_goes(small) -> None:
    x, y, _, _ = small
    plain, penalised = cnn(), cnn()
    steps: list[int] = []
    attach_penalty(penalised, L2(lambda step: steps.append(step) or 0.5))
    fit(plain, (x, y), epochs=2, progress=False, seed=0)
    fit(penalised, (x, y), epochs=2, progress=False, seed=0)
    norm = lambda m: sum(p.pow(2).sum() for n, p in m.named_parameters() if n.endswith("conv.weight"))  # noqa: E731
    assert norm(penalised) < norm(plain)
    assert max(steps) == 2 * 5 - 1  # the schedule followed fit's 10 optimizer steps
    assert bound_optimizer(penalised) is None
    assert [r.kind for r in list_regularizers(penalised)] == ["penalty"]


def test_projection_constraints_follow_the_optimizer_given(small) -> None:
    x, y, _, _ = small
    model = cnn()
    optimizer = blockzoo.create_optimizer(model, lr=0.05)
    attach_constraint(model, MaxNorm(0.5), roles="weight", optimizer=optimizer)
    fit(model, (x, y), epochs=1, optimizer=optimizer, progress=False)
    head = model.head.fc.weight
    assert float(head.detach().norm(dim=1).max()) <= 0.5 + 1e-5


def test_another_bound_optimizer_is_refused(small) -> None:
    x, y, _, _ = small
    model = cnn()
    optimizer = blockzoo.create_optimizer(model, lr=0.05)
    attach_constraint(model, MaxNorm(0.5), roles="weight", optimizer=optimizer)
    with pytest.raises(ValueError, match="bound to another optimizer"):
        fit(model, (x, y), epochs=1, progress=False)


# ------------------------------------------------------------------ checkpoints


def test_out_dir_holds_the_run(small, tmp_path: Path) -> None:
    x, y, xv, yv = small
    history = fit(cnn(), (x, y), val_data=(xv, yv), epochs=2, progress=False, out_dir=tmp_path, config={"data": "x"})
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"config.json", "history.json", "last.safetensors", "best.safetensors", "state.pt", "curves.png"}
    assert rows(History.from_json(tmp_path / "history.json")) == rows(history)
    import json

    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["name"] == "simple_cnn"
    assert config["model"]["options"] == {"in_channels": 1, "img_size": 8, "widths": [8, 16]}
    assert config["fit"]["epochs"] == 2
    assert config["run"] == {"data": "x"}
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["position"] == {"epoch": 2, "batch": 0, "global_step": 10, "elapsed": 0.0, "last_lr": 0.001}


@pytest.mark.parametrize("source", ["tensors", "dataset", "loader"])
def test_resume_after_ctrl_c_mid_epoch_ends_as_an_uninterrupted_run(small, tmp_path: Path, source: str) -> None:
    x, y, xv, yv = small
    data: object = {
        "tensors": (x, y),
        "dataset": _Items(x, y),
        "loader": DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True),
    }[source]
    options = {
        "val_data": (xv, yv),
        "epochs": 3,
        "batch_size": 32,
        "accumulate": 2,
        "scheduler": "cosine",
        "ema": 0.9,
        "progress": False,
        "seed": 5,
    }
    torch.manual_seed(11)  # the user's loader draws its order from the global RNG
    reference = cnn(drop_rate=0.3)
    expected = fit(reference, data, **options)

    torch.manual_seed(11)
    interrupted = cnn(drop_rate=0.3)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, data, out_dir=tmp_path, callbacks=[InterruptAt(2, 4)], **options)
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert (state["position"]["epoch"], state["position"]["batch"]) == (1, 6)  # after the accumulation group

    resumed = cnn(seed=99, drop_rate=0.3)  # other weights: resume loads the last ones
    torch.manual_seed(1234)  # and another global RNG state: resume restores it
    history = fit(resumed, data, resume=tmp_path, **options)
    assert same_weights(resumed, reference)
    assert rows(history) == rows(expected)


class _Items(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def test_ctrl_c_without_out_dir_stops_and_says_nothing_was_saved(small, capsys) -> None:
    x, y, _, _ = small
    with pytest.raises(KeyboardInterrupt):
        fit(cnn(), (x, y), epochs=2, progress=False, callbacks=[InterruptAt(1, 1)])
    assert "interrupted at epoch 1, batch 2 of 5: nothing was saved" in capsys.readouterr().err


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(small, tmp_path: Path) -> None:
    x, y, _, _ = small
    calls = {"n": 0}

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        value = F.cross_entropy(output, target)
        return value * math.nan if calls["n"] == 5 + 3 else value  # epoch 2, batch 3

    kept: dict[str, torch.Tensor] = {}

    class Keep(Callback):
        def on_epoch_end(self, trainer: Trainer, epoch: int, logs: object) -> None:
            kept.update({k: v.clone() for k, v in trainer.module.state_dict().items()})

    with pytest.raises(NonFiniteLossError, match=r"the loss became nan at epoch 2, batch 3 of 5") as info:
        fit(cnn(), (x, y), epochs=3, loss=loss, progress=False, out_dir=tmp_path, callbacks=[Keep()])
    assert "last good checkpoint is kept in" in str(info.value)
    assert len(info.value.history) == 1
    last = blockzoo.load_weights(cnn(seed=7), tmp_path / "last.safetensors")
    assert all(torch.equal(v, kept[k]) for k, v in last.state_dict().items())


def test_weights_of_a_compiled_run_load_into_a_fresh_model(small, tmp_path: Path) -> None:
    x, y, _, _ = small
    model = cnn()
    fit(model, (x[:64], y[:64]), epochs=1, compile=True, progress=False, out_dir=tmp_path)
    fresh = blockzoo.load_weights(cnn(seed=3), tmp_path / "last.safetensors")
    assert same_weights(fresh, model)


@pytest.mark.distributed
def test_weights_of_a_ddp_model_load_into_a_fresh_model(small, tmp_path: Path) -> None:
    import torch.distributed as dist

    x, y, _, _ = small
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = cnn()
        wrapped = nn.parallel.DistributedDataParallel(model)
        fit(wrapped, (x[:64], y[:64]), epochs=1, progress=False, out_dir=tmp_path / "run")
    finally:
        dist.destroy_process_group()
    fresh = blockzoo.load_weights(cnn(seed=3), tmp_path / "run" / "last.safetensors")
    assert same_weights(fresh, model)


# ------------------------------------------------------------------- bad input


def test_a_model_that_does_not_fit_the_data_fails_before_the_first_step(small) -> None:
    x, y, _, _ = small
    wrong_channels = blockzoo.create_model("simple_cnn", img_size=8)
    before = {k: v.clone() for k, v in wrong_channels.state_dict().items()}
    with pytest.raises(InputError, match=r"simple_cnn takes 3 input channels, and the data have 1: .*in_channels=1"):
        fit(wrong_channels, (x, y), epochs=1, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in wrong_channels.state_dict().items())
    with pytest.raises(InputError, match=r"has 5 outputs, and the labels need 10 classes: .*num_classes=10"):
        fit(cnn(num_classes=5), (x, y), epochs=1, progress=False)
    with pytest.raises(InputError, match=r"tutorial_cnn cannot take inputs of shape \(1, 8, 8\)"):
        fit(blockzoo.create_model("tutorial_cnn", in_channels=1), (x, y), epochs=1, progress=False)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"epochs": 0}, ValueError, r"epochs must be .*Received: epochs=0"),
        ({"batch_size": 0}, ValueError, r"batch_size must be .*Received: batch_size=0"),
        ({"lr": -1.0}, ValueError, r"lr must be .*Received: lr=-1.0"),
        ({"lr": math.nan}, ValueError, r"lr must be .*Received: lr=nan"),
        ({"amp": "fp8"}, ValueError, r"amp must be one of 'bf16', 'fp16'. Received: amp='fp8'"),
        ({"monitor": "val_acc"}, ValueError, r"monitor must be a column .*'val_accuracy'.*Received: monitor='val_acc'"),
        ({"optimizer": 3}, TypeError, r"optimizer must be a name .*Received: optimizer=int"),
        ({"optimizer": "adamm"}, UnknownNameError, r"Unknown optimizer 'adamm'. Did you mean 'adam'"),
        ({"scheduler": "cosin"}, UnknownNameError, r"cosine"),
        ({"scheduler": {"step_size": 1}}, ValueError, r"a scheduler dict needs a 'name'"),
        ({"loss": "mse"}, UnknownNameError, r"mse"),
        ({"loss": 3}, TypeError, r"loss must be 'cross_entropy', 'nll' or a callable"),
        (
            {"metrics": ["acc"]},
            UnknownNameError,
            r"Unknown metric 'acc'. blockzoo.train.list_metrics\(\) lists them all",
        ),
        ({"label_smoothing": 1.0}, ValueError, r"label_smoothing must be .*Received: label_smoothing=1.0"),
        ({"accumulate": 0}, ValueError, r"accumulate must be .*Received: accumulate=0"),
        ({"grad_clip": 0.0}, ValueError, r"grad_clip must be .*Received: grad_clip=0.0"),
        ({"ema": 1.5}, ValueError, r"ema must be .*Received: ema=1.5"),
        (
            {"device": "gpu0"},
            ValueError,
            r"device must be 'auto' or a torch device such as 'cpu', 'cuda', 'cuda:1' or 'mps'. Received: device='gpu0'",
        ),
        ({"mode": "biggest"}, ValueError, r"mode must be one of .*Received: mode='biggest'"),
        ({"progress": "maybe"}, ValueError, r"progress must be True, False, 'bar' or 'lines'"),
        ({"callbacks": [print]}, TypeError, r"callbacks must be Callback instances"),
        ({"freeze": "nothing.*"}, ValueError, r"freeze"),
        ({"scheduler_interval": "batch"}, ValueError, r"scheduler_interval must be one of"),
    ],
)
def test_bad_options_are_named(small, options: dict[str, object], error: type[Exception], match: str) -> None:
    x, y, xv, yv = small
    model = cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error, match=match):
        fit(model, (x, y), val_data=(xv, yv), **{"epochs": 1, "progress": False, **options})
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_bad_data_is_named(small) -> None:
    x, y, _, _ = small
    with pytest.raises(TypeError, match=r"train_data must be an \(inputs, targets\) pair .*Received: train_data=int"):
        fit(cnn(), 42, epochs=1)
    with pytest.raises(ValueError, match=r"train_data: the tensors must have one length"):
        fit(cnn(), (x, y[:10]), epochs=1)
    with pytest.raises(TypeError, match=r"val_data must be"):
        fit(cnn(), (x, y), val_data="val", epochs=1)


def test_an_optimizer_object_takes_no_lr(small) -> None:
    x, y, _, _ = small
    model = cnn()
    with pytest.raises(ValueError, match=r"lr and weight_decay are for the optimizer fit builds"):
        fit(model, (x, y), epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), lr=0.5)


def test_resume_refuses_other_options_and_missing_state(small, tmp_path: Path) -> None:
    x, y, _, _ = small
    fit(cnn(), (x, y), epochs=1, progress=False, out_dir=tmp_path / "run")
    with pytest.raises(
        ValueError, match=r"resume: the run in .* was started with other options.*batch_size=64 \(now 32\)"
    ):
        fit(cnn(), (x, y), epochs=1, batch_size=32, progress=False, resume=tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"resume: no training state at"):
        fit(cnn(), (x, y), epochs=1, progress=False, resume=tmp_path / "empty")
    with pytest.raises(CheckpointError, match=r"resume: the last weights in .* do not fit the model"):
        fit(
            blockzoo.create_model("simple_cnn", in_channels=1, img_size=8, widths=(8, 32)),
            (x, y),
            epochs=1,
            progress=False,
            resume=tmp_path / "run",
        )


def test_a_finished_run_resumes_to_nothing_more(small, tmp_path: Path) -> None:
    x, y, _, _ = small
    model = cnn()
    first = fit(model, (x, y), epochs=2, progress=False, seed=0, out_dir=tmp_path)
    again = fit(cnn(seed=4), (x, y), epochs=2, progress=False, seed=0, resume=tmp_path)
    assert rows(again) == rows(first)


def test_one_cycle_steps_per_step_and_peaks_at_lr(small) -> None:
    x, y, _, _ = small
    seen: list[float] = []

    class Lrs(Callback):
        def on_batch_end(self, trainer: Trainer, batch: int, output: StepOutput) -> None:
            assert trainer.optimizer is not None
            seen.append(trainer.optimizer.param_groups[0]["lr"])

    fit(cnn(), (x, y), epochs=2, lr=0.01, scheduler="one_cycle", callbacks=[Lrs()], progress=False)
    assert len(seen) == 10
    assert max(seen) == pytest.approx(0.01, rel=0.05)
    assert seen.index(max(seen)) == 1  # lr after 2 steps: the third of 10 steps (pct_start 30%) runs at the peak
    used = seen[:-1]  # the lr after the last step trains nothing
    assert used[1:] == sorted(used[1:], reverse=True)  # then anneals
    assert used[-1] == pytest.approx(0.01 / 25 / 1e4)  # to initial_lr / final_div_factor


def test_discriminative_learning_rates_through_an_optimizer_dict(small) -> None:
    x, y, _, _ = small
    trainer = Trainer(
        cnn(), (x, y), epochs=1, lr=1e-3, optimizer={"name": "sgd", "lr_multipliers": {"head.*": 10.0}}, progress=False
    )
    trainer.fit()
    assert trainer.optimizer is not None
    lrs = sorted({g["lr"] for g in trainer.optimizer.param_groups})
    assert lrs == pytest.approx([1e-3, 1e-2])


class _Augmented(Dataset):
    """Digits with a random flip drawn from torch's RNG: where the draws come from matters for resume."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        flip = bool(torch.rand(()) < 0.5)
        return (self.x[i].flip(-1) if flip else self.x[i]), self.y[i]


@pytest.mark.parametrize("source", ["no seed", "loader with a generator", "workers with augmentation", "compiled"])
def test_resume_is_exact_in_the_harder_cases(small, tmp_path: Path, source: str) -> None:
    x, y, xv, yv = small
    x, y = x[:160], y[:160]
    options: dict[str, object] = {"val_data": (xv, yv), "epochs": 2, "batch_size": 32, "progress": False}
    data: object = (x, y)
    if source == "loader with a generator":
        data = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(3))
        options["seed"] = 1
    elif source == "workers with augmentation":
        data = _Augmented(x, y)
        options.update(seed=1, num_workers=2)

    def run(model: nn.Module, **extra: object) -> History:
        if isinstance(data, DataLoader):  # a fresh loader each time, its generator where it started
            assert data.generator is not None
            data.generator.manual_seed(3)
        return fit(model, data, **{**options, **extra})

    torch.manual_seed(21)
    reference = cnn(drop_rate=0.3)
    expected = run(reference)
    torch.manual_seed(21)
    with pytest.raises(KeyboardInterrupt):
        run(cnn(drop_rate=0.3), out_dir=tmp_path, callbacks=[InterruptAt(2, 1)])
    torch.manual_seed(5)
    resumed = cnn(seed=99, drop_rate=0.3)
    history = run(resumed, resume=tmp_path)
    assert same_weights(resumed, reference)
    assert rows(history) == rows(expected)


def test_a_nan_between_log_intervals_is_caught_before_any_checkpoint(small, tmp_path: Path) -> None:
    x, y, _, _ = small
    calls = {"n": 0}

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        value = F.cross_entropy(output, target)
        return value * math.inf if calls["n"] == 5 + 2 else value  # epoch 2, batch 2

    class AsOnAGpu(Callback):  # read the loss only at log intervals, as on a GPU
        def on_fit_start(self, trainer: Trainer) -> None:
            trainer.check_each_step = False

    with pytest.raises(NonFiniteLossError, match=r"the loss became NaN or infinite at epoch 2, batch 2 of 5"):
        fit(cnn(), (x, y), epochs=3, loss=loss, log_every=4, progress=False, out_dir=tmp_path, callbacks=[AsOnAGpu()])
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["position"]["epoch"] == 1  # the last checkpoint is the end of epoch 1


def test_early_stopping_ends_a_run_that_stays_ended_and_restore_best(small, tmp_path: Path) -> None:
    x, y, xv, yv = small
    from blockzoo.train import EarlyStopping

    def run(model: nn.Module, **where: object) -> History:
        return fit(
            model, (x, y), val_data=(xv, yv), epochs=30, lr=0.2, optimizer="sgd", monitor="val_loss",
            callbacks=[EarlyStopping(patience=1)], restore_best=True, progress=False, **where,
        )  # fmt: skip

    model = cnn()
    history = run(model, out_dir=tmp_path)
    assert len(history) < 30
    assert same_weights(model, blockzoo.load_weights(cnn(), tmp_path / "best.safetensors"))
    assert rows(run(cnn(seed=2), resume=tmp_path)) == rows(history)


def test_more_bad_options(small) -> None:
    x, y, _, _ = small
    model = cnn()
    with pytest.raises(TypeError, match=r"compile must be True or False. Received: compile='max-autotune'"):
        fit(model, (x, y), epochs=1, compile="max-autotune")
    other = torch.optim.SGD(cnn().parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"the scheduler drives another optimizer"):
        fit(model, (x, y), epochs=1, scheduler=torch.optim.lr_scheduler.StepLR(other, 1))
    with pytest.raises(
        ValueError, match=r"warmup_steps counts optimizer steps, and the 'step' schedule steps per epoch"
    ):
        fit(model, (x, y), epochs=1, scheduler={"name": "step", "step_size": 1, "warmup_steps": 3})


def test_a_device_that_is_not_here_is_refused(small) -> None:
    x, y, _, _ = small
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        pytest.skip("this machine has an Apple GPU")
    with pytest.raises(ValueError, match=r"device 'mps' is not here: torch sees no Apple GPU. Received: device='mps'"):
        fit(cnn(), (x, y), epochs=1, device="mps")


def test_resume_puts_a_scheduled_penalty_where_it_was(small, tmp_path: Path) -> None:
    x, y, _, _ = small

    def penalised(seed: int = 0) -> nn.Module:
        model = cnn(seed)
        attach_penalty(model, L2(lambda step: 0.05 * step))  # grows with the steps: where it is matters
        return model

    options: dict[str, object] = {"epochs": 2, "progress": False, "seed": 2}
    reference = penalised()
    fit(reference, (x, y), **options)
    with pytest.raises(KeyboardInterrupt):
        fit(penalised(), (x, y), out_dir=tmp_path, callbacks=[InterruptAt(2, 2)], **options)
    resumed = penalised(seed=4)
    fit(resumed, (x, y), resume=tmp_path, **options)
    assert same_weights(resumed, reference)
    with pytest.raises(ValueError, match=r"resume: the run in .* had the attachments \['penalty'\]"):
        fit(cnn(), (x, y), resume=tmp_path, **options)
