"""round_channels, shared by EfficientNet, MobileNet v3, MNASNet and RegNet."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from blockzoo.models._rounding import round_channels


@given(st.floats(0.0, 4096.0), st.integers(1, 64))
def test_a_multiple_of_the_divisor_near_the_value_and_never_10_percent_below(channels: float, divisor: int) -> None:
    rounded = round_channels(channels, divisor)
    assert rounded % divisor == 0
    assert rounded >= divisor
    assert rounded >= 0.9 * channels
    assert rounded <= max(divisor, channels + divisor)  # the nearest multiple, or the next one up


def test_torchvisions_rounding_cases() -> None:
    # torchvision's _make_divisible: 32 * 1.1 -> 32 (nearest), 40 * 1.4 -> 56, 3 -> 8 (at least the divisor),
    # 17 -> 16 (nearest, 6% below), 10 with divisor 8 -> 8 is 20% below, so 16.
    assert [round_channels(c) for c in (32 * 1.1, 40 * 1.4, 3, 17, 10)] == [32, 56, 8, 16, 16]
