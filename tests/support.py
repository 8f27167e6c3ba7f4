"""Helpers shared by test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

CUDA = torch.cuda.is_available()

#: Parametrise a test over devices; the CUDA case is marked ``cuda`` and skips cleanly without a GPU.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")]),
]


#: Models under this many parameters are small enough for every zoo-wide check.
SMALL_MODEL_PARAMS = 6_000_000


def fit_side(name: str, side: int) -> int:
    """``side``, or the model's recorded smallest input side when that is larger (inception_v3 needs 75 at least)."""
    import blockzoo

    smallest = blockzoo.model_info(name).min_input_size
    return max(side, *smallest) if smallest else side


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


@torch.no_grad()
def scale_branch_ends_(model: nn.Module, factor: float) -> nn.Module:
    """Scale the layer that ends each residual branch of ``model`` by ``factor``, in place; returns ``model``.

    The layer is the one each block's own ``zero_init_last_()`` zeroes (its branch's last norm scale, layer
    scale or kernel); nested blocks scale a shared layer once. With random weights and every branch at full
    size the deepest zoo networks amplify rounding about a hundredfold per stage; scaled down, as
    ``zero_init_last_`` or training leaves them, they stay well-conditioned and every block still counts.
    (The layers' init records still say that ``zero_init_last_`` zeroed them.)
    """
    scaled: set[int] = set()
    for module in model.modules():
        zero_init_last = getattr(module, "zero_init_last_", None)
        if not callable(zero_init_last):
            continue
        before = [(p, p.clone()) for p in module.parameters()]
        zero_init_last()
        for p, values in before:
            if not torch.equal(p, values):  # zeroed: the end of the branch
                p.copy_(values if id(p) in scaled else values * factor)
                scaled.add(id(p))
    return model
