"""summary(): its totals, shapes, FLOPs and optimizer columns against independent answers; the model untouched."""

from __future__ import annotations

import copy
import itertools
import weakref
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode  # the only hook that sees every tensor aten makes
from torch.utils.flop_counter import FlopCounterMode

import blockzoo
from blockzoo import InputError, ModelSummary, UnknownNameError, count_params, summary
from blockzoo.inspect import SummaryRow
from blockzoo.regularization import (
    L1,
    L2,
    MaxNorm,
    attach_activity_penalty,
    attach_constraint,
    attach_penalty,
    regularization_loss,
)
from blockzoo.testing import conv_configs
from support import DEVICES, fit_side, representative_models

# ---------------------------------------------------------------- helpers


def real_shapes(model: nn.Module, *args: Any, copy_first: bool = True) -> tuple[dict[str, Any], Any]:
    """Each module's first output shape in a real forward pass of (a copy of) ``model``, and the output's."""
    twin = copy.deepcopy(model) if copy_first else model
    seen: dict[str, Any] = {}
    handles = []
    for name, module in twin.named_modules():

        def hook(m: nn.Module, a: Any, out: Any, name: str = name) -> None:
            seen.setdefault(name, tuple(out.shape) if isinstance(out, torch.Tensor) else out)

        handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        out = twin(*args)
    for h in handles:
        h.remove()
    return seen, tuple(out.shape)


