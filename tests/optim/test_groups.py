"""Laws of the parameter groups, on drawn models."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import blockzoo
from blockzoo import Role, create_optimizer, param_roles
from blockzoo.optim import param_groups


class Gate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(3))  # a user's 1-D parameter: role other
        self.table = nn.Parameter(torch.ones(3, 3))  # a user's matrix: role other, decayed


LAYERS = {
    "conv": lambda: nn.Conv2d(3, 3, 3),
    "bn": lambda: nn.BatchNorm2d(3),
    "linear": lambda: nn.Linear(3, 3),
    "ln": lambda: nn.LayerNorm(3),
    "emb": lambda: nn.Embedding(5, 3),
    "prelu": nn.PReLU,
    "gate": Gate,
    "block": lambda: blockzoo.ConvNormAct(3, 3, norm_layer="groupnorm"),
    "mlp": lambda: blockzoo.MLP(3, (4,), 2, norm_layer="layernorm"),
}


@st.composite
def models(draw: st.DrawFn) -> nn.Module:
    kinds = draw(st.lists(st.sampled_from(sorted(LAYERS)), min_size=1, max_size=6))
    layers = [LAYERS[k]() for k in kinds]
    if len(layers) > 1 and draw(st.booleans()):
        layers.append(layers[0])  # a shared module
    model = nn.Sequential(*layers)
    params = list(model.parameters())
    frozen = draw(st.lists(st.integers(0, len(params) - 1), max_size=len(params) - 1, unique=True))
    for i in frozen:
        params[i].requires_grad_(False)
    return model


def trainable(model: nn.Module) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters() if p.requires_grad}


@given(models(), st.floats(0.0, 0.1))
def test_groups_partition_the_trainable_parameters(model: nn.Module, wd: float) -> None:
    opt = create_optimizer(model, "sgd", lr=0.1, weight_decay=wd)
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(trainable(model))
    assert blockzoo.check_param_groups(opt, model) == []


@given(models())
def test_default_no_decay_rule(model: nn.Module) -> None:
    roles = param_roles(model)
    opt = create_optimizer(model, "adamw", lr=0.1, weight_decay=0.05)
    for group in opt.param_groups:
        for name, p in zip(group["param_names"], group["params"], strict=True):
            exempt = roles[name] in (Role.BIAS, Role.NORM, Role.EMBEDDING, Role.SCALE) or p.ndim <= 1
            assert group["weight_decay"] == (0.0 if exempt else 0.05), name


@given(models(), st.floats(0.1, 1.0), st.floats(1e-4, 1.0))
def test_layer_decay_follows_the_formula(model: nn.Module, decay: float, lr: float) -> None:
    groups, _ = param_groups(model, lr=lr, layer_decay=decay)
    tops = [n for n, m in model.named_children()]
    used = sorted({tops.index(name.split(".")[0]) for name in trainable(model).values()})
    depth_of = {t: used.index(tops.index(t)) for t in {tops[i] for i in used}}
    depth_count = len(used)
    for group in groups:
        for name, _ in group["params"]:
            expected = lr * decay ** (depth_count - 1 - depth_of[name.split(".")[0]])
            assert group["lr"] == pytest.approx(expected)
            assert group["initial_lr"] == group["lr"]


@given(models(), st.floats(0.01, 10.0), st.integers(1, 20))
def test_lr_multipliers_survive_cosine_annealing(model: nn.Module, factor: float, steps: int) -> None:
    first = next(iter(trainable(model).values()))
    glob = first.split(".")[0] + ".*"
    opt = create_optimizer(model, "sgd", lr=0.1, lr_multipliers={glob: factor})
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=25)
    start = [g["lr"] for g in opt.param_groups]
    for _ in range(steps):
        opt.step()
        sched.step()
    now = [g["lr"] for g in opt.param_groups]
    ratios = [n / s for n, s in zip(now, start, strict=True)]
    assert ratios == pytest.approx([ratios[0]] * len(ratios))
    for g in opt.param_groups:
        if any(n.startswith(glob[:-1]) for n in g["param_names"]):
            assert g["initial_lr"] == pytest.approx(0.1 * factor)


def test_explicit_depths_from_the_model() -> None:
    class Deep(nn.Sequential):
        def param_depths(self) -> dict[str, int]:
            return {n: (0 if n.startswith("0.") else 1) for n, _ in self.named_parameters()}

    model = Deep(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
    groups, _ = param_groups(model, lr=1.0, layer_decay=0.5)
    lrs = {n: g["lr"] for g in groups for n, _ in g["params"]}
    assert lrs == {"0.weight": 0.5, "0.bias": 0.5, "1.weight": 1.0, "1.bias": 1.0, "2.weight": 1.0, "2.bias": 1.0}


def test_plain_parameters_and_named_pairs() -> None:
    lin = nn.Linear(3, 2)
    groups, _ = param_groups(lin.parameters(), lr=0.1, weight_decay=0.1)
    assert [(len(g["params"]), g["weight_decay"]) for g in groups] == [(1, 0.1), (1, 0.0)]
    groups, _ = param_groups(lin.named_parameters(), lr=0.1, weight_decay=0.1)
    assert [[n for n, _ in g["params"]] for g in groups] == [["weight"], ["bias"]]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"lr": -1.0}, ValueError, r"lr must be a finite number >= 0\. Received: lr=-1\.0"),
        (
            {"lr": 0.1, "weight_decay": -0.1},
            ValueError,
            r"weight_decay must be a finite number >= 0\. Received: weight_decay=-0\.1",
        ),
        (
            {"lr": 0.1, "layer_decay": 1.5},
            ValueError,
            r"layer_decay must be a number in \(0, 1\] or None\. Received: layer_decay=1\.5",
        ),
        (
            {"lr": 0.1, "lr_multipliers": {"head.*": 2.0}},
            ValueError,
            r"lr_multipliers glob 'head\.\*' matches no trainable parameter\. The names look like '0\.weight', "
            r"'0\.bias'\. Received: lr_multipliers=\{'head\.\*': 2\.0\}",
        ),
        (
            {"lr": 0.1, "lr_multipliers": {"0.*": -2.0}},
            ValueError,
            r"lr_multipliers\['0\.\*'\] must be a finite number >= 0\. Received: lr_multipliers\['0\.\*'\]=-2\.0",
        ),
        (
            {"lr": 0.1, "no_weight_decay_roles": ["biases"]},
            blockzoo.UnknownNameError,
            r"Unknown role 'biases'\. Did you mean 'bias'",
        ),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        param_groups(nn.Sequential(nn.Linear(2, 2)), **kwargs)  # type: ignore[arg-type]


def test_all_frozen_and_wrong_types() -> None:
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match=r"model_or_params has no trainable parameter"):
        param_groups(model, lr=0.1)
    with pytest.raises(TypeError, match=r"model_or_params must be an nn\.Module.*Received: model_or_params=list"):
        param_groups([1, 2], lr=0.1)  # type: ignore[list-item]


# ----------------------------------------------------------------------------- pairs and models agree

NAMED_LAYERS = {  # the torch.nn layouts whose roles the names tell (see param_groups)
    "conv": lambda: nn.Conv2d(3, 3, 3),
    "conv_nobias": lambda: nn.Conv2d(3, 3, 1, bias=False),
    "bn": lambda: nn.BatchNorm2d(3),
    "linear": lambda: nn.Linear(3, 3),
    "linear_nobias": lambda: nn.Linear(3, 1, bias=False),
    "ln": lambda: nn.LayerNorm(3),
    "ln_2d": lambda: nn.LayerNorm((2, 3)),
    "ln_nobias": lambda: nn.LayerNorm(3, bias=False),
    "gn": lambda: nn.GroupNorm(1, 3),
    "mha": lambda: nn.MultiheadAttention(4, 2),
    "gru": lambda: nn.GRU(3, 2),
    "weight_norm": lambda: nn.utils.parametrizations.weight_norm(nn.Linear(3, 2)),
    "gate": Gate,
    "block": lambda: blockzoo.ConvNormAct(3, 3, norm_layer="groupnorm"),
    "mlp": lambda: blockzoo.MLP(3, (4,), 2, norm_layer="layernorm"),
}


@st.composite
def named_models(draw: st.DrawFn) -> nn.Module:
    kinds = draw(st.lists(st.sampled_from(sorted(NAMED_LAYERS)), min_size=1, max_size=6))
    model = nn.Sequential(*[NAMED_LAYERS[k]() for k in kinds])
    if draw(st.booleans()):
        model = nn.Sequential(model, nn.Linear(2, 2))  # deeper names
    params = list(model.parameters())
    for i in draw(st.lists(st.integers(0, len(params) - 1), max_size=len(params) - 1, unique=True)):
        params[i].requires_grad_(False)
    return model


def described(groups: list[dict[str, object]], rules: list[object]) -> list[tuple[object, ...]]:
    return [
        ([n for n, _ in g["params"]], g["lr"], g["weight_decay"], r)  # type: ignore[attr-defined]
        for g, r in zip(groups, rules, strict=True)
    ]


@given(named_models(), st.sets(st.sampled_from([r.value for r in Role])), st.floats(0.0, 0.1))
def test_named_pairs_give_the_models_groups(model: nn.Module, roles: set[str], wd: float) -> None:
    from_model = param_groups(model, lr=0.1, weight_decay=wd, no_weight_decay_roles=roles)
    from_pairs = param_groups(list(model.named_parameters()), lr=0.1, weight_decay=wd, no_weight_decay_roles=roles)
    assert described(*from_pairs) == described(*from_model)


def test_pairs_honour_an_empty_role_set() -> None:
    lin = nn.Linear(3, 2)
    opt = create_optimizer(lin.named_parameters(), "adamw", lr=0.1, weight_decay=0.1, no_weight_decay_roles=())
    assert [(g["param_names"], g["weight_decay"]) for g in opt.param_groups] == [(["weight", "bias"], 0.1)]
    opt = create_optimizer(lin.named_parameters(), "adamw", lr=0.1, weight_decay=0.1, no_weight_decay_roles=["bias"])
    assert [(g["param_names"], g["weight_decay"], g["rule"]) for g in opt.param_groups] == [
        (["weight"], 0.1, "decay"),
        (["bias"], 0.0, "no decay: role bias"),
    ]


# ----------------------------------------------------------------------------- a model's own declarations


class TinyViT(nn.Module):
    """The layout of a vision transformer that lists its tokens in no_weight_decay(), timm's way."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, stride=4)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.reg_token = nn.Parameter(torch.zeros(1, 4, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, dim))
        self.blocks = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.head = nn.Linear(dim, 2)

    def no_weight_decay(self) -> set[str]:
        return {"cls_token", "reg_token", "pos_embed"}


