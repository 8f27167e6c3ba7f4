import fnmatch
import re
import typing

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrizations

import blockzoo
from blockzoo import Role, UnknownNameError, param_roles, select
from blockzoo.models._simple import simple_cnn


def test_roles_of_torch_layers() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.GroupNorm(2, 4),
        nn.LayerNorm(4),
        nn.Embedding(10, 4),
        nn.Linear(4, 2),
        nn.PReLU(),
        nn.LSTM(4, 4),
    )
    roles = param_roles(model)
    assert roles == {
        "0.weight": Role.WEIGHT,
        "0.bias": Role.BIAS,
        "1.weight": Role.NORM,
        "1.bias": Role.NORM,
        "2.weight": Role.NORM,
        "2.bias": Role.NORM,
        "3.weight": Role.NORM,
        "3.bias": Role.NORM,
        "4.weight": Role.EMBEDDING,
        "5.weight": Role.WEIGHT,
        "5.bias": Role.BIAS,
        "6.weight": Role.OTHER,
        "7.weight_ih_l0": Role.WEIGHT,
        "7.weight_hh_l0": Role.WEIGHT,
        "7.bias_ih_l0": Role.BIAS,
        "7.bias_hh_l0": Role.BIAS,
    }
    assert list(roles) == [n for n, _ in model.named_parameters()]


def test_unknown_user_parameter_is_other_and_a_block_may_declare() -> None:
    class Mine(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(3))
            self.gamma = nn.Parameter(torch.ones(3))

        def own_param_roles(self) -> dict[str, Role]:
            return {"gamma": Role.SCALE}

    roles = param_roles(nn.Sequential(Mine()))
    assert roles == {"0.weight": Role.OTHER, "0.gamma": Role.SCALE}


def test_shared_parameter_appears_once() -> None:
    lin = nn.Linear(3, 3)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert list(param_roles(model)) == ["0.weight", "0.bias"]


def test_parametrized_weight_keeps_its_role() -> None:
    model = nn.Sequential(parametrizations.weight_norm(nn.Linear(3, 2)))
    roles = param_roles(model)
    assert roles == {
        "0.bias": Role.BIAS,
        "0.parametrizations.weight.original0": Role.WEIGHT,
        "0.parametrizations.weight.original1": Role.WEIGHT,
    }


def test_block_roles_cover_every_parameter() -> None:
    block = blockzoo.ConvBlock(3, 8, norm_layer="groupnorm")
    roles = block.param_roles()
    assert roles == {
        "convs.0.conv.weight": Role.WEIGHT,
        "convs.0.norm.weight": Role.NORM,
        "convs.0.norm.bias": Role.NORM,
    }


def test_role_is_a_str_enum() -> None:
    assert Role.BIAS == "bias"
    assert str(Role.NORM) == "norm"
    assert Role("embedding") is Role.EMBEDDING


def test_select_by_role_and_globs() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    assert [n for n, _ in select(model, roles="weight")] == ["0.weight", "3.weight"]
    assert [n for n, _ in select(model, roles=[Role.NORM, "bias"], exclude="3.*")] == [
        "0.bias",
        "1.weight",
        "1.bias",
    ]
    assert [n for n, _ in select(model, include=["0.*", "3.b*"])] == ["0.weight", "0.bias", "3.bias"]
    params = dict(model.named_parameters())
    assert all(p is params[n] for n, p in select(model))


def test_select_includes_frozen_parameters() -> None:
    model = nn.Linear(2, 2)
    model.weight.requires_grad_(False)
    assert [n for n, _ in select(model)] == ["weight", "bias"]


def test_select_rejects_unknown_roles_with_close_matches() -> None:
    with pytest.raises(
        UnknownNameError, match=r"Unknown role 'biass'\. Did you mean 'bias'\?.*Received: roles='biass'"
    ):
        select(nn.Linear(2, 2), roles="biass")
    with pytest.raises(TypeError, match=r"roles must be a role name.*Received: roles=\[3\]"):
        select(nn.Linear(2, 2), roles=[3])  # type: ignore[list-item]


@given(
    st.lists(st.sampled_from(["conv", "bn", "linear", "ln", "relu"]), min_size=1, max_size=6),
    st.sets(st.sampled_from([r.value for r in Role]), min_size=1),
)
def test_select_by_roles_partitions_parameters(layers: list[str], chosen: set[str]) -> None:
    make = {
        "conv": lambda: nn.Conv2d(2, 2, 1),
        "bn": lambda: nn.BatchNorm2d(2),
        "linear": lambda: nn.Linear(2, 2),
        "ln": lambda: nn.LayerNorm(2),
        "relu": nn.ReLU,
    }
    model = nn.Sequential(*(make[k]() for k in layers))
    every = {n for n, _ in model.named_parameters()}
    picked = {n for n, _ in select(model, roles=chosen)}
    rest = {n for n, _ in select(model, roles=[r for r in Role if r.value not in chosen])}
    assert picked | rest == every
    assert not picked & rest


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


