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


def representative_models() -> list[str]:
    """The smallest registered model of each family (by parameter count, ties by name).

    The expensive generic checks (the model contract, torch.compile) run on these; every model still gets its
    parameter count and its manifest entry checked.
    """
    import blockzoo

    smallest: dict[str, tuple[int, str]] = {}
    for name in blockzoo.list_models():
        info = blockzoo.model_info(name)
        smallest[info.family] = min(smallest.get(info.family, (info.num_params, name)), (info.num_params, name))
    return sorted(name for _, name in smallest.values())
