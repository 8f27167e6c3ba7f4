import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import blockzoo
from blockzoo import UnknownNameError, create_optimizer, explain_param_groups, list_optimizers
from blockzoo.optim import get_optimizer_spec

LRS = {
    "sgd": 0.05, "adam": 0.05, "adamw": 0.05, "rmsprop": 0.01, "adagrad": 0.5, "adadelta": 1.0, "adamax": 0.05,
    "nadam": 0.05, "radam": 0.05, "asgd": 0.05, "rprop": 0.01, "lbfgs": 0.5, "sparse_adam": 0.05,
    "adafactor": 0.05, "muon": 0.02,
}  # fmt: skip
TORCH_NAMES = [n for n in list_optimizers() if n in LRS]


def test_every_torch_optimizer_is_registered() -> None:
    expected = {n for n in LRS if getattr(torch.optim, get_optimizer_spec(n).cls.__name__, None) is not None}
    assert expected <= set(list_optimizers())
    assert {"sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs", "sparse_adam"} <= set(list_optimizers())


class Quadratic(nn.Module):
    """A least-squares problem; the Muon variant has only a 2-D parameter."""

    def __init__(self, with_bias: bool) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(8, 8, generator=gen) * 0.1)
        self.bias = nn.Parameter(torch.zeros(8)) if with_bias else None
        self.register_buffer("x", torch.randn(32, 8, generator=gen))
        self.register_buffer("y", torch.randn(32, 8, generator=gen))

    def forward(self) -> torch.Tensor:
        out = self.x @ self.weight.T
        if self.bias is not None:
            out = out + self.bias
        return (out - self.y).square().mean()


class SparseProblem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4, sparse=True)
        self.register_buffer("target", torch.randn(10, 4, generator=torch.Generator().manual_seed(1)))

    def forward(self) -> torch.Tensor:
        idx = torch.arange(10)
        return (self.emb(idx) - self.target[idx]).square().mean()


def problem(name: str) -> nn.Module:
    spec = get_optimizer_spec(name)
    torch.manual_seed(0)
    return SparseProblem() if spec.sparse_gradients else Quadratic(with_bias=spec.param_ndim is None)


def run(model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> float:
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model()
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    with torch.no_grad():
        return float(model())


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_optimizer_lowers_the_loss_and_resumes_bit_identically(name: str) -> None:
    model = problem(name)
    with torch.no_grad():
        start = float(model())
    opt = create_optimizer(model, name, lr=LRS[name])
    run(model, opt, 100)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    end = run(model, opt, 100)
    assert end < start

    resumed = problem(name)
    resumed.load_state_dict(saved_model)
    opt2 = create_optimizer(resumed, name, lr=LRS[name])
    opt2.load_state_dict(saved_opt)
    run(resumed, opt2, 100)
    for (n, a), b in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), n


def test_unknown_names_and_keywords() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(
        UnknownNameError,
        match=r"Unknown optimizer 'adamm'\. Did you mean 'adam'.*\? blockzoo\.list_optimizers\(\) lists them all",
    ):
        create_optimizer(model, "adamm", lr=0.1)
    with pytest.raises(
        TypeError,
        match=r"SGD does not take 'momentun'\. Did you mean 'momentum'\? It accepts: 'lr', 'momentum'.*Received: momentun=0\.9",
    ):
        create_optimizer(model, "sgd", lr=0.1, momentun=0.9)
    with pytest.raises(TypeError, match=r"missing 1 required keyword-only argument: 'lr'"):
        create_optimizer(model, "sgd")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"SparseAdam has no weight decay\. Received: weight_decay=0\.1"):
        create_optimizer(nn.Embedding(3, 2, sparse=True), "sparse_adam", lr=0.1, weight_decay=0.1)


def test_muon_refuses_parameters_that_are_not_matrices() -> None:
    if "muon" not in list_optimizers():
        pytest.skip("this torch has no Muon")
    with pytest.raises(ValueError, match=r"Muon only takes 2-D parameters; 1 are not, such as \['bias'\]"):
        create_optimizer(nn.Linear(3, 3), "muon", lr=0.02)


