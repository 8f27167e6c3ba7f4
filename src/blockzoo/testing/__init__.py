"""The contract test kit: :func:`check_block` and hypothesis strategies.

Public, so that you can test your own blocks the way blockzoo tests its own.
It needs ``hypothesis`` (the ``test`` extra) for the strategies; importing
:mod:`blockzoo` itself never imports it.
"""

from blockzoo.testing._check import check_block
from blockzoo.testing._strategies import conv_configs, devices, dtypes, input_shapes

__all__ = ["check_block", "conv_configs", "devices", "dtypes", "input_shapes"]