def snapshot(model: nn.Module) -> dict[str, Any]:
    return {
        "tensors": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "grads": [p.grad for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
        "rng": torch.random.get_rng_state(),
        "devices": {k: v.device for k, v in model.state_dict().items()},
    }


def assert_unchanged(model: nn.Module, before: dict[str, Any]) -> None:
    after = snapshot(model)
    assert after["modes"] == before["modes"]
    assert torch.equal(after["rng"], before["rng"])
    assert after["devices"] == before["devices"]
    assert after["tensors"].keys() == before["tensors"].keys()
    for key, value in after["tensors"].items():
        assert value.dtype == before["tensors"][key].dtype
        assert torch.equal(value, before["tensors"][key]), key  # bit for bit, BN statistics included
    assert all(a is b for a, b in zip(after["grads"], before["grads"], strict=True))


@st.composite
def stacks(draw: st.DrawFn) -> tuple[nn.Module, tuple[int, ...]]:
    """A Sequential of blockzoo blocks and torch layers that fit together, and an input shape for it."""
    size = draw(st.integers(4, 12))
    channels = draw(st.integers(1, 6))
    shape = (2, channels, size, size)
    layers: list[nn.Module] = []
    seen: list[tuple[nn.Module, Any, Any]] = []  # each layer, its input and output shapes; and every conv
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                ["conv_norm_act", "conv_block", "basic", "se", "conv", "bn", "relu", "pool", "drop", "again", "tied"]
            )
        )
        c = shape[1]
        cfg = draw(conv_configs(max_channels=8))
        out = cfg["out_channels"]
        groups = cfg["groups"] if c % cfg["groups"] == 0 and out % cfg["groups"] == 0 else 1
        same_shape = [m for m, before, after in seen if before == after == shape]
        if kind == "again" and same_shape:  # a layer used a second time (a shared BatchNorm among them)
            layer: nn.Module = draw(st.sampled_from(same_shape))
        elif kind == "again":
            bn = nn.BatchNorm2d(c)
            layer = nn.Sequential(bn, nn.ReLU(), bn)
        elif kind == "tied":  # a new conv whose kernel is an earlier one's
            layer = nn.Conv2d(c, c, 3, padding=1)
            kernels = [m for m, _, _ in seen if isinstance(m, nn.Conv2d) and m.weight.shape == layer.weight.shape]
            if kernels:
                layer.weight = draw(st.sampled_from(kernels)).weight
        elif kind == "conv_norm_act":
            layer = blockzoo.ConvNormAct(c, out, cfg["kernel_size"], stride=cfg["stride"], groups=groups)
        elif kind == "conv_block" and shape[-1] >= 2:
            layer = blockzoo.ConvBlock(c, out)
        elif kind == "basic":
            layer = blockzoo.BasicBlock(c, out, stride=cfg["stride"])
        elif kind == "se":
            layer = blockzoo.SqueezeExcite(c)
        elif kind == "conv":
            layer = nn.Conv2d(c, out, cfg["kernel_size"], padding=cfg["kernel_size"] // 2, bias=draw(st.booleans()))
        elif kind == "bn":
            layer = nn.BatchNorm2d(c)
        elif kind == "pool" and shape[-1] >= 2:
            layer = nn.MaxPool2d(2)
        elif kind == "drop":
            layer = nn.Dropout(0.5)
        else:
            layer = nn.ReLU()
        if kind not in ("again", "tied"):
            if draw(st.booleans()):
                layer.requires_grad_(False)
            if draw(st.integers(0, 4)) == 0:
                layer.eval()
        before = shape
        shape = tuple(blockzoo.infer_shape(layer, shape))
        seen.append((layer, before, shape))
        seen.extend((m, None, None) for m in layer.modules() if isinstance(m, nn.Conv2d))
        layers.append(layer)
    head = draw(st.sampled_from(["pool", "flatten", "none"]))
    if head == "pool":
        layers.append(blockzoo.ClassifierHead(shape[1], 3))
    elif head == "flatten":
        layers.append(nn.Sequential(nn.Flatten(), nn.Linear(shape[1] * shape[2] * shape[3], 3)))
    nest = draw(st.booleans()) and len(layers) > 1
    model = nn.Sequential(nn.Sequential(*layers[:2]), *layers[2:]) if nest else nn.Sequential(*layers)
    return model, (2, channels, size, size)


# ---------------------------------------------------------------- the laws, on random stacks


@given(stacks(), st.booleans())
def test_summary_laws_on_random_stacks(drawn: tuple[nn.Module, tuple[int, ...]], with_optimizer: bool) -> None:
    model, shape = drawn
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = (
        blockzoo.create_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4) if with_optimizer and trainable else None
    )
    before = snapshot(model)
    s = summary(model, shape, optimizer=optimizer, depth=4)
    assert_unchanged(model, before)

    assert s.total_params == count_params(model) == sum(p.numel() for p in model.parameters())
    assert s.trainable_params == sum(p.numel() for p in trainable)
    assert s.trainable_params + s.frozen_params == s.total_params
    # the rows at depth 1 partition the parameters (a shared module's are counted at its first name)
    assert sum(r.params for r in s.rows if r.depth == 1) == s.total_params
    assert all(r.trainable + r.frozen == r.params for r in s.rows)

    shapes, out = real_shapes(model, torch.randn(shape))
    assert s.output_shape == out
    first_name = {id(m): n for n, m in model.named_modules()}
    modules = dict(model.named_modules(remove_duplicate=False))
    for row in s.rows:
        if row.calls:  # a module used again keeps its shape (stacks() reuses only those)
            assert row.output_shape == shapes[first_name[id(modules[row.name])]], row.name

    with FlopCounterMode(display=False) as counter:
        copy.deepcopy(model)(torch.randn(shape))
    assert s.flops == counter.get_total_flops()
    assert sum(r.flops or 0 for r in s.rows if r.depth == 1) == s.flops  # no call counted twice

    canonical = {id(p): n for n, p in model.named_parameters()}
    for row in s.rows:
        module = modules[row.name]
        assert row.training == module.training
        if list(module.children()) or optimizer is None or row.shared_with is not None:
            continue  # a module used again shows its optimizer groups at its first name
        # the parameters first named here (a tied kernel is shown at its first name)
        params = [p for n, p in module.named_parameters(prefix=row.name) if canonical[id(p)] == n]
        groups = sorted(
            {i for i, g in enumerate(optimizer.param_groups) for p in params if any(p is q for q in g["params"])}
        )
        assert list(row.optimizer_groups) == groups, row.name
        assert list(row.lr) == [optimizer.param_groups[i]["lr"] for i in groups]
        assert list(row.weight_decay) == [optimizer.param_groups[i]["weight_decay"] for i in groups]


# ---------------------------------------------------------------- every registered model