def test_implementation_choice() -> None:
    model = nn.Linear(3, 3)
    assert create_optimizer(model, "adamw", lr=1e-3).defaults["fused"] is True
    rms = create_optimizer(model, "rmsprop", lr=1e-3)
    assert rms.defaults["foreach"] is True
    assert "foreach (chosen" in explain_param_groups(rms).implementation
    mine = create_optimizer(model, "adamw", lr=1e-3, foreach=True)
    assert mine.defaults["foreach"] is True
    assert mine.defaults["fused"] is None
    assert explain_param_groups(mine).implementation == "foreach (as requested)"
    lbfgs = create_optimizer(model, "lbfgs", lr=1.0)
    assert len(lbfgs.param_groups) == 1
    assert explain_param_groups(lbfgs).implementation == "for-loop (the only implementation)"
    sparse = create_optimizer(nn.Embedding(4, 2, sparse=True), "sgd", lr=0.1)
    assert sparse.defaults["fused"] is None
    assert sparse.defaults["foreach"] is None


def test_config_dict_form() -> None:
    config = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "lr_multipliers": {"1.*": 0.1}}
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    opt = create_optimizer(model, **config)
    assert isinstance(opt, torch.optim.SGD)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert opt.defaults["momentum"] == 0.9


def test_torchvision_resnet18() -> None:
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18()
    opt = create_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4, momentum=0.9)
    decayed = {n for g in opt.param_groups if g["weight_decay"] for n in g["param_names"]}
    expected = {n for n, p in model.named_parameters() if n.endswith("weight") and p.ndim > 1}
    assert decayed == expected
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    assert blockzoo.check_param_groups(opt, model) == []
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    opt.step()


def test_register_optimizer_reads_the_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    from blockzoo.optim import _specs, register_optimizer

    monkeypatch.setattr(_specs._OPTIMIZERS, "_items", dict(_specs._OPTIMIZERS._items))

    class Lion(torch.optim.Optimizer):
        """Lion: evolved sign momentum (a third-party optimizer)."""

        def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0) -> None:  # type: ignore[no-untyped-def]
            super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    spec = register_optimizer("lion_test", Lion)
    assert spec.kwargs == ("lr", "betas", "weight_decay")
    assert (spec.has_fused, spec.has_foreach) == (False, False)
    assert spec.description == "Lion: evolved sign momentum (a third-party optimizer)"
    opt = create_optimizer(nn.Linear(2, 2), "lion_test", lr=1e-4, betas=(0.9, 0.9))
    assert isinstance(opt, Lion)
    with pytest.raises(ValueError, match=r"optimizer named 'lion_test' is already registered"):
        register_optimizer("lion_test", Lion)
    with pytest.raises(
        TypeError, match=r"cls must be a torch\.optim\.Optimizer subclass\. Received: cls=<class 'int'>"
    ):
        register_optimizer("int_test", int)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- fused only where it is right

FUSED_NAMES = [n for n in list_optimizers() if get_optimizer_spec(n).has_fused]
FUSED_KWARGS = {"sgd": {"momentum": 0.9}}


class Views(nn.Module):
    """A least-squares problem whose parameters are views chosen by ``layout``."""

    def __init__(self, layout: str) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        if layout == "strided":  # every other element of a bigger tensor
            weight, bias = torch.randn(6, 5, 2, generator=gen)[..., 0], torch.randn(6, 2, generator=gen)[:, 1]
        elif layout == "transposed":  # dense, not contiguous
            weight, bias = torch.randn(5, 6, generator=gen).t(), torch.randn(6, generator=gen)
        elif layout == "channels_last":
            weight = torch.randn(6, 5, 1, 1, generator=gen).to(memory_format=torch.channels_last)
            bias = torch.randn(6, generator=gen)
        else:
            weight, bias = torch.randn(6, 5, generator=gen), torch.randn(6, generator=gen)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.register_buffer("x", torch.randn(32, 5, generator=gen))
        self.register_buffer("y", torch.randn(32, 6, generator=gen))

    def forward(self) -> torch.Tensor:
        return (self.x @ self.weight.reshape(6, 5).T + self.bias - self.y).square().mean()


