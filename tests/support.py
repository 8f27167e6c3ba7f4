"""Helpers shared by test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import pytest
import torch

CUDA = torch.cuda.is_available()

#: Parametrise a test over devices; the CUDA case is marked ``cuda`` and skips cleanly without a GPU.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")]),
]


#: Models under this many parameters are small enough for every zoo-wide check.
SMALL_MODEL_PARAMS = 6_000_000


def representative_models() -> list[str]:
    """The registered models that the zoo-wide checks build for real (train, compile, export, fuse, summarise).

    The smallest member of each family (by parameter count, counted on the meta device), and every model under
    :data:`SMALL_MODEL_PARAMS`. The larger members share their family's blocks; their parameter counts, state_dict
    manifest and meta-device builds are checked for every model.
    """
    import blockzoo

    names = blockzoo.list_models()
    smallest: dict[str, str] = {}
    for name in names:
        info = blockzoo.model_info(name)
        best = smallest.get(info.family)
        if best is None or info.num_params < blockzoo.model_info(best).num_params:
            smallest[info.family] = name
    chosen = set(smallest.values())
    return [n for n in names if n in chosen or blockzoo.model_info(n).num_params < SMALL_MODEL_PARAMS]