@pytest.mark.parametrize("name", representative_models())
def test_every_registered_model(name: str) -> None:
    # Built on the meta device (no memory, no initialisation); checked against a real pass at 32x32 on zeros (or
    # the model's smallest input: alexnet's strides and pools leave nothing of a 32x32 image).
    model = blockzoo.create_model(name, device="meta")
    channels, *size = blockzoo.model_info(name).input_size
    side = fit_side(name, 32)
    shape = (2, channels, *([side, side] if size[0] > side else size))
    s = summary(model, shape, depth=2)
    assert s.pass_device == "meta"
    assert s.total_params == blockzoo.model_info(name).num_params == count_params(model)
    assert s.param_bytes == 4 * s.total_params
    real = model.to_empty(device="cpu")
    with torch.no_grad():
        for t in itertools.chain(real.parameters(), real.buffers()):
            t.zero_()
    # FlopCounterMode has no formula for the CPU's fused attention kernel: the reference pass runs the math one
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        shapes, out = real_shapes(real, torch.zeros(shape), copy_first=False)
    assert s.output_shape == out
    assert all(r.output_shape == shapes[r.name] for r in s.rows if r.calls)
    assert s.flops == counter.get_total_flops()


def test_resnet20_summary_shows_the_papers_parameter_count() -> None:
    s = summary(blockzoo.create_model("resnet20"))  # a zoo model needs no input size
    assert s.input_shape == (1, 3, 32, 32)
    assert s.output_shape == (1, 10)
    assert s.total_params == 269_722
    assert "parameters   269,722 (trainable 269,722, frozen 0)" in s.to_string(width=100)


# ---------------------------------------------------------------- the model is left as it was


