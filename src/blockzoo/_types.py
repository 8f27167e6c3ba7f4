"""Type aliases that many signatures share, defined once (ground floor: imports torch only).

The other shared aliases live next to the code that reads them:
:data:`blockzoo.roles.RolesLike` and :data:`blockzoo._names.GlobsLike`.
"""

from __future__ import annotations

import torch

__all__ = ["DeviceLike"]

#: Where to create tensors, as ``torch.nn`` layers take it: a device, a string
#: such as ``"cuda:0"``, or ``None`` for the default device.
DeviceLike = torch.device | str | None
