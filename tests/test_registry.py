import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockzoo._registry import Registry
from blockzoo.errors import UnknownNameError

names = st.text(alphabet="abcdefghij_0123", min_size=1, max_size=8)


def make() -> Registry[int]:
    return Registry("widget", list_call="widgets.list()")


def test_register_as_decorator_returns_the_object() -> None:
    reg = make()

    @reg.register("seven")
    def seven() -> int:
        return 7

    assert reg.get("seven") is seven
    assert "seven" in reg
    assert "eight" not in reg


def test_duplicate_name_raises_and_keeps_the_first() -> None:
    reg = make()
    reg.register("a", 1)
    with pytest.raises(ValueError, match=r"widget named 'a' is already registered.*Received: name='a'"):
        reg.register("a", 2)
    assert reg.get("a") == 1


def test_alias_resolves_and_cannot_shadow_a_name() -> None:
    reg = make()
    reg.register("silu", 1, aliases=("swish",))
    assert reg.get("swish") == 1
    assert reg.canonical("swish") == "silu"
    assert reg.list() == ["silu"]
    with pytest.raises(ValueError, match="already registered"):
        reg.register("other", 2, aliases=("silu",))
    assert "other" not in reg


def test_unknown_name_suggests_close_matches_and_the_listing_call() -> None:
    reg = make()
    for i, name in enumerate(["relu", "relu6", "prelu", "gelu", "tanh"]):
        reg.register(name, i)
    with pytest.raises(
        UnknownNameError, match=r"Unknown widget 'rleu'\. Did you mean 'relu'.*widgets\.list\(\) lists them all"
    ) as info:
        reg.get("rleu")
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownNameError, match=r"Unknown widget 'zzz'\. widgets\.list\(\)"):
        reg.get("zzz")


@pytest.mark.parametrize("bad", ["", 3, None])
def test_names_must_be_non_empty_strings(bad: object) -> None:
    with pytest.raises(TypeError, match="non-empty string"):
        make().register(bad, 1)  # type: ignore[arg-type]


@given(st.sets(names, max_size=12), st.lists(names, max_size=3), st.lists(names, max_size=3))
def test_list_is_sorted_and_follows_the_globs(registered: set[str], include: list[str], exclude: list[str]) -> None:
    import fnmatch

    reg = make()
    for n in registered:
        reg.register(n, 0)
    inc = include or ["*"]
    expected = sorted(
        n
        for n in registered
        if any(fnmatch.fnmatchcase(n, p) for p in inc) and not any(fnmatch.fnmatchcase(n, p) for p in exclude)
    )
    assert reg.list(include or "*", exclude or None) == expected
    assert len(reg) == len(registered)
    assert list(reg) == sorted(registered)


def test_list_rejects_a_non_glob() -> None:
    with pytest.raises(TypeError, match=r"include must be a glob string.*Received: include=3"):
        make().list(3)  # type: ignore[arg-type]
