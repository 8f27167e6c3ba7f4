"""torch.hub entry points: every model in blockzoo's registry.

``torch.hub.load("<path to this repository>", "resnet18", source="local", num_classes=10)``
builds ``blockzoo.create_model("resnet18", num_classes=10)``.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

dependencies = ["torch", "safetensors"]

_SRC = Path(__file__).resolve().parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))  # a checkout without an installed blockzoo

import blockzoo  # noqa: E402


def _entry(name: str):  # type: ignore[no-untyped-def]
    entry = functools.partial(blockzoo.create_model, name)
    functools.update_wrapper(entry, blockzoo.create_model)
    entry.__doc__ = f"blockzoo.create_model({name!r}, **kwargs): {blockzoo.model_info(name).paper or name}."
    return entry


for _name in blockzoo.list_models():
    globals()[_name] = _entry(_name)