def decay_of(opt: torch.optim.Optimizer) -> dict[str, float]:
    return {n: g["weight_decay"] for g in opt.param_groups for n in g["param_names"]}


def test_no_weight_decay_is_honoured_and_named() -> None:
    vit = TinyViT()
    opt = create_optimizer(vit, "adamw", lr=1e-3, weight_decay=0.05)
    decay = decay_of(opt)
    assert {n for n, wd in decay.items() if wd} == {"patch_embed.weight", "blocks.1.weight", "head.weight"}
    assert decay["reg_token"] == decay["cls_token"] == decay["pos_embed"] == 0.0
    rules = [g["rule"] for g in blockzoo.explain_param_groups(opt).groups]
    assert rules == ["no decay: model.no_weight_decay(), role bias, role norm", "decay"]
    # the same model inside a wrapper: its declaration names its own parameters
    wrapped = create_optimizer(nn.Sequential(vit), "adamw", lr=1e-3, weight_decay=0.05)
    assert decay_of(wrapped)["0.reg_token"] == 0.0
    assert wrapped.param_groups[0]["rule"] == "no decay: 0.no_weight_decay(), role bias, role norm"


def test_declared_names_that_are_not_parameters_are_ignored_and_reported() -> None:
    class DeiT(TinyViT):
        def no_weight_decay(self) -> set[str]:
            return {"cls_token", "dist_token", "pos_embed", "blocks"}  # no dist_token here; blocks is a module

    opt = create_optimizer(DeiT(), "adamw", lr=1e-3, weight_decay=0.05)
    assert decay_of(opt)["reg_token"] == 0.05
    assert opt.param_groups[0]["rule"] == (
        "no decay: model.no_weight_decay() (not parameters, ignored: 'blocks', 'dist_token'), role bias, role norm"
    )


def test_no_weight_decay_keywords_and_precedence_over_role_rules() -> None:
    class Swin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.Module()
            self.attn.relative_position_bias_table = nn.Parameter(torch.zeros(9, 2))
            self.proj = nn.Linear(2, 2)

        def no_weight_decay_keywords(self) -> list[str]:
            return ["relative_position_bias_table"]

    opt = create_optimizer(Swin(), "adamw", lr=1e-3, weight_decay=0.05, no_weight_decay_roles=())
    assert [(g["param_names"], g["weight_decay"], g["rule"]) for g in opt.param_groups] == [
        (["attn.relative_position_bias_table"], 0.0, "no decay: model.no_weight_decay_keywords()"),
        (["proj.weight", "proj.bias"], 0.05, "decay"),
    ]


@pytest.mark.parametrize("value", ["cls_token", 3, ["cls_token", 1]])
def test_bad_declarations(value: object) -> None:
    class Bad(TinyViT):
        def no_weight_decay(self) -> object:  # type: ignore[override]
            return value

    with pytest.raises(
        TypeError,
        match=r"Bad\.no_weight_decay\(\) must return a collection of strings\. Received: Bad\.no_weight_decay\(\)=",
    ):
        create_optimizer(Bad(), "adamw", lr=1e-3)