def test_a_trained_model_with_attachments_is_bit_identical_afterwards() -> None:
    model = blockzoo.create_model("simple_cnn", num_classes=4, drop_rate=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    attach_penalty(model, L2(1e-4), exclude="head.*")
    attach_constraint(model, MaxNorm(3.0), optimizer=optimizer, include="head.*")
    attach_activity_penalty(model, L1(1e-3), include="features.stage1")
    for _ in range(2):  # BN statistics, momentum buffers and gradients that are not the defaults
        x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4,))
        loss = nn.functional.cross_entropy(model(x), y) + regularization_loss(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model(torch.randn(4, 3, 32, 32))  # the activity penalty now holds this forward's term
    model.features.stage2.eval()  # mixed modes
    activity = regularization_loss(model)
    before = snapshot(model)
    s = summary(model, (8, 3, 32, 32), optimizer=optimizer)
    summary(model.eval(), (8, 3, 32, 32), optimizer=optimizer)  # and a pass that switches modes
    model.train()
    model.features.stage2.eval()
    assert_unchanged(model, before)
    assert torch.equal(regularization_loss(model), activity)
    assert s.rows[0].training
    assert not next(r for r in s.rows if r.name == "features.stage2").training


def test_a_pass_on_a_real_device_leaves_batch_norm_statistics_alone() -> None:
    class Counting(nn.Module):  # .item() has no meta implementation: the pass falls back to the CPU
        def __init__(self) -> None:
            super().__init__()
            self.bn, self.fc = nn.BatchNorm1d(4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.bn(x)
            return self.fc(x) * int((x > 0).sum().item() >= 0)

    model = Counting()
    data = torch.randn(3, 4)
    before = snapshot(model)
    s = summary(model, (3, 4))
    assert_unchanged(model, before)
    assert s.pass_device == "cpu"
    assert s.meta_failure is not None
    assert "meta" in s.meta_failure
    assert s.output_shape == (3, 2)
    assert "(shapes from a pass on cpu; the meta device could not run it: RuntimeError: " in str(s)
    summary(model, input_data=data)
    assert_unchanged(model, before)


@pytest.mark.parametrize("device", DEVICES)
def test_the_model_stays_on_its_device(device: str) -> None:
    model = blockzoo.create_model("resnet20", device=device)
    before = snapshot(model)
    s = summary(model, (2, 3, 32, 32), device=device)
    assert_unchanged(model, before)
    assert all(p.device.type == device for p in model.parameters())
    assert s.total_params == 269_722


# ---------------------------------------------------------------- sharing, several inputs, dict outputs


class Tied(nn.Module):
    """A language-model shape: tied embedding and classifier, and one layer used twice."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.enc = nn.Linear(16, 16)
        self.body = nn.Sequential(self.enc, nn.ReLU(), self.enc)
        self.out = nn.Linear(16, 100)
        self.out.weight = self.emb.weight

    def forward(self, ids: torch.Tensor, scale: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        h = self.body(self.emb(ids))
        if scale is not None:
            h = h * scale
        return {"logits": self.out(h), "hidden": h}


def test_shared_modules_and_tied_parameters_are_counted_once_and_marked() -> None:
    model = Tied()
    before = snapshot(model)
    s = summary(model, (2, 5), dtypes=torch.long)
    assert_unchanged(model, before)
    assert s.total_params == 100 * 16 + (16 * 16 + 16) + 100 == count_params(model)
    assert s.shared_tensors == 3  # enc.weight, enc.bias, emb.weight
    rows = {r.name: r for r in s.rows}
    assert [rows[n].shared_with for n in ("body.0", "body.2")] == ["enc", "enc"]
    assert (rows["body.0"].params, rows["body.0"].tied) == (0, 16 * 16 + 16)
    assert (rows["out"].params, rows["out"].tied) == (100, 100 * 16)
    # enc runs twice, both times inside body: its calls are body.0's (body.2 holds the same layer in the same parent)
    assert (rows["enc"].calls, rows["body.0"].calls) == (0, 2)
    assert (rows["enc"].flops, rows["body.0"].flops, rows["body.2"].flops) == (0, 2 * 2 * 10 * 16 * 16, 0)
    assert sum(r.flops or 0 for r in s.rows if r.depth == 1) == s.flops
    assert sum(r.params for r in s.rows if r.depth == 1) == s.total_params
    assert s.output_shape == {"logits": (2, 5, 100), "hidden": (2, 5, 16)}
    text = s.to_string(width=120)
    assert "= enc" in text
    assert "100 +1,600 tied" in text
    assert "3 tensors with several names, counted once" in text
    assert "Each parameter is counted once, at its first name" in text


def test_a_module_used_twice_is_left_as_it_was() -> None:
    bn = nn.BatchNorm1d(4)
    model = nn.Sequential(bn, nn.ReLU(), bn)
    before = snapshot(model)
    summary(model, (2, 4))
    assert_unchanged(model, before)
    blockzoo.flops(model, (2, 4))
    assert_unchanged(model, before)
    model(torch.randn(2, 4))  # still runs on its own tensors, not on meta ones


def test_several_inputs_by_shape_by_position_and_by_keyword() -> None:
    model = Tied()
    ids, scale = torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, 1)
    by_size = summary(model, [(2, 5), (2, 5, 1)], dtypes=[torch.long, torch.float32])
    by_position = summary(model, input_data=(ids, scale))
    by_keyword = summary(model, input_data={"ids": ids, "scale": scale})
    assert by_size.input_shape == by_position.input_shape == ((2, 5), (2, 5, 1))
    assert by_keyword.input_shape == {"ids": (2, 5), "scale": (2, 5, 1)}
    assert by_size.flops == by_position.flops == by_keyword.flops == 2 * (2 * (10 * 16 * 16) + 10 * 16 * 100)
    assert "input {ids: [2, 5], scale: [2, 5, 1]} -> output {logits: [2, 5, 100], hidden: [2, 5, 16]}" in str(
        by_keyword
    )


# ---------------------------------------------------------------- activation memory against a real step


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages that aten allocates while the mode is on, alive at each moment (each storage once)."""

    def __init__(self, known: list[torch.Tensor]) -> None:
        super().__init__()
        self.known = {t.untyped_storage().data_ptr() for t in known}
        self.live: dict[int, tuple[int, int]] = {}  # data_ptr -> (serial, bytes)
        self.log: list[tuple[int, int]] = []  # (serial, +bytes when made / -bytes when freed)
        self.serial = itertools.count()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in blockzoo._trees.tensor_leaves(out):
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key in self.live or key in self.known or storage.nbytes() == 0:
                continue
            serial = next(self.serial)
            self.live[key] = (serial, storage.nbytes())
            self.log.append((serial, storage.nbytes()))
            weakref.finalize(storage, self._free, key)
        return out

    def _free(self, key: int) -> None:
        serial, nbytes = self.live.pop(key)
        self.log.append((serial, -nbytes))

    def now(self) -> int:
        return sum(n for _, n in self.live.values())

    def peak(self, leave_out: set[int]) -> int:
        current = peak = 0
        for serial, n in self.log:
            if serial not in leave_out:
                current += n
                peak = max(peak, current)
        return peak


@pytest.mark.parametrize("name", ["simple_cnn", "resnet20"])
def test_activation_memory_is_what_a_real_training_step_holds(name: str) -> None:
    model = blockzoo.create_model(name)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    estimate = summary(model, (8, 3, 32, 32)).activation_bytes
    assert estimate is not None
    tracker = LiveBytes([*model.parameters(), *model.buffers(), x, y])
    with tracker:
        out = model(x)
        after_forward = tracker.now()
        loss = nn.functional.cross_entropy(out, y)
        loss.backward()
        del out, loss
    grads = {tracker.live[p.grad.untyped_storage().data_ptr()][0] for p in model.parameters() if p.grad is not None}
    # Between forward and backward a step holds exactly the saved tensors and the output (1% for rounding).
    assert after_forward == pytest.approx(estimate, rel=0.01)
    # Its peak, leaving out the parameters' gradients, adds the backward pass's transient gradients: within 10%.
    assert estimate <= tracker.peak(grads) <= 1.1 * estimate


def test_activation_memory_scales_with_the_batch_and_ignores_the_mode() -> None:
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    one, four = summary(model, (1, 32)).activation_bytes, summary(model, (4, 32)).activation_bytes
    assert one is not None
    assert four == 4 * one
    # Linear 0 saves nothing new (the input is not counted), ReLU its output, Linear 2 that same tensor: 64 floats,
    # plus the output's 10.
    assert one == 4 * (64 + 10)
    assert summary(model.eval(), (1, 32)).activation_bytes == one


# ---------------------------------------------------------------- the training setup, per row


def test_rows_show_initializers_regularizers_and_optimizer_groups() -> None:
    model = blockzoo.create_model("simple_cnn", num_classes=10)
    optimizer = blockzoo.create_optimizer(model, "sgd", lr=0.1, weight_decay=5e-4)
    attach_penalty(model, L2(1e-4), exclude="head.*")
    attach_constraint(model, MaxNorm(3.0), optimizer=optimizer, include="head.*")
    attach_activity_penalty(model, L1(1e-3))
    s = summary(model, optimizer=optimizer, depth=5)
    rows = {r.name: r for r in s.rows}
    conv, norm, fc = rows["features.stage1.convs.0.conv"], rows["features.stage1.convs.0.norm"], rows["head.fc"]
    assert conv.roles == ("weight",)
    assert norm.roles == ("norm",)
    assert fc.roles == ("weight", "bias")
    assert conv.init == ("kaiming_normal(mode='fan_in', nonlinearity='relu')",)
    assert norm.init == ("torch default",)
    assert fc.init == ("xavier_uniform", "zeros")
    assert conv.regularizers == ("L2(factor=0.0001)",)
    assert norm.regularizers == ()
    assert fc.regularizers == ("MaxNorm(max_value=3)",)
    assert (conv.optimizer_groups, conv.lr, conv.weight_decay) == ((0,), (0.1,), (0.0005,))
    assert (norm.optimizer_groups, norm.weight_decay) == ((1,), (0.0,))
    assert fc.optimizer_groups == (0, 1)
    assert rows["features"].regularizers == ()  # its children have rows of their own
    assert s.model_attachments == ("SGD", "L1(factor=0.001)")
    assert [g["rule"] for g in s.groups] == ["decay", "no decay: role norm, role bias"]
    text = s.to_string(width=250)
    assert "0 (lr 0.1, wd 0.0005)" in text
    assert "kaiming_normal" in text
    assert "L2(factor=0.0001)" in text
    assert (
        "optimizer    SGD: group 0 lr 0.1 wd 0.0005 (decay); group 1 lr 0.1 wd 0 (no decay: role norm, role bias)"
        in text
    )
    assert "attached     SGD, L1(factor=0.001) (to the model as a whole)" in text


def test_trained_parameters_and_parameters_outside_the_optimizer_are_flagged() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    blockzoo.init_weights(model, "kaiming_normal")
    optimizer = torch.optim.SGD(model[0].parameters(), lr=0.1)
    nn.functional.mse_loss(model(torch.randn(3, 4)), torch.zeros(3, 2)).backward()
    optimizer.step()
    model[2].bias.requires_grad_(False)
    s = summary(model, (3, 4), optimizer=optimizer)
    first, last = s.rows[0], s.rows[2]
    assert first.init_changed
    assert not last.init_changed
    assert (last.unoptimized, last.frozen) == (8, 2)
    assert s.unoptimized == ("2.weight",)
    text = s.to_string(width=200)
    assert "init*: the values changed since (trained or loaded)." in text
    assert "not optimized  trainable, in no optimizer group: 2.weight" in text
    assert "not in it" in text


# ---------------------------------------------------------------- renderings


def test_the_text_table_fits_the_width_and_says_what_it_left_out() -> None:
    model = blockzoo.create_model("resnet20")
    optimizer = blockzoo.create_optimizer(model, "adamw", lr=1e-3)
    s = summary(model, optimizer=optimizer)
    for width in (60, 80, 100, 140, 400):
        table = s.to_string(width=width).splitlines()
        body = table[1 : table.index(next(line for line in table[2:] if line.startswith("---"))) + 1]
        assert max(len(line) for line in body) <= max(width, 60)
    narrow = s.to_string(width=80)
    assert "Left out to fit 80 characters: " in narrow
    assert "flops" in narrow.split("Left out to fit 80 characters: ")[1]
    assert "Left out" not in s.to_string(width=400)


def test_str_uses_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    s = summary(blockzoo.create_model("simple_cnn"))
    monkeypatch.setenv("COLUMNS", "70")
    assert str(s) == s.to_string(width=70)
    monkeypatch.setenv("COLUMNS", "300")
    assert str(s) == s.to_string(width=300)


def test_columns_pick_the_columns() -> None:
    s = summary(blockzoo.create_model("simple_cnn"), columns=["name", "params"], depth=1)
    header = s.to_string(width=40).splitlines()[1]
    assert header.split() == ["name", "params"]
    assert s.to_markdown().splitlines()[2] == "| name | params |"
    with pytest.raises(
        UnknownNameError, match=r"Unknown column 'param'\. Did you mean 'params'\?.*Received: columns=\['param'\]"
    ):
        summary(nn.Linear(2, 2), columns=["param"])
    with pytest.raises(TypeError, match=r"columns must be a non-empty list of column names.*Received: columns='name'"):
        summary(nn.Linear(2, 2), columns="name")


def test_markdown_and_records() -> None:
    model = blockzoo.create_model("simple_cnn")
    s = summary(model, depth=2)
    lines = s.to_markdown().splitlines()
    header, align = lines[2], lines[3]
    assert header.startswith("| name | type | output shape | params |")
    assert align.split(" | ")[3] == "---:"
    table = [line for line in lines[4:] if line.startswith("| ")]
    assert [line.split(" | ")[0][2:] for line in table] == [r.name for r in s.rows]  # full names
    assert "- **parameters**: 113,962 (trainable 113,962, frozen 0)" in lines
    records = s.to_records()
    assert len(records) == len(s.rows)
    assert set(records[0]) == {f.name for f in SummaryRow.__dataclass_fields__.values()}
    assert records[-1]["name"] == "head.fc" or records[-1]["name"].startswith("head.")
    assert sum(r["params"] for r in records if r["depth"] == 1) == 113_962


def test_a_model_without_input_has_no_shapes_or_flops() -> None:
    s = summary(nn.Sequential(nn.Linear(3, 4), nn.ReLU()))
    assert (s.input_shape, s.output_shape, s.flops, s.activation_bytes, s.macs) == (None, None, None, None, None)
    assert all(r.output_shape is None for r in s.rows)
    assert s.to_string(width=100).splitlines()[0] == (
        "Sequential: no input given (input_size= or input_data= adds shapes and FLOPs), in train mode"
    )
    leaf = summary(nn.Linear(3, 4), (2, 3))
    assert [r.name for r in leaf.rows] == [""]
    assert leaf.rows[0].params == 16
    assert "(model)" in str(leaf)


def test_depth_limits_the_rows_and_the_counts_cover_what_is_below() -> None:
    model = blockzoo.create_model("resnet20")
    shallow, deep = summary(model, depth=1), summary(model, depth=5)
    assert [r.name for r in shallow.rows] == ["features", "head"]
    assert {r.depth for r in deep.rows} == {1, 2, 3, 4, 5}
    assert shallow.rows[0].params == next(r for r in deep.rows if r.name == "features").params
    assert shallow.rows[0].roles == ("weight", "norm")  # the rows below are not shown: it stands for them
    assert shallow.rows[0].flops == sum(
        r.flops or 0 for r in deep.rows if r.depth == 2 and r.name.startswith("features.")
    )


def test_memory_format_is_the_weights_format() -> None:
    model = blockzoo.create_model("simple_cnn")
    plain = {r.name: r.memory_format for r in summary(model, depth=5).rows}
    assert plain["features.stage1.convs.0.conv"] == "contiguous"
    assert plain["head.fc"] is None  # a 2-D weight has no channels_last
    model.to(memory_format=torch.channels_last)
    s = summary(model, depth=5)
    formats = {r.name: r.memory_format for r in s.rows}
    assert formats["features.stage1.convs.0.conv"] == "channels_last"
    assert "weights format" in s.to_string(width=300)
    model.features.stage2.convs[0].conv.weight.data = model.features.stage2.convs[0].conv.weight.data.contiguous()
    assert summary(model, depth=1).rows[0].memory_format == "mixed"


# ---------------------------------------------------------------- errors


def test_a_wrong_in_features_raises_the_blocks_input_error_with_its_hint() -> None:
    model = nn.Sequential(
        blockzoo.ConvBlock(3, 32), blockzoo.ConvBlock(32, 64), blockzoo.ClassifierHead(64 * 4 * 4, 10, pool_layer=None)
    )
    with pytest.raises(InputError, match=r"build it with in_features=4096, or add one more pooling stage"):
        summary(model, (1, 3, 32, 32))


def test_a_lazy_layer_that_has_not_run_is_refused_by_name() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LazyLinear(2))
    with pytest.raises(
        ValueError, match=r"^1\.weight belongs to a lazy layer that has not run yet.*Received: model=Sequential"
    ):
        summary(model, (2, 3))
    model(torch.zeros(2, 3))
    assert summary(model, (2, 3)).total_params == 3 * 4 + 4 + 4 * 2 + 2


def test_a_forward_that_fails_says_in_which_module() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Linear(5, 2)))
    with pytest.raises(
        RuntimeError,
        match=r"^the forward pass on inputs of shape \(2, 3\) failed in 1\.1 \(Linear\): mat1 and mat2 shapes cannot be multiplied",
    ) as caught:
        summary(model, (2, 3))
    assert isinstance(caught.value.__cause__, RuntimeError)  # torch's own error stays attached


