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
SMALL_MODEL_PARAMS = 30_000_000


def builder_configuration(name: str) -> tuple[str, bool]:
    """The family of a registered model and whether it is its batch-norm variant (``vgg11_bn``).

    A ``_bn`` variant is the family's builder run with another configuration (a norm in every conv block), which
    the plain members do not exercise.
    """
    import blockzoo

    return blockzoo.model_info(name).family, name.endswith("_bn")


def representative_models() -> list[str]:
    """The registered models that the zoo-wide checks build for real (train, compile, export, fuse, summarise).

    The smallest member (by parameter count, counted on the meta device) of each family and builder
    configuration (:func:`builder_configuration`: ``vgg11`` and ``vgg11_bn``), and every model under
    :data:`SMALL_MODEL_PARAMS`. The larger members share their group's blocks; their parameter counts, state_dict
    manifest and meta-device builds are checked for every model.
    """
    import blockzoo

    names = blockzoo.list_models()
    smallest: dict[tuple[str, bool], str] = {}
    for name in names:
        group = builder_configuration(name)
        best = smallest.get(group)
        if best is None or blockzoo.model_info(name).num_params < blockzoo.model_info(best).num_params:
            smallest[group] = name
    chosen = set(smallest.values())
    return [n for n in names if n in chosen or blockzoo.model_info(n).num_params < SMALL_MODEL_PARAMS]