def test_strided_views_are_what_the_test_says() -> None:
    strided = Views("strided")
    assert not strided.weight.is_contiguous()
    assert strided.weight.stride() == (10, 2)
    assert Views("transposed").weight.stride() == (1, 6)
    assert Views("channels_last").weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", FUSED_NAMES)
def test_strided_parameters_get_foreach_and_match_torchs_default(name: str) -> None:
    model, reference = Views("strided"), Views("strided")
    opt = create_optimizer(model, name, lr=0.01, weight_decay=0.01, **FUSED_KWARGS.get(name, {}))
    assert opt.defaults["fused"] is not True
    assert opt.defaults["foreach"] is True
    assert explain_param_groups(opt).implementation == (
        "foreach (chosen: 2 parameters are strided views, which fused kernels mishandle: 'weight', 'bias')"
    )
    # torch's own default construction, with the same groups and nothing chosen for it
    groups = [
        {"params": [dict(reference.named_parameters())[n] for n in g["param_names"]], "lr": g["lr"],
         "weight_decay": g["weight_decay"]}
        for g in opt.param_groups
    ]  # fmt: skip
    torch_opt = get_optimizer_spec(name).cls(groups, lr=0.01, **FUSED_KWARGS.get(name, {}))  # type: ignore[call-arg]
    assert torch_opt.defaults.get("fused") is not True
    run(model, opt, 50)
    run(reference, torch_opt, 50)
    for (n, a), b in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)


@pytest.mark.parametrize("name", FUSED_NAMES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed"])
def test_dense_parameters_still_get_fused(name: str, layout: str) -> None:
    opt = create_optimizer(Views(layout), name, lr=0.01, **FUSED_KWARGS.get(name, {}))
    assert opt.defaults["fused"] is True
    assert explain_param_groups(opt).implementation.startswith("fused (chosen")


def touched_offsets(t: torch.Tensor) -> list[int]:
    """Every storage offset ``t`` reads, one per element, by brute force."""
    offsets = [t.storage_offset()]
    for size, stride in zip(t.shape, t.stride(), strict=True):
        offsets = [o + i * stride for o in offsets for i in range(size)]
    return offsets


@st.composite
def views(draw: st.DrawFn) -> torch.Tensor:
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    t = torch.zeros(shape)
    t = t.permute(*draw(st.permutations(range(len(shape)))))
    dim = draw(st.integers(0, t.ndim - 1))
    start, step = draw(st.integers(0, 1)), draw(st.integers(1, 2))
    t = t[(slice(None),) * dim + (slice(start, None, step),)]
    if draw(st.booleans()):
        t = t.unsqueeze(0).expand(draw(st.integers(1, 3)), *t.shape)
    return t


@given(views())
def test_fused_is_chosen_exactly_for_dense_non_overlapping_parameters(view: torch.Tensor) -> None:
    offsets = touched_offsets(view)
    dense = sorted(offsets) == list(range(min(offsets), min(offsets) + len(offsets))) if offsets else True
    opt = create_optimizer([("p", nn.Parameter(view))], "sgd", lr=0.1)
    assert (opt.defaults["fused"] is True) == dense, (view.shape, view.stride())


def test_requested_fused_on_strided_views_is_flagged() -> None:
    with pytest.warns(
        UserWarning,
        match=r"2 parameters are strided views, which fused kernels mishandle: 'weight', 'bias'; their fused updates will be wrong\. Leave fused out.*Received: fused=True",
    ):
        opt = create_optimizer(Views("strided"), "adam", lr=0.01, fused=True)
    assert opt.defaults["fused"] is True
    assert explain_param_groups(opt).implementation == (
        "fused (as requested; 2 parameters are strided views, which fused kernels mishandle: 'weight', 'bias')"
    )