def test_argument_errors() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(
        ValueError, match=r"Give input_size or input_data, not both\. Received: input_size=\(1, 2\), input_data=Tensor"
    ):
        summary(model, (1, 2), input_data=torch.zeros(1, 2))
    with pytest.raises(TypeError, match=r"input_data must be a tensor, a tuple or list.*Received: input_data=str"):
        summary(model, input_data="x")
    with pytest.raises(ValueError, match=r"dtypes is for the inputs made from input_size; input_data has its own"):
        summary(model, input_data=torch.zeros(1, 2), dtypes=torch.float64)
    with pytest.raises(
        TypeError,
        match=r"dtypes must be a torch.dtype, or one per input \(1 here\).*Received: dtypes=\[torch.float32, torch.float32\]",
    ):
        summary(model, (1, 2), dtypes=[torch.float32, torch.float32])
    with pytest.raises(
        TypeError, match=r"input_size must be the shape of one input batch.*Received: input_size=\[\(1, 2\), 3\]"
    ):
        summary(model, [(1, 2), 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"depth must be a positive int\. Received: depth=0"):
        summary(model, depth=0)
    with pytest.raises(TypeError, match=r"optimizer must be a torch.optim.Optimizer\. Received: optimizer=dict"):
        summary(model, optimizer={})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"summary: model must be an nn.Module\. Received: model=function"):
        summary(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"device must be a torch device such as 'cpu', 'cuda', 'cuda:1' or 'mps'\. Received: device='gpu'",
    ):
        summary(model, (1, 2), device="gpu")
    assert isinstance(summary(model), ModelSummary)
    assert repr(summary(model)) == "ModelSummary(Linear, 6 parameters, 1 rows)"