def test_select_refuses_an_include_glob_that_matches_nothing_and_suggests_names() -> None:
    with pytest.raises(
        ValueError,
        match=r"^include glob '3\.wieght' matches no parameter of Sequential\. Did you mean '3\.weight', '1\.weight', "
        r"'0\.weight'\? Received: include='3\.wieght'$",
    ):
        select(_net(), include="3.wieght")


def test_select_refuses_an_exclude_glob_that_matches_nothing() -> None:
    # a typo in exclude would silently keep what the caller meant to leave out
    with pytest.raises(
        ValueError,
        match=r"^exclude glob '3\.bais' matches no parameter of Sequential\. Did you mean '3\.bias', '1\.bias', "
        r"'0\.bias'\? Received: exclude=\['1\.\*', '3\.bais'\]$",
    ):
        select(_net(), exclude=["1.*", "3.bais"])


def test_select_shows_a_few_names_when_none_is_close() -> None:
    with pytest.raises(
        ValueError,
        match=r"^include glob 'head\.\*' matches no parameter of Sequential\. The names look like '0\.weight', "
        r"'0\.bias', '1\.weight'\. Received: include=\['0\.\*', 'head\.\*'\]$",
    ):
        select(_net(), include=["0.*", "head.*"])
    with pytest.raises(ValueError, match=r"^include glob '\*' matches no parameter of ReLU\. There are none\."):
        select(nn.ReLU(), include="*")


def test_select_lenient_on_request_and_empty_role_selections_are_fine() -> None:
    model = _net()
    assert select(model, include="head.*", strict=False) == []
    assert [n for n, _ in select(model, exclude="head.*", strict=False)] == [n for n, _ in model.named_parameters()]
    assert select(model, roles="embedding") == []  # the globs are strict, the roles are a filter
    assert select(model, roles="embedding", include="0.*") == []
    with pytest.raises(TypeError, match=r"^strict must be a bool\. Received: strict='no'$"):
        select(model, strict="no")  # type: ignore[arg-type]


_GLOBS = ["0.*", "1.*", "3.*", "*.weight", "*.bias", "head.*", "3.wieght", "?.bias", "*"]


@given(
    st.lists(st.sampled_from(["conv", "bn", "linear", "relu"]), min_size=1, max_size=5),
    st.none() | st.lists(st.sampled_from(_GLOBS), min_size=1, max_size=3),
    st.none() | st.lists(st.sampled_from(_GLOBS), min_size=1, max_size=3),
)
def test_strict_select_is_lenient_select_or_an_error_naming_the_glob(
    layers: list[str], include: list[str] | None, exclude: list[str] | None
) -> None:
    make = {"conv": lambda: nn.Conv2d(2, 2, 1), "bn": lambda: nn.BatchNorm2d(2), "linear": lambda: nn.Linear(2, 2)}
    model = nn.Sequential(*(make[k]() if k in make else nn.ReLU() for k in layers))
    names = [n for n, _ in model.named_parameters()]
    unmatched = [
        (arg, g)
        for arg, globs in (("include", include), ("exclude", exclude))
        for g in globs or ()
        if not any(fnmatch.fnmatchcase(n, g) for n in names)
    ]
    lenient = select(model, include=include, exclude=exclude, strict=False)
    if unmatched:
        arg, glob = unmatched[0]
        with pytest.raises(
            ValueError, match=rf"^{arg} glob {re.escape(repr(glob))} matches no parameter of Sequential"
        ):
            select(model, include=include, exclude=exclude)
    else:
        assert select(model, include=include, exclude=exclude) == lenient
    # lenient selection is the plain definition: included, not excluded
    expected = [
        n
        for n in names
        if (include is None or any(fnmatch.fnmatchcase(n, g) for g in include))
        and not any(fnmatch.fnmatchcase(n, g) for g in exclude or ())
    ]
    assert [n for n, _ in lenient] == expected


@pytest.mark.parametrize(
    "obj",
    [
        select,
        blockzoo.init_weights,
        blockzoo.init.InitRule,
        blockzoo.list_models,
        blockzoo.list_layers,
        simple_cnn,
        blockzoo.ConvNormAct.__init__,
        blockzoo.MLP.__init__,
        blockzoo.layers.Placement,
    ],
)
def test_signatures_with_the_shared_aliases_resolve(obj: object) -> None:
    # autodoc evaluates the string annotations; every alias must resolve where it is used
    hints = typing.get_type_hints(obj)
    assert hints
