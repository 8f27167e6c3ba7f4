"""Settings the TensorFlow-born families share: the channel rounding and the batch-norm constants."""

from __future__ import annotations

import functools

from torch import nn

#: TensorFlow's batch-norm settings (``epsilon=1e-3``, a decay of 0.99 = a torch momentum of 0.01), which
#: torchvision keeps for MobileNet v3 and EfficientNet b5 to b7.
TF_BATCH_NORM = functools.partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)


def round_channels(channels: float, divisor: int = 8) -> int:
    """The nearest multiple of ``divisor`` (at least ``divisor``), never more than 10% below ``channels``.

    The channel rounding of the TensorFlow MobileNet and EfficientNet code,
    which torchvision keeps, so that scaled widths stay multiples of 8; RegNet
    rounds its stage widths to multiples of their group width the same way.

    Example:
        >>> from blockzoo.models._rounding import round_channels
        >>> round_channels(32 * 1.1), round_channels(40 * 1.4), round_channels(3)
        (32, 56, 8)
    """
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded
